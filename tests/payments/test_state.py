"""Folding a payment's history into its state, and the decisions commands make on it (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from payments import decisions
from payments.cashflow import (
    CashFlowAccount,
    FixedVolume,
    PostingTemplate,
    Share,
    ShareVolume,
    compute,
)
from payments.decisions import CaptureCommand, RepairCommand
from payments.errors import (
    AmountExceedsPayment,
    InconsistentCurrency,
    InvalidAmount,
    InvalidCart,
    InvalidHoldLifetime,
    InvalidPaymentState,
    RepairNotApplicable,
)
from payments.events import (
    InvalidHistory,
    LimitsCommitted,
    LimitsHeld,
    PlanBatchHeld,
    PlanCommitted,
    Repaired,
    RollbackStarted,
    SessionFinished,
    SessionStarted,
    StatusChanged,
    from_json,
    to_json,
)
from payments.model import (
    PROCESSED,
    Cart,
    CartLine,
    Failure,
    HoldFlow,
    PaymentRequest,
    Route,
    Status,
    Target,
    TransactionInfo,
    TurnoverLimit,
)
from payments.money import Money
from payments.state import fold

NOW = datetime(2026, 5, 18, 12, 0, tzinfo=UTC)
TEMPLATE = (
    PostingTemplate(CashFlowAccount(1, "provider.settlement"),
                    CashFlowAccount(2, "merchant.settlement"), ShareVolume(Share(1, 1)), "amount"),
    PostingTemplate(CashFlowAccount(2, "merchant.settlement"),
                    CashFlowAccount(3, "system.settlement"), ShareVolume(Share(1, 40)), "fee"),
    PostingTemplate(CashFlowAccount(3, "system.settlement"),
                    CashFlowAccount(4, "external.outcome"), FixedVolume(Money(7, "RUB")), None),
)


def request(flow: HoldFlow | None = None, **changes) -> PaymentRequest:
    values = dict(
        invoice_id="inv-1", payment_id="1", party_id="party", shop_id="shop",
        cost=Money(1000, "RUB"), route=Route(10, 20), cash_flow=TEMPLATE,
        turnover_limits=(TurnoverLimit("daily", 3),),
        transaction_info=TransactionInfo("trx-0", {"rrn": "42"}), flow=flow,
    )
    return PaymentRequest(**{**values, **changes})


HOLD = HoldFlow("cancel", NOW + timedelta(days=1))
WINDOW = 30 * 86400  # the default MAX_HOLD_LIFETIME_S


def roundtrip(changes):
    """Changes as the runner stores them: versioned JSON, read back."""
    return [from_json(to_json(change)) for change in changes]


def held() -> list:
    """A hold payment after its processing_accounter step."""
    changes = decisions.start(request(HOLD), NOW, WINDOW)
    cash_flow = fold(changes).cash_flow
    return changes + [LimitsHeld("op"), PlanBatchHeld("inv-1.1.1", 1, cash_flow),
                      StatusChanged(PROCESSED)]


def test_every_change_survives_its_json_form():
    changes = held()
    assert roundtrip(changes) == changes
    body = to_json(changes[0])
    assert (body["type"], body["v"]) == ("payment_started", 1)


def test_an_unknown_change_version_is_refused():
    body = to_json(held()[-1])
    with pytest.raises(InvalidHistory):
        from_json({**body, "v": 99})
    with pytest.raises(InvalidHistory):
        from_json({**body, "type": "mystery"})


def test_a_registered_payment_starts_in_processing_capture_with_a_timeout_capture():
    state = fold(roundtrip(decisions.start(request(), NOW, WINDOW)))
    assert state.activity == "processing_capture"
    assert state.status == PROCESSED
    assert state.capture.reason == "Timeout" and state.capture.cost == Money(1000, "RUB")
    assert [p.volume.amount for p in state.cash_flow] == [1000, 25, 7]
    assert state.route == Route(10, 20) and state.iteration == 1
    assert state.plan_id == "inv-1.1.1"
    assert state.limits_operation_id == "limiter.batch-request.10.20.inv-1.1.1"
    assert state.request() == request()


def test_a_registered_payment_folds_to_captured():
    start = decisions.start(request(), NOW, WINDOW)
    state = fold(start)
    target = Target.captured(state.capture)
    state = fold([LimitsHeld("op"), PlanBatchHeld("inv-1.1.1", 1, state.cash_flow),
                  SessionStarted(target), SessionFinished(target)], state)
    assert state.activity == "finalizing_accounter"
    assert [s.status for s in state.sessions] == ["finished"]
    assert state.trx_id == "trx-0"  # the registered transaction, no session reported one
    state = fold([LimitsCommitted("op", 1000), PlanCommitted("inv-1.1.1", (1,)),
                  StatusChanged(Status.of_target(target))], state)
    assert (state.activity, state.status.status) == ("idle", "captured")
    assert state.captured_cost == Money(1000, "RUB")
    assert (state.limits, state.plan) == ("committed", "committed")


def test_a_hold_payment_waits_in_flow_waiting():
    state = fold(roundtrip(held()))
    assert state.activity == "flow_waiting"
    assert state.limits == "held"
    assert [b.batch_id for b in state.held_batches] == [1]


def test_total_capture_goes_straight_to_the_session():
    state = fold(held())
    changes = decisions.capture(state, CaptureCommand("done"))
    state = fold(changes, state)
    assert state.activity == "finalizing_session"
    assert state.target == Target("captured", "done", Money(1000, "RUB"))
    assert state.session_id(state.target) == "inv-1.1.1.captured"


def test_partial_capture_recomputes_the_cash_flow_for_the_captured_cost():
    state = fold(held())
    cart = Cart((CartLine("tea", 3, Money(200, "RUB")),))
    state = fold(decisions.capture(state, CaptureCommand("part", Money(600, "RUB"), cart)),
                 state)
    assert state.activity == "updating_accounter"
    assert [p.volume.amount for p in state.partial_cash_flow] == [600, 15, 7]
    assert state.capture.cost == Money(600, "RUB") and state.capture.cart == cart
    assert state.cost == Money(1000, "RUB"), "the payment keeps its original cost"
    target = Target.captured(state.capture)
    state = fold([PlanBatchHeld("p", 2, ()), PlanBatchHeld("p", 3, state.partial_cash_flow),
                  SessionStarted(target), SessionFinished(target, trx_id="trx-9")], state)
    assert state.trx_id == "trx-9"
    state = fold([StatusChanged(Status.of_target(target))], state)
    assert state.captured_cost == Money(600, "RUB")


def test_cancel_starts_a_cancel_session():
    state = fold(held())
    state = fold(decisions.cancel(state, "changed my mind"), state)
    assert state.target == Target.cancelled("changed my mind")
    assert state.activity == "finalizing_session"


@pytest.mark.parametrize(("on_expiration", "target"), [("cancel", "cancelled"),
                                                        ("capture", "captured")])
def test_an_expired_hold_does_what_the_flow_says(on_expiration, target):
    flow = HoldFlow(on_expiration, NOW + timedelta(seconds=1))
    changes = decisions.start(request(flow), NOW, WINDOW)
    state = fold(changes + [StatusChanged(PROCESSED)])
    state = fold(decisions.hold_expired(state), state)
    assert (state.target.status, state.target.reason) == (target, "Timeout")


@pytest.mark.parametrize(
    ("command", "error"),
    [
        (CaptureCommand("x", Money(500, "USD")), InconsistentCurrency),
        (CaptureCommand("x", Money(0, "RUB")), InvalidAmount),
        (CaptureCommand("x", Money(1001, "RUB")), AmountExceedsPayment),
        (CaptureCommand("x", Money(600, "RUB"), Cart((CartLine("tea", 1, Money(500, "RUB")),))),
         InvalidCart),
    ],
)
def test_bad_captures_are_refused(command, error):
    with pytest.raises(error):
        decisions.capture(fold(held()), command)


def test_capture_and_cancel_need_flow_waiting():
    registered = fold(decisions.start(request(), NOW, WINDOW))
    with pytest.raises(InvalidPaymentState):
        decisions.capture(registered, CaptureCommand("again"))
    with pytest.raises(InvalidPaymentState):
        decisions.cancel(registered, "too late")


@pytest.mark.parametrize("bad", [
    [StatusChanged(Status.of_target(Target.cancelled("x")))],  # not finalizing_accounter
    [SessionFinished(Target.cancelled("x"))],  # no session started
])
def test_changes_out_of_order_are_invalid_history(bad):
    with pytest.raises(InvalidHistory):
        fold(held() + bad)


def test_a_batch_held_twice_is_invalid_history():
    with pytest.raises(InvalidHistory):
        fold(held() + [PlanBatchHeld("inv-1.1.1", 1, compute(TEMPLATE, Money(1, "RUB")))])


# --- failures and repairs ---------------------------------------------------------------------

OVERFLOW = Failure("limit_overflow", "daily: 1000 > 999")


def _in_session() -> list:
    """A held payment whose total capture session has started."""
    changes = held()
    return changes + decisions.capture(fold(changes), CaptureCommand("all"))


def test_a_refused_hold_rolls_back_then_fails():
    changes = decisions.start(request(HOLD), NOW, WINDOW) + [LimitsHeld("op"),
                                                             RollbackStarted(OVERFLOW)]
    state = fold(roundtrip(changes))
    assert (state.activity, state.failure) == ("processing_failure", OVERFLOW)
    state = fold([StatusChanged(Status.failed(OVERFLOW))], state)
    assert (state.activity, state.status.status, state.status.failure) == (
        "idle", "failed", OVERFLOW)


@pytest.mark.parametrize("extra", [
    [RollbackStarted(OVERFLOW)],  # flow_waiting: the hold went through
    [StatusChanged(Status.failed(OVERFLOW))],  # failed without a rollback first
])
def test_a_failure_out_of_place_is_invalid_history(extra):
    with pytest.raises(InvalidHistory):
        fold(held() + extra)


def test_a_failed_session_keeps_the_activity_until_the_rollback_starts():
    target = fold(_in_session()).target
    failed = SessionFinished(target, "failed", failure=OVERFLOW)
    state = fold(roundtrip(_in_session() + [failed]))
    assert state.activity == "finalizing_session" and state.session.status == "failed"
    assert fold([RollbackStarted(OVERFLOW)], state).activity == "processing_failure"
    with pytest.raises(InvalidHistory):
        fold(_in_session() + [RollbackStarted(OVERFLOW)])  # the session has not failed
    with pytest.raises(InvalidHistory):
        fold([SessionFinished(target)], state)  # a failed session does not finish again


def test_session_repairs_fit_only_an_open_session():
    state = fold(_in_session())
    fulfilled = decisions.repair(state, RepairCommand("fulfill_session", trx_id="t-1",
                                                      operator="op", reason="why"))
    assert fulfilled == [Repaired("fulfill_session", "op", "why"),
                         SessionFinished(state.target, trx_id="t-1")]
    assert fold(fulfilled, state).activity == "finalizing_accounter"
    failed = decisions.repair(state, RepairCommand("fail_session", failure=OVERFLOW))
    assert fold(failed, state).activity == "processing_failure"
    for elsewhere in (fold(held()), fold(decisions.start(request(), NOW, WINDOW))):
        with pytest.raises(RepairNotApplicable):
            decisions.repair(elsewhere, RepairCommand("fulfill_session"))
    assert decisions.repair(fold(held()), RepairCommand("resume")) == [Repaired("resume")]
    assert fold([Repaired("resume")], state) == state, "a repair record changes no state"


def test_the_hold_window_is_exclusive_of_now_and_inclusive_of_its_end():
    def start(held_until):
        return decisions.start(request(HoldFlow("cancel", held_until)), NOW, WINDOW)

    start(NOW + timedelta(microseconds=1))
    start(NOW + timedelta(seconds=WINDOW))
    for held_until in (NOW, NOW - timedelta(days=1), NOW + timedelta(seconds=WINDOW,
                                                                     microseconds=1),
                       datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14)))):
        with pytest.raises(InvalidHoldLifetime):
            start(held_until)


def test_a_cart_without_a_cost_captures_the_cart_total():
    cart = Cart((CartLine("tea", 2, Money(150, "RUB")), CartLine("cake", 1, Money(100, "RUB"))))
    changes = decisions.capture(fold(held()), CaptureCommand("cart", None, cart))
    state = fold(changes, fold(held()))
    assert state.capture.cost == Money(400, "RUB") and state.capture.cart == cart
    assert state.activity == "updating_accounter", "400 of 1000: a partial capture"
    whole = Cart((CartLine("tea", 4, Money(250, "RUB")),))
    state = fold(decisions.capture(fold(held()), CaptureCommand("cart", None, whole)),
                 fold(held()))
    assert state.activity == "finalizing_session" and state.target.cost == Money(1000, "RUB")
    with pytest.raises(AmountExceedsPayment):
        decisions.capture(fold(held()), CaptureCommand(
            "cart", None, Cart((CartLine("gold", 2, Money(600, "RUB")),))))
