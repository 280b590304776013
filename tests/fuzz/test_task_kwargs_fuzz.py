"""Junk kwargs sent by hand to every public task name, consumed by a real worker of the slot.

Another service may `send_task` anything under our task names. For each name, hypothesis draws
batches of malformed kwargs: values of the wrong JSON type, missing keys, random objects, values
nested hundreds of levels deep, objects that look like kombu's own type tags, and in long runs
text with NUL or lone surrogates and integers far outside 64 bits (`make test` sends those as
fixed cases). Each batch is sent, then one valid payment; afterwards:

- the worker's main process is the same one and alive, and it went on consuming: every junk
  message left the broker and the valid payment was captured;
- nothing was stored for the junk: no machine, STQ row, order or cache key carries its marker,
  and the held payment the capture/cancel junk aims at did not change.

The examples per task follow the hypothesis profile (`make fuzz` runs many more batches).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from sandbox.processes import ManagedProcess
from tests.fuzz.conftest import FAR, LONG
from tests.fuzz.junk import (
    HOSTILE,
    SHAPES,
    appending,
    junk,
    nested,
    setting,
    with_value,
)
from tests.payments.conftest import Ledger, payment_body, wait_payment
from tests.support.broker import TestBroker as Broker  # aliased: pytest would collect it
from tests.support.waiting import wait_for
from workers.celery_app import app
from workers.db import transaction
from workers.settings import get_settings

BATCH = 20  # junk messages per example
# A batch takes a few seconds of a real worker: one in `make test`, many in `make fuzz`.
EXAMPLES = 12 if LONG else 1
# Hostile junk (NUL text, integers beyond 64 bits, very deep nesting) is drawn in long runs;
# `make test` sends the known cases as the fixed cases of the last test below.
KINDS = SHAPES + HOSTILE if LONG else SHAPES
# Keys a sender may leave out.
OPTIONAL = frozenset({"details", "rounding", "transaction_info", "cost"})

TASKS = ("payments.register", "payments.start_hold", "payments.capture", "payments.cancel",
         "cashback.universal_cashback_processing", "cashback.cashback_charge_processing",
         "wallet.balance_changed")


def valid_kwargs(task: str, marker: str, held: tuple[str, str]) -> dict[str, Any]:
    """Kwargs the task would take, with every id carrying `marker`."""
    fake = Ledger(910001, 910002, 910003, 910004)  # never reached: the junk must be refused
    if task == "payments.register":
        return payment_body(fake, f"inv-{marker}", "1", 300)
    if task == "payments.start_hold":
        return payment_body(fake, f"inv-{marker}", "1", 300, hold=("cancel", FAR))
    if task == "payments.capture":
        return {"invoice_id": held[0], "payment_id": held[1], "reason": f"r-{marker}",
                "cost": {"amount": 100, "currency": "RUB"}}
    if task == "payments.cancel":
        return {"invoice_id": held[0], "payment_id": held[1], "reason": f"r-{marker}"}
    if task.startswith("cashback."):
        return {"order_id": f"order-{marker}", "service": "taxi"}
    return {"yandex_uid": f"uid-{marker}", "wallet_id": f"w-{marker}", "currency": "RUB",
            "balance": "10.00", "version": 1}


# --- looking for what junk may have left ------------------------------------------------------

def stored_with(marker: str) -> dict[str, int]:
    """Rows and cache keys carrying `marker`, by where they are."""
    like = {"m": f"%{marker}%"}
    found = {}
    with transaction() as tx:
        for table, column in (("machines", "id"), ("stq_tasks", "task_id"),
                              ("order_clears", "order_id"), ("order_rates", "order_id")):
            found[table] = tx.conn.execute(
                text(f"SELECT count(*) FROM {table} WHERE {column} LIKE :m"), like).scalar()
    cache = redis.Redis.from_url(get_settings().redis_url)
    found["cache keys"] = sum(1 for _ in cache.scan_iter(match=f"*{marker}*"))
    return {where: count for where, count in found.items() if count}


def outcomes(log: Path, offset: int, ids: list[str]) -> dict[str, str]:
    """What became of each message, from Celery's own log lines since `offset`: "rejected" (our
    typed refusal), "accepted", "crashed" (the task raised something untyped), "retried", or
    "dropped" (it never reached the task: refused while decoding)."""
    found = dict.fromkeys(ids, "dropped")
    for line in log.read_bytes()[offset:].decode(errors="replace").splitlines():
        if '"msg": "Task ' not in line:
            continue
        task_id = line.split("[", 1)[-1].split("]", 1)[0]
        if task_id not in found:
            continue
        if "] succeeded in " in line:
            found[task_id] = "rejected" if "'rejected': " in line else "accepted"
        elif "] raised unexpected" in line:
            found[task_id] = "crashed"
        elif "] retry: " in line:
            found[task_id] = "retried"
    return found


def event_count(machine_id: str) -> int:
    with transaction() as tx:
        return tx.conn.execute(
            text("SELECT count(*) FROM machine_events WHERE namespace = 'payments' "
                 "AND machine_id = :m"), {"m": machine_id}).scalar()


def pending(broker: Broker, ids: list[str]) -> list[str]:
    """The ids among `ids` of messages still waiting in the broker (their headers carry it)."""
    return [task_id for task_id in ids if broker.messages_with(task_id)]


def judge(ids: list[str], marker: str, offset: int, *, worker: ManagedProcess, pid: int,
          broker: Broker) -> None:
    """After the junk messages `ids` (their ids carrying `marker`): every one left the broker,
    the worker lived through them, each was refused (with a typed code, or while decoding if it
    never was a task message), and nothing was stored for them."""
    wait_for(lambda: not pending(broker, ids), timeout=30,
             what="every junk message to leave the broker")
    assert worker.alive and worker.proc.pid == pid, worker.log_tail()

    def logged() -> dict[str, str] | None:  # late acks: a task logs before its message goes
        found = outcomes(worker.log_path, offset, ids)
        return found if "dropped" not in found.values() else None

    try:
        found = wait_for(logged, timeout=1, what="an outcome logged for every message")
    except AssertionError:
        found = outcomes(worker.log_path, offset, ids)
    assert stored_with(marker) == {}, f"junk was stored: {stored_with(marker)}"
    wrong = {task_id: outcome for task_id, outcome in found.items()
             if outcome not in ("rejected", "dropped")}
    assert not wrong, f"{wrong}\n{worker.log_tail()}"


@pytest.mark.parametrize("task", TASKS)
def test_junk_kwargs_leave_the_worker_running_and_store_nothing(
        task, live_worker, broker, sandbox, client, ledger, held):
    pid = live_worker.proc.pid
    held_events = event_count(f"{held[0]}.{held[1]}")

    @settings(max_examples=EXAMPLES, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def batch(data: st.DataObject) -> None:
        marker = uuid.uuid4().hex[:12]
        offset = live_worker.log_path.stat().st_size
        valid = valid_kwargs(task, marker, held)
        sent = [data.draw(junk(valid, OPTIONAL, KINDS), label=f"junk {n}")
                for n in range(BATCH)]
        ids = [app.send_task(task, kwargs=kwargs).id for kwargs in sent]
        # The worker goes on consuming: a valid payment sent after the junk is captured.
        control = (f"inv-ctl-{uuid.uuid4().hex[:12]}", "1")  # no marker: it is stored
        app.send_task("payments.register", kwargs=payment_body(ledger, *control, 300))
        wait_payment(client, *control, status="captured", timeout=30)

        judge(ids, marker, offset, worker=live_worker, pid=pid, broker=broker)
        assert event_count(f"{held[0]}.{held[1]}") == held_events, "the held payment changed"

    batch()


# Values the contract refuses that reach the worker as well-typed JSON: over a task they must
# be refused with a typed code like any other malformed kwargs (docs/contract.md: NUL text refused;
# route ids are int32, limit versions int64, amounts below 2**63).
# Refused at the door (issue 9: NUL text, int32/int64 bounds, required fields), or dropped by
# the consumer (nesting deep enough to take down a worker that pickled it for its pool).
KNOWN_BAD = [
    ("payments.register", "NUL in party_id", appending(("party_id",), "\x00")),
    ("payments.register", "NUL in posting details", appending(("cash_flow", 0, "details"), "\x00")),
    ("payments.register", "NUL in a limit id", setting(("turnover_limits",), [{"id": "l\x00"}])),
    ("payments.register", "NUL in a transaction_info.extra key",
     setting(("transaction_info",), {"id": "trx", "extra": {"k\x00": "v"}})),
    ("payments.register", "provider_id 2**31", setting(("route", "provider_id"), 2**31)),
    ("payments.register", "terminal_id -2**31-1", setting(("route", "terminal_id"), -(2**31) - 1)),
    ("payments.register", "limit version 2**63",
     setting(("turnover_limits",), [{"id": "l", "version": 2**63}])),
    ("payments.register", "amount 2**63", setting(("cost", "amount"), 2**63)),
    ("payments.register", "account id 2**63",
     setting(("cash_flow", 0, "source", "account_id"), 2**63)),
    ("payments.start_hold", "NUL in shop_id", appending(("shop_id",), "\x00")),
    ("payments.capture", "NUL in reason", appending(("reason",), "\x00")),
    ("payments.capture", "amount 2**63", setting(("cost", "amount"), 2**63)),
    ("payments.cancel", "NUL in reason", appending(("reason",), "\x00")),
    ("cashback.cashback_charge_processing", "NUL in order_id", appending(("order_id",), "\x00")),
    ("cashback.universal_cashback_processing", "NUL in order_id",
     appending(("order_id",), "\x00")),
    ("wallet.balance_changed", "NUL in wallet_id", appending(("wallet_id",), "\x00")),
    ("wallet.balance_changed", "NUL in yandex_uid", appending(("yandex_uid",), "\x00")),
    ("wallet.balance_changed", "version 2**63", setting(("version",), 2**63)),
    ("payments.register", "no turnover_limits",
     lambda kwargs: with_value(kwargs, ("turnover_limits",), None, drop=True)),
    ("payments.register", "a list nested 800 deep", setting(("party_id",), nested(800, 1, True))),
    ("cashback.cashback_charge_processing", "an object nested 800 deep",
     setting(("order_id",), nested(800, "x", False))),
]




@pytest.mark.parametrize(("task", "mutate"), [
    pytest.param(task, mutate, id=f"{task}: {what}") for task, what, mutate in KNOWN_BAD])
def test_values_the_contract_refuses_are_refused_over_tasks_too(
        task, mutate, live_worker, broker, held):
    marker = uuid.uuid4().hex[:12]
    offset = live_worker.log_path.stat().st_size
    held_events = event_count(f"{held[0]}.{held[1]}")

    sent = app.send_task(task, kwargs=mutate(valid_kwargs(task, marker, held)))

    judge([sent.id], marker, offset, worker=live_worker, pid=live_worker.proc.pid, broker=broker)
    assert event_count(f"{held[0]}.{held[1]}") == held_events, "the held payment changed"
