"""A worker fleet on three hosts loses one host and one host's link mid-run (`make test-fleet`).

Three network namespaces run a worker each; hosts 1 and 3 run beat as well (two sweepers at
once, as production may run). While payments (registered, and held then partially captured)
and cashback orders go in, host 1 loses every process to SIGKILL and stays down, and host 2's
cable is pulled for 15 s: its connections stay open and its packets vanish. What it held (the
messages Redis handed it, a row lock, a peer call) is stranded until the link returns; the
sweeper on host 3 sends the work again meanwhile, and host 2 then runs stale copies. Every
payment must be captured and every order charged once, with the sandbox peers' books exact:
one plan per payment committed, one limiter operation per payment committed, one provider
session per capture, one transactions operation per order, and nothing left at work in the
database.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from itertools import zip_longest

import pytest

from tests.cashback.conftest import wait_status
from tests.fleet.fleet import Fleet
from tests.fleet.workload import CASHBACK, COST, PARTIAL, Workload, captures_per_payment, unsettled
from tests.payments.conftest import own_amounts, wait_payment
from tests.support.netns import Host
from tests.support.waiting import wait_for

pytestmark = pytest.mark.fleet

REGISTERED, HELD, ORDERS = 60, 30, 40
PACE_S = 0.35  # between rounds of submissions: about 20 s of input, the faults inside it
KILL_AT_S, CUT_AT_S, CUT_FOR_S = 3, 6, 15
SETTLE_S = 150
REJOIN_S = 60


def test_fleet_loses_a_host_and_a_link_and_nothing_is_lost_or_doubled(tmp_path):
    with Fleet(hosts=3, workdir=tmp_path) as fleet:
        try:
            _run(fleet)
        except BaseException:
            print(fleet.logs())
            raise


def _run(fleet: Fleet) -> None:
    killed, cut, steady = fleet.hosts
    for host in fleet.hosts:
        fleet.start_worker(host)
    for host in (killed, steady):
        fleet.start_beat(host)
    work = Workload(fleet)
    held = [work.hold() for _ in range(HELD)]
    for ids in held:
        wait_payment(fleet.api, *ids, activity="flow_waiting", timeout=60)

    registered: list[tuple[str, str]] = []
    orders = [f"fleet-order-{n}" for n in range(ORDERS)]
    kill_log: list[int] = []
    mended: list[datetime] = []

    def mend() -> None:
        fleet.network.mend(cut)
        mended.append(datetime.now(UTC))

    with _timeline((KILL_AT_S, lambda: kill_log.extend(fleet.network.kill_all(killed))),
                   (CUT_AT_S, lambda: fleet.network.cut(cut)),
                   (CUT_AT_S + CUT_FOR_S, mend)):
        for capture, order in zip_longest(held, orders):
            for _ in range(min(2, REGISTERED - len(registered))):
                registered.append(work.register())
            if capture is not None:
                work.capture(capture)
            if order is not None:
                work.order(order)
            time.sleep(PACE_S)
    assert kill_log, "host 1 had no process to kill"
    assert _tasks_done(fleet, killed), "host 1 was killed before it did any work"
    # TCP on host 2 resumes at its next retransmission, up to ~13 s after a 15 s cut; until
    # its worker takes work again, more payments come in.
    wait_for(lambda: _tasks_done(fleet, cut, since=mended[0]) or registered.append(
        work.register()), timeout=REJOIN_S, interval=0.3, what="host 2 to work again")

    deadline = time.monotonic() + SETTLE_S
    for ids in registered + held:
        wait_payment(fleet.api, *ids, status="captured", activity="idle",
                     timeout=max(1, deadline - time.monotonic()))
    for order_id in orders:
        wait_status(fleet.api, order_id, "charged", timeout=max(1, deadline - time.monotonic()))
    # Whatever was still in flight when the last view turned final lands within a sweep or two.
    wait_for(lambda: not unsettled(fleet), timeout=30, what="no machine or task at work")

    _assert_books(fleet, work, registered, held, orders)


def _assert_books(fleet: Fleet, work: Workload, registered: list, held: list,
                  orders: list[str]) -> None:
    payments = registered + held
    assert captures_per_payment(fleet) == {f"{i}.{p}": 1 for i, p in payments}

    full, partial = work.ledger.expected_balances(COST), work.ledger.expected_balances(PARTIAL)
    assert own_amounts(fleet.peers, work.ledger.ids) == {
        account: len(registered) * full[account] + len(held) * partial[account]
        for account in full}
    plans = fleet.peers.state("accounter")["plans"]
    assert sorted(plans) == sorted(f"{i}.{p}.1" for i, p in payments)
    assert {plan["state"] for plan in plans.values()} == {"COMMIT"}

    limiter = fleet.peers.state("limiter")
    assert limiter["limits"][work.limit]["committed"] == (
        len(registered) * COST + len(held) * PARTIAL)
    assert limiter["limits"][work.limit]["held"] == 0
    operations = limiter["operations"]
    assert len(operations) == len(payments)
    committed = sorted(change["committed"] for operation in operations.values()
                       for change in operation.values() if change["state"] == "COMMIT")
    assert committed == sorted([COST] * len(registered) + [PARTIAL] * len(held))

    # A registered payment was processed before it came: only captures open a session.
    sessions = fleet.peers.state("provider")["sessions"]
    assert len(sessions) == len(held)
    for invoice_id, payment_id in held:
        mine = [s for s in sessions if s.startswith(f"{invoice_id}.{payment_id}.")]
        assert len(mine) == 1, (invoice_id, mine)
        assert sessions[mine[0]]["final"] == "succeeded", sessions[mine[0]]

    target = {source: Decimal(value) for source, value in CASHBACK.items()}
    for order_id in orders:
        invoice = work.transactions.invoice(order_id)
        assert invoice["cashback"]["status"] == "success", order_id
        assert len(invoice["cashback"]["operations"]) == 1, invoice["cashback"]
        assert {item["source"]: Decimal(item["amount"])
                for item in invoice["cashback"]["rewarded"]} == target, order_id


def _tasks_done(fleet: Fleet, host: Host, since: datetime | None = None) -> int:
    """Tasks the host's worker finished (after `since`), as its log says."""
    log = fleet.processes[f"worker-{host.name}"].log_path.read_text(errors="replace")
    return sum(1 for line in log.splitlines()
               if line.startswith("{") and "succeeded in" in line
               and (since is None or datetime.fromisoformat(json.loads(line)["ts"]) > since))


@contextmanager
def _timeline(*steps: tuple[float, Callable[[], object]]) -> Iterator[None]:
    """Run each step at its second from the start of the block, on a thread of its own; every
    step has run (and any error is raised here) when the block ends."""
    errors: list[BaseException] = []

    def run() -> None:
        start = time.monotonic()
        for at, step in steps:
            time.sleep(max(0.0, start + at - time.monotonic()))
            try:
                step()
            except BaseException as exc:  # reported by the test's thread
                errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join(max(at for at, _ in steps) + 30)
        if errors:
            raise errors[0]
