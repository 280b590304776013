"""`cashback_charge_processing` end to end: the worker process charges registered orders
through the sandbox transactions service; the order view follows every stage."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from itertools import pairwise

from prometheus_client import REGISTRY
from sqlalchemy import update

from cashback.metrics import FAILED_ORDERS
from cashback.queues import CHARGE_QUEUE
from tests.cashback.conftest import (
    SERVICE,
    YANDEX_UID,
    register,
    register_body,
    rewards,
    view,
    wait_status,
)
from tests.support.waiting import wait_for
from workers import stq, timers
from workers.db import transaction
from workers.tables import stq_tasks
from workers.tasks import sweep


def charge_task(order_id: str) -> stq.Task | None:
    return stq.pending(CHARGE_QUEUE, f"{SERVICE}/{order_id}")


def reschedules(order_id: str) -> int:
    task = charge_task(order_id)
    return task.reschedule_counter if task else 0


def failed_orders(code: str) -> float:
    return REGISTRY.get_sample_value(FAILED_ORDERS, {"code": code}) or 0.0


def test_register_charges_the_target_and_a_later_register_sends_the_new_target(
        running_worker, api, transactions, new_order_id):
    transactions.seed(new_order_id)
    transactions.settings(delay_s=0.5)

    register(api, new_order_id, {"user": "100", "service": "50"})

    charging = wait_status(api, new_order_id, "charging")
    assert charging["last_operation_id"] == f"{new_order_id}/v1"
    charged = wait_status(api, new_order_id, "charged")
    assert charged["error"] is None
    [first] = transactions.updates(new_order_id)
    assert first["operation_id"] == f"{new_order_id}/v1"
    assert first["version"] == 1
    assert rewards(first) == {"user": "100", "service": "50"}
    assert first["body"]["wallet_account"] == "w/given"
    assert first["body"]["user_ip"] == "127.0.0.1"

    assert register(api, new_order_id, {"user": "40"})["version"] == 2

    wait_for(lambda: len(transactions.updates(new_order_id)) == 2, what="the second update")
    wait_status(api, new_order_id, "charged")
    second = transactions.updates(new_order_id)[1]
    assert second["operation_id"] == f"{new_order_id}/v2"
    assert second["version"] == 2, "the invoice's cashback version as read"
    assert rewards(second) == {"user": "40", "service": "50"}, "the target, not a delta"
    invoice = transactions.invoice(new_order_id)
    assert invoice["cashback"]["status"] == "success"
    assert {r["source"]: r["amount"] for r in invoice["cashback"]["rewarded"]} == {
        "user": "40", "service": "50"}


def test_registering_the_same_values_twice_sends_one_update(running_worker, api, transactions,
                                                          new_order_id):
    transactions.seed(new_order_id)

    register(api, new_order_id, {"user": "100"})
    register(api, new_order_id, {"user": "100"})
    wait_status(api, new_order_id, "charged")
    wait_for(lambda: charge_task(new_order_id) is None, what="the charge task to finish")
    register(api, new_order_id, {"user": "100"})  # once more after it was charged
    wait_for(lambda: charge_task(new_order_id) is None, what="the charge task to finish")

    assert len(transactions.updates(new_order_id, outcome=None)) == 1
    assert view(api, new_order_id)["charge_status"] == "charged"


def test_a_source_the_invoice_has_but_the_order_never_named_is_sent_as_zero(
        running_worker, api, transactions, new_order_id):
    transactions.seed(new_order_id, cashback={
        "status": "success", "version": 4, "rewarded": [{"source": "marketing", "amount": "7"}]})

    register(api, new_order_id, {"user": "10"})

    wait_status(api, new_order_id, "charged")
    [sent] = transactions.updates(new_order_id)
    assert sent["version"] == 4
    assert rewards(sent) == {"marketing": "0", "user": "10"}


def test_nothing_to_send_on_a_fresh_invoice_is_charged_without_an_update(
        running_worker, api, transactions, new_order_id):
    transactions.seed(new_order_id)

    register(api, new_order_id, {"user": "0"})

    wait_status(api, new_order_id, "charged")
    assert transactions.updates(new_order_id, outcome=None) == []


def test_an_invoice_in_progress_is_polled_without_updates(running_worker, api, transactions,
                                                          new_order_id):
    foreign = {"operation_id": "someone-else", "status": "processing",
               "reward": [{"source": "user", "amount": "1"}]}
    transactions.seed(new_order_id, cashback={"status": "in-progress", "version": 2,
                                              "operations": [foreign]})

    register(api, new_order_id, {"user": "100"})

    wait_for(lambda: reschedules(new_order_id) >= 3, what="the charge to poll three times")
    assert transactions.updates(new_order_id, outcome=None) == []
    assert view(api, new_order_id)["charge_status"] == "pending", "nothing sent for it yet"

    transactions.seed(new_order_id, cashback={"status": "success", "version": 3, "operations": [
        {**foreign, "status": "done"}], "rewarded": [{"source": "user", "amount": "1"}]})

    wait_status(api, new_order_id, "charged")
    [sent] = transactions.updates(new_order_id)
    assert (sent["operation_id"], sent["version"]) == (f"{new_order_id}/v1", 3)


def test_a_failed_invoice_is_retried_with_retry_ids_after_the_backoff(
        running_worker, api, transactions, new_order_id):
    transactions.seed(new_order_id)
    transactions.settings(outcomes=["failed", "failed"], outcome="success")

    register(api, new_order_id, {"user": "100"})

    charged = wait_status(api, new_order_id, "charged")
    assert charged["last_operation_id"] == f"{new_order_id}/v1/retry/2"
    operations = transactions.operations(new_order_id)
    assert [(op["operation_id"], op["status"]) for op in operations] == [
        (f"{new_order_id}/v1", "failed"),
        (f"{new_order_id}/v1/retry/1", "failed"),
        (f"{new_order_id}/v1/retry/2", "done"),
    ]
    created = [datetime.fromisoformat(op["created"]) for op in operations]
    gaps = [later - earlier for earlier, later in pairwise(created)]
    # CASHBACK_RETRY_MIN_DELAY_S is 0.2 in tests: no retry comes sooner.
    assert all(gap >= timedelta(seconds=0.2) for gap in gaps), gaps


def test_max_operations_reached_fails_the_order_visibly_and_stops(
        running_worker, api, transactions, new_order_id):
    # Nine earlier failed operations: ours is the tenth, CASHBACK_RETRY_MAX_OPERATIONS.
    earlier = [{"operation_id": f"old-{n}", "status": "failed"} for n in range(9)]
    transactions.seed(new_order_id, cashback={"status": "failed", "version": 10,
                                              "operations": earlier})
    transactions.settings(outcome="failed")
    failed_before = failed_orders("retries_exhausted")

    register(api, new_order_id, {"user": "100"})

    failed = wait_status(api, new_order_id, "failed")
    assert failed["error"]["code"] == "retries_exhausted"
    assert failed["last_operation_id"] == f"{new_order_id}/v1"
    assert charge_task(new_order_id) is None
    time.sleep(1)  # longer than the retry backoff: nothing more may be sent
    assert len(transactions.updates(new_order_id, outcome=None)) == 1
    assert failed_orders("retries_exhausted") == failed_before + 1


def test_an_unknown_invoice_is_awaited_a_bounded_number_of_times_then_fails(
        running_worker, api, transactions, new_order_id):
    register(api, new_order_id, {"user": "100"})

    failed = wait_status(api, new_order_id, "failed")

    assert failed["error"]["code"] == "invoice_not_found"
    assert transactions.updates(new_order_id, outcome=None) == []


def test_an_invoice_without_user_ip_fails_visibly(running_worker, api, transactions,
                                                  new_order_id):
    transactions.seed(new_order_id, user_ip=None)

    register(api, new_order_id, {"user": "100"})

    failed = wait_status(api, new_order_id, "failed")
    assert failed["error"]["code"] == "no_user_ip"
    assert transactions.updates(new_order_id, outcome=None) == []


def test_rate_limiting_reschedules_and_the_charge_goes_through(running_worker, api, peers,
                                                               transactions, new_order_id):
    transactions.seed(new_order_id)
    peers.faults("transactions", {"once": ["429", "429"], "match": "cashback/update"})

    register(api, new_order_id, {"user": "100"})

    wait_status(api, new_order_id, "charged")
    assert peers.state("transactions")["faults"]["injected"] == {"429": 2}
    assert len(transactions.updates(new_order_id)) == 1


def test_a_version_conflict_rereads_the_invoice_and_sends_with_its_new_version(
        running_worker, api, transactions, new_order_id):
    transactions.seed(new_order_id)
    transactions.settings(conflicts=1)  # another writer changes the invoice under the update

    register(api, new_order_id, {"user": "100"})

    wait_status(api, new_order_id, "charged")
    calls = transactions.updates(new_order_id, outcome=None)
    assert [(c["outcome"], c["version"]) for c in calls] == [
        ("version_conflict", 1), ("accepted", 2)]
    assert {c["operation_id"] for c in calls} == {f"{new_order_id}/v1"}


def test_a_failed_order_registered_again_with_a_new_value_is_charged(
        running_worker, api, transactions, new_order_id):
    register(api, new_order_id, {"user": "100"})
    wait_status(api, new_order_id, "failed")  # no invoice yet
    transactions.seed(new_order_id)

    register(api, new_order_id, {"user": "90"})

    charged = wait_status(api, new_order_id, "charged")
    assert charged["error"] is None
    [sent] = transactions.updates(new_order_id)
    assert sent["operation_id"] == f"{new_order_id}/v2"


def register_losing_the_message(api, monkeypatch, order_id: str, values: dict[str, str]) -> None:
    """Register while every Celery publication of this process goes nowhere."""
    with monkeypatch.context() as patch:
        patch.setattr(timers, "publish", lambda *args, **kwargs: None)
        register(api, order_id, values)


def test_a_lost_charge_message_is_brought_back_by_the_sweeper(
        running_worker, api, transactions, monkeypatch, new_order_id):
    transactions.seed(new_order_id)
    register_losing_the_message(api, monkeypatch, new_order_id, {"user": "100"})
    time.sleep(0.5)
    assert view(api, new_order_id)["charge_status"] == "pending"
    assert transactions.updates(new_order_id, outcome=None) == []

    long_ago = datetime.now(UTC) - timedelta(minutes=5)
    with transaction() as tx:  # the redelivery allowance has passed
        tx.conn.execute(update(stq_tasks).where(
            stq_tasks.c.queue == CHARGE_QUEUE,
            stq_tasks.c.task_id == f"{SERVICE}/{new_order_id}",
        ).values(sent_at=long_ago, eta=long_ago, publish_at=long_ago))
    assert sweep()["stq"] >= 1

    wait_status(api, new_order_id, "charged")
    assert len(transactions.updates(new_order_id)) == 1


def test_duplicate_charge_messages_send_one_update(running_worker, api, transactions,
                                                   monkeypatch, new_order_id):
    transactions.seed(new_order_id)
    register_losing_the_message(api, monkeypatch, new_order_id, {"user": "100"})
    task = charge_task(new_order_id)
    with transaction() as tx:
        token = tx.conn.execute(stq_tasks.select().where(
            stq_tasks.c.queue == CHARGE_QUEUE,
            stq_tasks.c.task_id == task.task_id)).one().token

    for _ in range(4):
        timers.publish(CHARGE_QUEUE, {**task.kwargs, stq.TOKEN_KEY: token}, 0)

    wait_status(api, new_order_id, "charged")
    wait_for(lambda: charge_task(new_order_id) is None, what="the charge task to finish")
    assert len(transactions.updates(new_order_id, outcome=None)) == 1


def register_without_wallet(api, order_id: str, values: dict[str, str]) -> None:
    body = register_body(order_id, values)
    del body["wallet_id"]
    response = api.post("/v1/cashback/register", json=body)
    assert response.status_code == 200, response.text


def test_without_a_given_wallet_a_user_with_only_a_legacy_one_gets_one_created(
        running_worker, api, peers, transactions, new_order_id):
    transactions.seed(new_order_id)
    peers.control("wallet", "wallets", {"yandex_uid": YANDEX_UID, "currency": "RUB",
                                        "legacy": True})

    register_without_wallet(api, new_order_id, {"user": "100"})
    wait_status(api, new_order_id, "charged")
    register_without_wallet(api, new_order_id, {"user": "90"})
    wait_for(lambda: len(transactions.updates(new_order_id)) == 2, what="the second update")

    wallets = peers.state("wallet")["wallets"]
    [created] = [w["wallet_id"] for w in wallets if not w["legacy"]]
    assert [u["body"]["wallet_account"] for u in transactions.updates(new_order_id)] == [
        created, created]


def test_without_a_given_wallet_the_users_current_wallet_is_charged(
        running_worker, api, peers, transactions, new_order_id):
    transactions.seed(new_order_id)
    peers.control("wallet", "wallets", {"yandex_uid": YANDEX_UID, "currency": "RUB",
                                        "wallet_id": "w/current"})

    register_without_wallet(api, new_order_id, {"user": "100"})

    wait_status(api, new_order_id, "charged")
    [sent] = transactions.updates(new_order_id)
    assert sent["body"]["wallet_account"] == "w/current"
    assert peers.state("wallet")["calls"].get("create", 0) == 0
