"""`charge.decide`: what the charge job does next for an order, given the invoice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from cashback.charge import (
    ChargePolicy,
    ChargeTarget,
    Done,
    Fail,
    RetryJob,
    Update,
    Wait,
    after_error,
    decide,
    hashed_jitter,
    on_missing_invoice,
)
from clients.json_http import PeerBadAnswer
from clients.transactions import (
    BadRequest,
    Invoice,
    InvoiceNotFound,
    RateLimited,
    TransactionsUnavailable,
    VersionConflict,
)
from clients.wallet import WalletRejected, WalletUnavailable

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
POLICY = ChargePolicy(max_operations=5, retry_min_delay_s=10, retry_max_delay_s=100,
                      poll_initial_s=1, poll_max_s=8, missing_invoice_limit=3)
ORDER = ChargeTarget("o1", 2, {"user": Decimal("100.00"), "service": Decimal("50.00")})


def invoice(status: str, *, version: int = 7, rewarded: dict[str, str] | None = None,
            operations: list[tuple[str, str, datetime]] = (), user_ip: str | None = "::1"
            ) -> Invoice:
    body: dict[str, Any] = {
        "id": "o1", "currency": "RUB", "status": "cleared", "user_ip": user_ip,
        "cashback": {
            "status": status, "version": version,
            "rewarded": [{"source": s, "amount": a} for s, a in (rewarded or {}).items()],
            "operations": [{"operation_id": op, "status": st, "created": created.isoformat()}
                           for op, st, created in operations],
        },
    }
    return Invoice.model_validate(body)


def test_a_fresh_invoice_gets_the_full_target_under_the_version_id():
    assert decide(ORDER, invoice("init"), NOW, POLICY) == Update(
        "o1/v2", 7, {"user": Decimal("100.00"), "service": Decimal("50.00")})


def test_a_source_only_the_invoice_has_is_sent_as_zero():
    decision = decide(ORDER, invoice("success", rewarded={"promo": "5"}), NOW, POLICY)

    assert isinstance(decision, Update)
    assert decision.reward == {"user": Decimal("100.00"), "service": Decimal("50.00"),
                               "promo": Decimal(0)}


def test_terminal_and_equal_is_done_and_a_missing_source_counts_as_zero():
    order = ChargeTarget("o1", 3, {"user": Decimal("100"), "service": Decimal(0)})

    assert decide(order, invoice("success", rewarded={"user": "100.00"}), NOW, POLICY) == Done()
    assert decide(ChargeTarget("o1", 1, {"user": Decimal(0)}), invoice("init"), NOW,
                  POLICY) == Done()


def test_in_progress_waits_longer_with_every_poll_up_to_the_cap():
    delays = [decide(ORDER, invoice("in-progress"), NOW, POLICY, polls=n).delay_s
              for n in range(8)]

    assert delays[0] == 1
    assert delays == sorted(delays)
    assert delays[-1] == 8


def test_a_failed_older_version_is_not_a_retry_of_this_one():
    failed = invoice("failed", operations=[("o1/v1", "failed", NOW - timedelta(seconds=1))])

    assert decide(ORDER, failed, NOW, POLICY) == Update(
        "o1/v2", 7, {"user": Decimal("100.00"), "service": Decimal("50.00")})


def test_a_failed_operation_is_retried_after_the_backoff_from_its_creation():
    sent_at = NOW - timedelta(seconds=1)
    failed = invoice("failed", operations=[("o1/v2", "failed", sent_at)])
    delay = POLICY.retry_delay(1, "o1/v2/retry/1")

    early = decide(ORDER, failed, NOW, POLICY)
    due = decide(ORDER, failed, sent_at + timedelta(seconds=delay), POLICY)

    assert early == Wait(pytest.approx(delay - 1))
    assert isinstance(due, Update) and due.operation_id == "o1/v2/retry/1"


def test_the_nth_retry_gets_the_nth_retry_id():
    ops = [("o1/v2", "failed", NOW - timedelta(hours=3)),
           ("o1/v2/retry/1", "failed", NOW - timedelta(hours=2)),
           ("o1/v2/retry/2", "failed", NOW - timedelta(hours=1))]

    decision = decide(ORDER, invoice("failed", operations=ops), NOW, POLICY)

    assert isinstance(decision, Update) and decision.operation_id == "o1/v2/retry/3"


def test_retries_stop_when_the_invoice_has_max_operations():
    ops = [(f"x{n}", "failed", NOW - timedelta(hours=1)) for n in range(4)]
    ops.append(("o1/v2", "failed", NOW - timedelta(hours=1)))

    decision = decide(ORDER, invoice("failed", operations=ops), NOW, POLICY)

    assert isinstance(decision, Fail) and decision.reason == "retries_exhausted"


@pytest.mark.parametrize("retry", range(1, 12))
def test_the_retry_delay_follows_the_contract(retry):
    base = min(100, 10 * 2 ** (retry - 1))

    delay = POLICY.retry_delay(retry, f"o1/v2/retry/{retry}")

    assert max(10, base * 0.5) <= delay <= base * 1.5
    assert delay >= 10


def test_the_jitter_is_spread_over_half_to_one_and_a_half_and_stable_per_id():
    draws = [hashed_jitter(f"order-{n}/v1/retry/1") for n in range(2000)]

    assert all(0.5 <= d < 1.5 for d in draws)
    assert min(draws) < 0.55 and max(draws) > 1.45
    assert abs(sum(draws) / len(draws) - 1) < 0.03
    assert hashed_jitter("a/v1/retry/1") == hashed_jitter("a/v1/retry/1")


def test_no_user_ip_fails_instead_of_sending():
    decision = decide(ORDER, invoice("init", user_ip=None), NOW, POLICY)

    assert isinstance(decision, Fail) and decision.reason == "no_user_ip"


def test_an_invoice_that_took_this_version_yet_differs_fails_visibly():
    took = invoice("success", rewarded={"user": "1"},
                   operations=[("o1/v2", "done", NOW - timedelta(seconds=5))])

    decision = decide(ORDER, took, NOW, POLICY)

    assert isinstance(decision, Fail) and decision.reason == "target_not_reached"


def test_a_missing_invoice_is_awaited_a_bounded_number_of_times():
    assert [type(on_missing_invoice("o1", n, POLICY)) for n in range(5)] == [
        Wait, Wait, Wait, Fail, Fail]


# --- operator retries: `<order_id>/v<version>/manual/<n>`, one operation past the limit each ---

EXHAUSTED = [(f"x{n}", "failed", NOW - timedelta(hours=1)) for n in range(4)] + [
    ("o1/v2", "failed", NOW - timedelta(hours=1))]
MANUAL = ChargeTarget("o1", 2, ORDER.target, manual=1)


@pytest.mark.parametrize(("order", "state", "operations", "expected"), [
    pytest.param(MANUAL, "failed", EXHAUSTED, Update("o1/v2/manual/1", 7, dict(ORDER.target)),
                 id="exhausted-invoice-takes-one-more-at-once"),
    pytest.param(MANUAL, "failed", EXHAUSTED + [("o1/v2/manual/1", "failed", NOW)],
                 "retries_exhausted", id="the-manual-try-failed-too"),
    pytest.param(ChargeTarget("o1", 2, ORDER.target, manual=2), "failed",
                 EXHAUSTED + [("o1/v2/manual/1", "failed", NOW)],
                 Update("o1/v2/manual/2", 7, dict(ORDER.target)), id="second-operator-retry"),
    pytest.param(MANUAL, "success", [("o1/v2", "done", NOW)],
                 Update("o1/v2/manual/1", 7, dict(ORDER.target)),
                 id="took-the-version-yet-differs-gets-the-manual-id"),
    pytest.param(MANUAL, "success", [("o1/v2", "done", NOW), ("o1/v2/manual/1", "done", NOW)],
                 "target_not_reached", id="manual-id-taken-yet-differs"),
    pytest.param(MANUAL, "init", [], Update("o1/v2/manual/1", 7, dict(ORDER.target)),
                 id="never-sent-goes-under-the-manual-id"),
    pytest.param(MANUAL, "failed", [("o1/v2/manual/1", "failed", NOW - timedelta(hours=1))],
                 Update("o1/v2/retry/1", 7, dict(ORDER.target)),
                 id="below-the-limit-a-failed-manual-try-is-retried-as-usual"),
])
def test_an_operator_retry_sends_its_manual_id_once(order, state, operations, expected):
    decision = decide(order, invoice(state, operations=operations, rewarded={"user": "1"}),
                      NOW, POLICY)

    if isinstance(expected, str):
        assert isinstance(decision, Fail) and decision.reason == expected, decision
    else:
        assert decision == expected


def test_an_operator_retry_of_a_charged_target_is_done_without_sending():
    rewarded = {"user": "100", "service": "50"}

    assert decide(MANUAL, invoice("success", rewarded=rewarded), NOW, POLICY) == Done()


# --- what a call that raised comes to ----------------------------------------------------------

RATE_LIMITED = RateLimited("429")
CONFLICT = VersionConflict("version 7 is stale", status=409)
MISSING = InvoiceNotFound("no invoice o1", status=404)
REFUSED = BadRequest("negative amount", status=400)
WALLET_REFUSED = WalletRejected("no such user", status=400)
DOWN = TransactionsUnavailable("503")
WALLET_DOWN = WalletUnavailable("timeout")
JUNK = PeerBadAnswer("junk")
BUG = KeyError("bug")


@pytest.mark.parametrize("call, error, polls, expected", [
    # Rate limited anywhere: poll later, the order untouched.
    ("retrieve_invoice", RATE_LIMITED, 2, Wait(POLICY.poll_delay(2), record=False,
                                               why="transactions rate limited")),
    ("update_cashback", RATE_LIMITED, 3, Wait(POLICY.poll_delay(3), record=False,
                                              why="transactions rate limited")),
    # The invoice moved under the update: read it again at once.
    ("update_cashback", CONFLICT, 4, Wait(POLICY.poll_initial_s, record=False,
                                          why="invoice changed under the update; reading it "
                                              "again")),
    # transactions does not know the invoice: the bounded wait for it.
    ("retrieve_invoice", MISSING, 0, Wait(POLICY.poll_delay(0))),
    ("update_cashback", MISSING, 1, Wait(POLICY.poll_delay(1))),
    ("retrieve_invoice", MISSING, 3, on_missing_invoice("o1", 3, POLICY)),
    # A refusal of the update or of the wallet fails the order.
    ("update_cashback", REFUSED, 0, Fail("update_rejected", str(REFUSED))),
    ("wallet", WALLET_REFUSED, 0, Fail("wallet_rejected", str(WALLET_REFUSED))),
    # Anything else is the STQ runner's to retry: nothing can be decided from it.
    ("retrieve_invoice", DOWN, 0, RetryJob(DOWN)),
    ("retrieve_invoice", JUNK, 0, RetryJob(JUNK)),
    ("retrieve_invoice", REFUSED, 0, RetryJob(REFUSED)),  # a refused read is not a refusal
    ("retrieve_invoice", CONFLICT, 0, RetryJob(CONFLICT)),
    ("update_cashback", DOWN, 0, RetryJob(DOWN)),
    ("wallet", WALLET_DOWN, 0, RetryJob(WALLET_DOWN)),
    ("wallet", MISSING, 0, RetryJob(MISSING)),
    ("update_cashback", BUG, 0, RetryJob(BUG)),
])
def test_a_call_that_raised_comes_to_one_decision(call, error, polls, expected):
    assert after_error(call, error, "o1", polls, POLICY) == expected


def test_the_missing_invoice_wait_ends_in_a_failure_at_its_limit():
    decision = after_error("retrieve_invoice", MISSING, "o1", POLICY.missing_invoice_limit,
                           POLICY)

    assert isinstance(decision, Fail) and decision.reason == "invoice_not_found"
