"""`cashback_charge_processing` (cashback/charge_job.py) against an in-memory order store,
transactions and wallet, with no database.

The job reaches its collaborators through the modules it imports (`orders` for the order row,
`peers` for the transactions client, `wallets` for the wallet); the fixture below puts fakes
there. The transaction handle is never used by the fakes.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from cashback import charge_job, orders
from cashback.charge import ChargePolicy
from cashback.orders import ChargeStatus, Order
from cashback.queues import OrderKwargs
from clients.json_http import PeerBadAnswer
from clients.transactions import BadRequest, RateLimited, TransactionsUnavailable
from clients.wallet import WalletRejected
from tests.fast.fakes import FakeTransactions
from workers import stq, timers
from workers.db import Tx

ORDER_ID, SERVICE = "order-1", "taxi"
TARGET = {"user": Decimal(100), "service": Decimal(50)}


class FakeOrders:
    """`order_clears` as the job sees it: lock a row (or find it busy), record the outcome."""

    BUSY = orders.BUSY

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], Order] = {}
        self.busy: set[tuple[str, str]] = set()
        self.records: list[tuple[ChargeStatus, str | None, dict[str, str] | None]] = []
        self.crash_on_record = False

    def add(self, **changes: Any) -> Order:
        order = Order(order_id=ORDER_ID, service=SERVICE, currency="RUB", yandex_uid="uid-1",
                      cashback_by_source=dict(TARGET), version=1,
                      charge_status=ChargeStatus.PENDING, last_operation_id=None, error=None,
                      wallet_id="w-1", billing_service=None, payload={"ride": "r-1"})
        order = replace(order, **changes)
        self.rows[(order.order_id, order.service)] = order
        return order

    def lock_unless_busy(self, tx: Tx, order_id: str, service: str) -> Order | object | None:
        if (order_id, service) in self.busy:
            return self.BUSY
        return self.rows.get((order_id, service))

    def record_charge(self, tx: Tx, order: Order, status: ChargeStatus, *,
                      last_operation_id: str | None = None,
                      error: dict[str, str] | None = None) -> None:
        if self.crash_on_record:  # the process dies before the transaction commits
            self.crash_on_record = False
            raise SystemExit("worker killed")
        key = (order.order_id, order.service)
        row = self.rows[key]
        self.rows[key] = replace(row, charge_status=status, error=error,
                                 last_operation_id=last_operation_id or row.last_operation_id)
        self.records.append((status, last_operation_id, error))

    @property
    def row(self) -> Order:
        return self.rows[(ORDER_ID, SERVICE)]


class FakeWallets:
    def __init__(self) -> None:
        self.refuse: WalletRejected | None = None
        self.asked: list[str] = []

    def wallet_for(self, tx: Tx, order: Order, user_ip: str) -> str:
        self.asked.append(user_ip)
        if self.refuse is not None:
            raise self.refuse
        return order.wallet_id or "w-created"


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> FakeOrders:
    fake = FakeOrders()
    monkeypatch.setattr(charge_job, "orders", fake)
    return fake


@pytest.fixture
def transactions(monkeypatch: pytest.MonkeyPatch) -> FakeTransactions:
    fake = FakeTransactions()
    monkeypatch.setattr(charge_job, "peers", SimpleNamespace(transactions=lambda: fake))
    return fake


@pytest.fixture
def wallets(monkeypatch: pytest.MonkeyPatch) -> FakeWallets:
    fake = FakeWallets()
    monkeypatch.setattr(charge_job, "wallets", fake)
    return fake


@pytest.fixture
def policy() -> ChargePolicy:
    return ChargePolicy.from_settings()


def run(polls: int = 0) -> stq.JobResult:
    task = stq.Task(queue="cashback.cashback_charge_processing", task_id=f"{SERVICE}/{ORDER_ID}",
                    kwargs={"order_id": ORDER_ID, "service": SERVICE},
                    eta=datetime.now(UTC), exec_tries=0, reschedule_counter=polls)
    return charge_job.run(Tx(conn=None), task,  # type: ignore[arg-type]
                          OrderKwargs(order_id=ORDER_ID, service=SERVICE))


# --- before any peer call ----------------------------------------------------------------------


def test_an_order_never_registered_finishes_without_asking_transactions(store, transactions):
    assert run() == stq.Finish()
    assert transactions.calls == [] and store.records == []


def test_an_order_locked_by_a_register_is_tried_again_shortly(store, transactions):
    store.add()
    store.busy.add((ORDER_ID, SERVICE))

    assert run() == stq.Reschedule(timers.busy_delay())
    assert transactions.calls == []


def test_a_failed_order_stays_failed_until_someone_makes_it_pending(store, transactions):
    store.add(charge_status=ChargeStatus.FAILED, error={"code": "x", "message": "y"})

    assert run() == stq.Finish()
    assert transactions.calls == [] and store.records == []


# --- the charge: update, poll, done ------------------------------------------------------------


def test_a_fresh_invoice_gets_the_whole_target_under_the_version_id_then_is_polled(
        store, transactions, wallets, policy):
    store.add(billing_service="card")
    transactions.add_invoice(ORDER_ID, version=3)

    assert run() == stq.Reschedule(policy.poll_initial_s)

    assert transactions.updates == [{
        "invoice_id": ORDER_ID, "operation_id": f"{ORDER_ID}/v1", "version": 3,
        "wallet_account": "w-1", "reward": TARGET, "billing_service": "card",
        "extra_payload": {"ride": "r-1"}}]
    assert wallets.asked == ["::1"]
    assert store.records == [(ChargeStatus.CHARGING, f"{ORDER_ID}/v1", None)]


def test_the_charge_runs_to_charged_and_sends_one_operation(store, transactions, wallets,
                                                            policy):
    store.add()
    transactions.add_invoice(ORDER_ID)

    run()
    assert run(polls=1) == stq.Reschedule(policy.poll_delay(1))  # in progress: poll
    assert store.row.charge_status is ChargeStatus.CHARGING
    transactions.finish(ORDER_ID)
    assert run(polls=2) == stq.Finish()

    assert store.row.charge_status is ChargeStatus.CHARGED
    assert transactions.operation_ids(ORDER_ID) == [f"{ORDER_ID}/v1"]
    assert transactions.called("update_cashback") == [f"{ORDER_ID}/v1"]


def test_an_invoice_already_equal_to_the_target_is_charged_without_an_update(
        store, transactions, wallets):
    store.add()
    transactions.add_invoice(ORDER_ID, status="success",
                             rewarded={"user": "100.00", "service": "50"})

    assert run() == stq.Finish()
    assert transactions.updates == []
    assert store.records == [(ChargeStatus.CHARGED, None, None)]


def test_a_new_version_sends_its_own_id_with_a_dropped_source_as_zero(store, transactions,
                                                                      wallets):
    store.add(version=2, cashback_by_source={"user": Decimal(70)})
    transactions.add_invoice(ORDER_ID, status="success",
                             rewarded={"user": "100", "service": "50"})

    run()

    assert transactions.updates[0]["operation_id"] == f"{ORDER_ID}/v2"
    assert transactions.updates[0]["reward"] == {"user": Decimal(70), "service": Decimal(0)}


# --- crashes and repeats ------------------------------------------------------------------------


def test_a_run_that_died_after_the_update_sends_nothing_new_when_run_again(
        store, transactions, wallets, policy):
    store.add()
    transactions.add_invoice(ORDER_ID)
    store.crash_on_record = True

    with pytest.raises(SystemExit):
        run()
    assert store.records == []  # the status never committed
    assert run() == stq.Reschedule(policy.poll_delay(0))  # the invoice shows our operation
    transactions.finish(ORDER_ID)
    run()

    assert transactions.operation_ids(ORDER_ID) == [f"{ORDER_ID}/v1"]
    assert store.row.charge_status is ChargeStatus.CHARGED


def test_an_update_whose_answer_was_lost_is_repeated_under_the_same_id_and_applied_once(
        store, transactions, wallets, policy):
    store.add()
    transactions.add_invoice(ORDER_ID)
    transactions.lose_answer("update_cashback", TransactionsUnavailable("read timeout"))
    invoice_version = transactions.cashback(ORDER_ID)["version"]

    with pytest.raises(TransactionsUnavailable):
        run()  # the STQ runner retries the job
    assert store.records == []
    # transactions took it; say its result failed, so the job sends it again.
    transactions.finish(ORDER_ID, ok=False, created=datetime.now(UTC) - timedelta(days=30))
    run()

    assert transactions.called("update_cashback") == [f"{ORDER_ID}/v1", f"{ORDER_ID}/v1/retry/1"]
    assert transactions.operation_ids(ORDER_ID) == [f"{ORDER_ID}/v1", f"{ORDER_ID}/v1/retry/1"]
    assert transactions.updates[1]["version"] == invoice_version + 1


def test_a_version_conflict_reads_the_invoice_again_and_records_nothing(
        store, transactions, wallets, policy, monkeypatch):
    store.add()
    transactions.add_invoice(ORDER_ID, version=5)
    real_retrieve = transactions.retrieve_invoice

    def stale(invoice_id: str):
        invoice = real_retrieve(invoice_id)
        transactions.cashback(invoice_id)["version"] += 1  # someone else updated it meanwhile
        return invoice

    monkeypatch.setattr(transactions, "retrieve_invoice", stale)
    assert run() == stq.Reschedule(policy.poll_initial_s)
    assert store.records == [] and transactions.operation_ids(ORDER_ID) == []

    monkeypatch.setattr(transactions, "retrieve_invoice", real_retrieve)
    run()
    assert transactions.operation_ids(ORDER_ID) == [f"{ORDER_ID}/v1"]
    assert transactions.updates[-1]["version"] == 6


# --- failed invoices and retries ----------------------------------------------------------------


def test_a_failed_invoice_is_retried_under_a_retry_id_once_its_delay_has_passed(
        store, transactions, wallets, policy):
    store.add()
    transactions.add_invoice(ORDER_ID)
    run()
    transactions.finish(ORDER_ID, ok=False, created=datetime.now(UTC))

    waited = run(polls=1)
    assert isinstance(waited, stq.Reschedule)
    assert 0 < waited.delay_s <= policy.retry_delay(1, f"{ORDER_ID}/v1/retry/1")
    assert transactions.called("update_cashback") == [f"{ORDER_ID}/v1"]

    transactions.finish(ORDER_ID, ok=False, created=datetime.now(UTC) - timedelta(days=30))
    run(polls=2)
    assert transactions.called("update_cashback")[-1] == f"{ORDER_ID}/v1/retry/1"


def test_an_operator_retry_sends_the_manual_id(store, transactions, wallets):
    store.add(manual_retries=1)
    transactions.add_invoice(ORDER_ID)
    run()

    assert transactions.called("update_cashback") == [f"{ORDER_ID}/v1/manual/1"]


def test_retries_exhausted_fail_the_order_visibly(store, transactions, wallets, policy):
    store.add()
    transactions.add_invoice(ORDER_ID)
    cashback = transactions.cashback(ORDER_ID)
    cashback["status"] = "failed"
    cashback["operations"] = [
        {"operation_id": f"{ORDER_ID}/v1/retry/{n}", "status": "failed",
         "created": datetime.now(UTC).isoformat()} for n in range(policy.max_operations)]

    assert run() == stq.Finish()
    assert store.row.charge_status is ChargeStatus.FAILED
    assert store.row.error["code"] == "retries_exhausted"


# --- answers that stop or delay the charge ------------------------------------------------------


def test_an_invoice_transactions_does_not_know_is_waited_for_a_bounded_number_of_runs(
        store, transactions, wallets, policy):
    store.add()

    assert run(polls=0) == stq.Reschedule(policy.poll_delay(0))
    assert store.row.charge_status is ChargeStatus.PENDING
    assert run(polls=policy.missing_invoice_limit) == stq.Finish()
    assert store.row.charge_status is ChargeStatus.FAILED
    assert store.row.error["code"] == "invoice_not_found"


def test_rate_limited_reads_and_updates_are_polled_later_without_a_record(
        store, transactions, wallets, policy):
    store.add()
    transactions.add_invoice(ORDER_ID)
    transactions.fail("retrieve_invoice", RateLimited("429"))
    transactions.fail("update_cashback", RateLimited("429"))

    assert run(polls=3) == stq.Reschedule(policy.poll_delay(3))
    assert run(polls=4) == stq.Reschedule(policy.poll_delay(4))
    assert store.records == [] and transactions.operation_ids(ORDER_ID) == []


@pytest.mark.parametrize("error", [TransactionsUnavailable("503"), PeerBadAnswer("junk")])
def test_other_read_failures_raise_for_the_stq_retry_and_record_nothing(
        store, transactions, wallets, error):
    store.add()
    transactions.add_invoice(ORDER_ID)
    transactions.fail("retrieve_invoice", error)

    with pytest.raises(type(error)):
        run()
    assert store.records == []


def test_an_update_transactions_rejects_fails_the_order(store, transactions, wallets):
    store.add()
    transactions.add_invoice(ORDER_ID)
    transactions.fail("update_cashback", BadRequest("negative amount", status=400))

    assert run() == stq.Finish()
    assert store.row.charge_status is ChargeStatus.FAILED
    assert store.row.error["code"] == "update_rejected"


def test_an_invoice_without_a_user_ip_fails_the_order_before_any_update(
        store, transactions, wallets):
    store.add()
    transactions.add_invoice(ORDER_ID, user_ip=None)

    assert run() == stq.Finish()
    assert store.row.error["code"] == "no_user_ip"
    assert transactions.updates == [] and wallets.asked == []


def test_a_wallet_the_service_refuses_fails_the_order(store, transactions, wallets):
    store.add(wallet_id=None)
    transactions.add_invoice(ORDER_ID)
    wallets.refuse = WalletRejected("no such user", status=400)

    assert run() == stq.Finish()
    assert store.row.error["code"] == "wallet_rejected"
    assert transactions.updates == []


def test_the_target_not_reached_after_our_operation_fails_instead_of_inventing_an_id(
        store, transactions, wallets):
    store.add()
    transactions.add_invoice(ORDER_ID)
    run()
    transactions.finish(ORDER_ID)
    transactions.cashback(ORDER_ID)["rewarded"] = [{"source": "user", "amount": "1"}]

    assert run() == stq.Finish()
    assert store.row.error["code"] == "target_not_reached"
    assert transactions.operation_ids(ORDER_ID) == [f"{ORDER_ID}/v1"]
