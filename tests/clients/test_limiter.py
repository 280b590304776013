"""LimiterClient against the Limiter double: batch hold/commit/rollback and business errors."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from clients.limiter import (
    AmountBound,
    ForbiddenOperationAmount,
    InvalidOperationCurrency,
    InvalidRequest,
    Limit,
    LimitChange,
    LimitChangeNotFound,
    LimiterClient,
    LimitNotFound,
    PaymentContext,
    limit_context,
    operation_id,
)
from sandbox.woody_server import missing_required
from tests.clients.conftest import WoodyPeers

OPERATION = operation_id(11, 22, "inv1", "pay1", 1)
CHANGES = [LimitChange("daily", version=7), LimitChange("monthly", version=7)]


def _context(cost: int = 1_000, currency: str = "RUB",
             captured: int | None = None) -> PaymentContext:
    return PaymentContext(
        invoice_id="inv1", payment_id="pay1", party_id="party1", shop_id="shop1",
        created_at="2026-05-18T12:00:00Z", domain_revision=7, cost_amount=cost,
        currency=currency, provider_id=11, terminal_id=22, captured_amount=captured,
        flow_hold=("cancel", "2026-05-25T12:00:00Z"),
    )


@pytest.fixture
def limiter(woody_peers: WoodyPeers) -> Iterator[LimiterClient]:
    woody_peers.add_limit("daily", "RUB", upper_boundary=5_000)
    woody_peers.add_limit("monthly", "RUB", upper_boundary=100_000)
    client = LimiterClient(woody_peers.limiter_url)
    yield client
    client.close()


def _limit_totals(woody_peers: WoodyPeers, limit_id: str) -> tuple[int, int]:
    limit = woody_peers.limiter_state()["limits"][limit_id]
    return limit["held"], limit["committed"]


def test_operation_id_follows_hellgate() -> None:
    assert operation_id(1, 2, "inv", "pay", 3) == "limiter.batch-request.1.2.inv.pay.3"


def test_hold_get_and_commit_a_partial_capture(limiter: LimiterClient,
                                               woody_peers: WoodyPeers) -> None:
    held = limiter.hold_batch(OPERATION, CHANGES, _context(cost=1_000))
    assert held == [Limit("daily", 1_000), Limit("monthly", 1_000)]
    assert limiter.get_batch(OPERATION, CHANGES, _context()) == held
    assert _limit_totals(woody_peers, "daily") == (1_000, 0)

    limiter.commit_batch(OPERATION, CHANGES, _context(cost=1_000, captured=600))
    assert _limit_totals(woody_peers, "daily") == (0, 600)
    assert _limit_totals(woody_peers, "monthly") == (0, 600)
    assert limiter.get_batch(OPERATION, CHANGES, _context()) == [
        Limit("daily", 600), Limit("monthly", 600)]


def test_commit_without_captured_cost_commits_the_held_amount(
        limiter: LimiterClient, woody_peers: WoodyPeers) -> None:
    limiter.hold_batch(OPERATION, CHANGES, _context(cost=800))
    limiter.commit_batch(OPERATION, CHANGES, _context(cost=800))
    limiter.commit_batch(OPERATION, CHANGES, _context(cost=800))  # a repeat changes nothing
    assert _limit_totals(woody_peers, "daily") == (0, 800)


def test_hold_is_idempotent_per_operation(limiter: LimiterClient,
                                          woody_peers: WoodyPeers) -> None:
    first = limiter.hold_batch(OPERATION, CHANGES, _context(cost=300))
    second = limiter.hold_batch(OPERATION, CHANGES, _context(cost=300))
    assert first == second == [Limit("daily", 300), Limit("monthly", 300)]
    assert _limit_totals(woody_peers, "daily") == (300, 0)


def test_rollback_releases_the_hold_and_can_be_repeated(
        limiter: LimiterClient, woody_peers: WoodyPeers) -> None:
    limiter.hold_batch(OPERATION, CHANGES, _context(cost=450))
    limiter.rollback_batch(OPERATION, CHANGES, _context(cost=450))
    limiter.rollback_batch(OPERATION, CHANGES, _context(cost=450))
    assert _limit_totals(woody_peers, "daily") == (0, 0)
    with pytest.raises(InvalidRequest) as raised:
        limiter.hold_batch(OPERATION, CHANGES, _context(cost=450))
    assert raised.value.errors == ["OperationAlreadyInFinalState"]


def test_overflow_is_a_value_not_an_error(limiter: LimiterClient,
                                          woody_peers: WoodyPeers) -> None:
    limiter.hold_batch(operation_id(11, 22, "inv0", "pay0", 1), CHANGES[:1],
                       _context(cost=4_000))
    held = limiter.hold_batch(OPERATION, CHANGES[:1], _context(cost=1_500))
    assert held == [Limit("daily", 5_500)]  # above the 5 000 boundary; the caller decides
    assert woody_peers.limiter_state()["limits"]["daily"]["overflow"] is True


def test_unknown_operation_on_commit_and_rollback_is_operation_not_found(
        limiter: LimiterClient, woody_peers: WoodyPeers) -> None:
    with pytest.raises(InvalidRequest) as on_rollback:
        limiter.rollback_batch(OPERATION, CHANGES, _context())
    assert on_rollback.value.errors == ["OperationNotFound"]
    with pytest.raises(InvalidRequest) as on_commit:
        limiter.commit_batch(OPERATION, CHANGES, _context())
    assert on_commit.value.errors == ["OperationNotFound"]
    assert woody_peers.limiter_calls("RollbackBatch") == 1  # business errors: no retry


def test_a_limit_the_operation_did_not_hold_is_limit_change_not_found(
        limiter: LimiterClient) -> None:
    limiter.hold_batch(OPERATION, CHANGES[:1], _context())
    with pytest.raises(LimitChangeNotFound) as raised:
        limiter.commit_batch(OPERATION, CHANGES, _context())
    assert raised.value.code == "limit_change_not_found"


def test_unknown_limit_and_wrong_currency_are_typed_errors(
        limiter: LimiterClient, woody_peers: WoodyPeers) -> None:
    with pytest.raises(LimitNotFound):
        limiter.hold_batch(OPERATION, [LimitChange("no-such-limit")], _context())
    with pytest.raises(InvalidOperationCurrency) as raised:
        limiter.hold_batch(OPERATION, CHANGES, _context(currency="USD"))
    assert (raised.value.currency, raised.value.expected_currency) == ("USD", "RUB")
    # a rollback with the hold's context repeats the hold's business error
    with pytest.raises(InvalidOperationCurrency):
        limiter.rollback_batch(OPERATION, CHANGES, _context(currency="USD"))
    assert woody_peers.limiter_state()["operations"] == {}


def test_capturing_more_than_was_held_is_forbidden(limiter: LimiterClient,
                                                   woody_peers: WoodyPeers) -> None:
    limiter.hold_batch(OPERATION, CHANGES, _context(cost=1_000))
    with pytest.raises(ForbiddenOperationAmount) as raised:
        limiter.commit_batch(OPERATION, CHANGES, _context(cost=1_000, captured=1_001))
    assert raised.value.amount == 1_001
    assert raised.value.upper == AmountBound(1_000, inclusive=True)
    assert raised.value.lower == AmountBound(0, inclusive=True)
    assert _limit_totals(woody_peers, "daily") == (1_000, 0)


def test_unknown_result_on_hold_batch_is_retried_and_holds_once(
        woody_peers: WoodyPeers, limiter: LimiterClient) -> None:
    woody_peers.limiter_faults({"once": ["timeout_after"], "timeout_ms": 2_000})
    client = LimiterClient(woody_peers.limiter_url, timeout_s=1.5, attempts=3)
    assert client.hold_batch(OPERATION, CHANGES, _context(cost=250)) == [
        Limit("daily", 250), Limit("monthly", 250)]
    assert woody_peers.limiter_calls("HoldBatch") == 2
    assert _limit_totals(woody_peers, "daily") == (250, 0)


def test_no_changes_means_no_call(limiter: LimiterClient, woody_peers: WoodyPeers) -> None:
    assert limiter.hold_batch(OPERATION, [], _context()) == []
    limiter.commit_batch(OPERATION, [], _context())
    assert woody_peers.limiter_state()["calls"] == {}


def test_context_sets_every_required_field_and_captured_cost_only_on_commit() -> None:
    hold_context = limit_context(_context(cost=1_000))
    commit_context = limit_context(_context(cost=1_000, captured=600))
    assert missing_required(hold_context, "context") == []
    assert missing_required(commit_context, "context") == []
    hold_status = hold_context.payment_processing.invoice.payment.payment.status
    commit_status = commit_context.payment_processing.invoice.payment.payment.status
    assert hold_status.captured is not None and hold_status.captured.cost is None
    assert commit_status.captured.cost.amount == 600
    assert commit_context.payment_processing.invoice.payment.payment.cost.amount == 1_000


def test_bad_hold_flow_is_refused_before_any_call() -> None:
    with pytest.raises(ValueError):
        dataclasses.replace(_context(), flow_hold=("refund", "2026-05-25T12:00:00Z"))


def test_the_payer_travels_as_a_bank_card_with_contacts_and_stays_valid_without_one() -> None:
    from clients.limiter import BankCard, Payer

    payer = Payer(BankCard("tok-1", bin="424242", last_digits="4242", payment_system="visa"),
                  email="a@example.com", phone_number="+70000000000")
    context = limit_context(dataclasses.replace(_context(), payer=payer))
    assert missing_required(context, "context") == []
    resource = context.payment_processing.invoice.payment.payment.payer.payment_resource
    card = resource.resource.payment_tool.bank_card
    assert (card.token, card.bin, card.last_digits, card.payment_system.id) == (
        "tok-1", "424242", "4242", "visa")
    assert (resource.contact_info.email, resource.contact_info.phone_number) == (
        "a@example.com", "+70000000000")

    bare = limit_context(dataclasses.replace(_context(), payer=Payer(BankCard("tok-2"))))
    assert missing_required(bare, "context") == [], "bin and last digits the IDL requires"
    none = limit_context(_context()).payment_processing.invoice.payment.payment.payer
    assert none.payment_resource.resource.payment_tool.payment_terminal is not None
