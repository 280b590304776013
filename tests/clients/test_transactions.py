"""The transactions client against the sandbox transactions service over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from clients.transactions import (
    BadRequest,
    InvoiceNotFound,
    RateLimited,
    TransactionsClient,
    TransactionsUnavailable,
    VersionConflict,
)
from sandbox.control_client import Sandbox


@pytest.fixture
def client(peers: Sandbox) -> Iterator[TransactionsClient]:
    transactions = TransactionsClient(peers.url("transactions"), timeout_s=1, attempts=3,
                                      backoff_s=0.01)
    yield transactions
    transactions.close()


def update(client: TransactionsClient, operation_id: str, version: int,
           reward: dict[str, Decimal], invoice_id: str = "order-1") -> None:
    client.update_cashback(invoice_id=invoice_id, operation_id=operation_id, version=version,
                           yandex_uid="uid-1", user_ip="127.0.0.1", wallet_account="w/1",
                           reward=reward)


def test_retrieve_parses_the_invoice_with_decimal_amounts(transactions, client):
    created = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    transactions.seed("order-1", cleared=[{"payment_type": "card",
                            "items": [{"item_id": "ride", "amount": "250.50"}]}],
         cashback={"status": "success", "version": 3,
                   "rewarded": [{"source": "user", "amount": "10.25"}],
                   "operations": [{"operation_id": "op-1", "status": "done",
                                   "created": created.isoformat(),
                                   "reward": [{"source": "user", "amount": "10.25"}]}]})

    invoice = client.retrieve_invoice("order-1")

    assert (invoice.id, invoice.currency, invoice.user_ip, invoice.yandex_uid) == (
        "order-1", "RUB", "127.0.0.1", "uid-1")
    assert invoice.cleared[0].payment_type == "card"
    assert invoice.cleared[0].items[0].amount == Decimal("250.50")
    assert invoice.cashback.status == "success"
    assert invoice.cashback.version == 3
    assert [(r.source, r.amount) for r in invoice.cashback.rewarded] == [
        ("user", Decimal("10.25"))]
    operation = invoice.cashback.operations[0]
    assert (operation.operation_id, operation.status, operation.created) == (
        "op-1", "done", created)


def test_retrieve_of_an_unknown_invoice_is_not_found(transactions, client):
    with pytest.raises(InvoiceNotFound):
        client.retrieve_invoice("nobody")


def test_update_sends_the_target_as_decimal_strings_and_succeeds_after_the_delay(transactions,
                                                                               client):
    transactions.seed("order-1")
    transactions.control("settings", {"delay_s": 0.3})

    update(client, "order-1/v1", 1, {"user": Decimal("100.50"), "service": Decimal("50")})

    [call] = transactions.updates(outcome=None)
    assert call["body"]["reward"] == [{"source": "service", "amount": "50"},
                                      {"source": "user", "amount": "100.50"}]
    assert call["outcome"] == "accepted"
    invoice = client.retrieve_invoice("order-1")
    assert invoice.cashback.status == "in-progress"
    assert invoice.cashback.version == 2
    [operation] = invoice.cashback.operations
    assert operation.status == "processing"
    assert abs(operation.created - datetime.now(UTC)) < timedelta(seconds=5)
    time.sleep(0.4)
    invoice = client.retrieve_invoice("order-1")
    assert invoice.cashback.status == "success"
    assert invoice.cashback.operations[0].status == "done"
    assert {r.source: r.amount for r in invoice.cashback.rewarded} == {
        "user": Decimal("100.50"), "service": Decimal("50")}


def test_the_same_operation_id_again_is_accepted_without_a_new_operation(transactions, client):
    transactions.seed("order-1")
    update(client, "order-1/v1", 1, {"user": Decimal("10")})

    update(client, "order-1/v1", 1, {"user": Decimal("10")})

    invoice = client.retrieve_invoice("order-1")
    assert [op.operation_id for op in invoice.cashback.operations] == ["order-1/v1"]
    assert invoice.cashback.version == 2
    assert [u["outcome"] for u in transactions.updates(outcome=None)] == ["accepted", "repeat"]


def test_a_stale_version_is_a_conflict_and_changes_nothing(transactions, client):
    transactions.seed("order-1", cashback={"status": "success", "version": 5})

    with pytest.raises(VersionConflict):
        update(client, "order-1/v1", 4, {"user": Decimal("10")})

    invoice = transactions.invoice("order-1")
    assert invoice["cashback"]["version"] == 5
    assert invoice["cashback"]["operations"] == []


def test_an_update_while_one_is_in_progress_is_a_conflict(transactions, client):
    transactions.seed("order-1")
    transactions.control("settings", {"delay_s": 30})
    update(client, "order-1/v1", 1, {"user": Decimal("10")})

    with pytest.raises(VersionConflict):
        update(client, "order-1/v2", 2, {"user": Decimal("20")})


def test_unknown_invoice_and_negative_amount_are_typed_errors(transactions, client):
    transactions.seed("order-1")
    with pytest.raises(InvoiceNotFound):
        update(client, "x/v1", 1, {"user": Decimal("1")}, invoice_id="nobody")
    with pytest.raises(BadRequest):
        update(client, "order-1/v1", 1, {"user": Decimal("-1")})
    assert transactions.invoice("order-1")["cashback"]["operations"] == []


def test_a_failed_outcome_keeps_the_rewarded_cashback(transactions, client):
    transactions.seed("order-1", cashback={"status": "success", "version": 1,
                            "rewarded": [{"source": "user", "amount": "5"}]})
    transactions.control("settings", {"outcomes": ["failed"]})

    update(client, "order-1/v1", 1, {"user": Decimal("10")})
    update(client, "order-1/v1/retry/1", 2, {"user": Decimal("10")})

    invoice = client.retrieve_invoice("order-1")
    assert [(op.operation_id, op.status) for op in invoice.cashback.operations] == [
        ("order-1/v1", "failed"), ("order-1/v1/retry/1", "done")]
    assert invoice.cashback.status == "success"
    assert invoice.cashback.rewarded[0].amount == Decimal("10")


def test_rate_limiting_is_a_typed_error_and_not_retried_inline(transactions, client):
    transactions.seed("order-1")
    transactions.control("faults", {"once": ["429"], "match": "cashback/update"})

    with pytest.raises(RateLimited):
        update(client, "order-1/v1", 1, {"user": Decimal("10")})

    state = transactions.control("state", method="GET")
    assert state["faults"]["injected"] == {"429": 1}
    assert state["updates"] == []


def test_an_unavailable_peer_is_retried_with_the_same_operation_id(transactions, client):
    transactions.seed("order-1")
    transactions.control("faults", {"once": ["503", "reset"], "match": "cashback/update"})

    update(client, "order-1/v1", 1, {"user": Decimal("10")})

    # The 503 ran nothing; the reset applied the update and cut the answer; the third
    # attempt repeated the id and the peer took it as the same operation.
    assert [u["outcome"] for u in transactions.updates(outcome=None)] == ["accepted", "repeat"]
    assert len(transactions.invoice("order-1")["cashback"]["operations"]) == 1


def test_a_peer_that_keeps_failing_is_unavailable_after_the_attempts(transactions, client):
    transactions.seed("order-1")
    transactions.control("faults", {"rates": {"503": 1.0}})

    with pytest.raises(TransactionsUnavailable):
        client.retrieve_invoice("order-1")

    assert transactions.control("faults", method="GET")["injected"] == {"503": 3}


def test_retrieve_keeps_held_and_cleared_per_payment_type_with_their_items(transactions,
                                                                           client):
    cleared = [{"payment_type": "card", "items": [
                   {"item_id": "ride", "amount": "1000"}, {"item_id": "cashback", "amount": "100"},
                   {"item_id": "tips", "amount": "20"}]},
               {"payment_type": "applepay", "items": [{"item_id": "ride", "amount": "280.5"}]}]
    held = [{"payment_type": "card", "items": [{"item_id": "ride", "amount": "100"}]}]
    transactions.seed("order-1", cleared=cleared, held=held, sum_to_pay=cleared)

    invoice = client.retrieve_invoice("order-1")

    def sums(payments) -> list[tuple[str, list[tuple[str, Decimal]]]]:
        return [(p.payment_type, [(i.item_id, i.amount) for i in p.items]) for p in payments]

    assert sums(invoice.cleared) == [
        ("card", [("ride", Decimal(1000)), ("cashback", Decimal(100)), ("tips", Decimal(20))]),
        ("applepay", [("ride", Decimal("280.5"))])]
    assert sums(invoice.held) == [("card", [("ride", Decimal(100))])]
    assert sums(invoice.sum_to_pay) == sums(invoice.cleared)


@pytest.mark.parametrize("amount", ["abc", "NaN", "Infinity", ""])
def test_the_sandbox_refuses_an_invoice_item_the_client_could_not_parse(transactions, amount):
    with pytest.raises(AssertionError, match="400"):
        transactions.seed("order-1", cleared=[{"payment_type": "card", "items": [
            {"item_id": "ride", "amount": amount}]}])
