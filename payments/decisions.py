"""What a command or an expired hold changes in a payment: pure functions from state to changes.

They run under the machine's lock (a `Call` or a timer), so the checks against the state and
the changes they lead to are one atomic decision. A refusal is a typed error; nothing is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from payments.cashflow import compute
from payments.errors import (
    AmountExceedsPayment,
    InconsistentCurrency,
    InvalidAmount,
    InvalidHoldLifetime,
    InvalidPaymentState,
    RepairNotApplicable,
)
from payments.events import (
    CaptureStarted,
    CashFlowChanged,
    Change,
    PaymentStarted,
    Repaired,
    RollbackStarted,
    RouteChanged,
    SessionFinished,
    SessionStarted,
    StatusChanged,
)
from payments.model import (
    PROCESSED,
    TIMEOUT_REASON,
    CaptureData,
    Cart,
    Failure,
    HoldFlow,
    PaymentRequest,
    Target,
)
from payments.money import Money
from payments.state import PaymentState


@dataclass(frozen=True)
class CaptureCommand:
    reason: str
    cost: Money | None = None  # None: the whole payment cost
    cart: Cart | None = None


RepairAction = Literal["resume", "fulfill_session", "fail_session"]


@dataclass(frozen=True)
class RepairCommand:
    """An operator's repair of a failed payment machine, with who and why."""

    action: RepairAction
    trx_id: str | None = None  # fulfill_session: the provider's transaction, when known
    failure: Failure | None = None  # fail_session: why the payment fails
    operator: str | None = None
    reason: str | None = None


def start(request: PaymentRequest, now: datetime, max_hold_lifetime_s: float) -> list[Change]:
    """The changes that create a payment.

    A hold payment stops in `processing_accounter`: its step holds limits and the cash flow.
    A registered payment was processed by the provider already, so it is processed and its
    capture started at once (wire-facts 4.4): it lands in `processing_capture`.
    """
    if request.flow is not None:
        check_hold(request, request.flow, now, max_hold_lifetime_s)
    changes: list[Change] = [
        PaymentStarted(
            invoice_id=request.invoice_id,
            payment_id=request.payment_id,
            party_id=request.party_id,
            shop_id=request.shop_id,
            cost=request.cost,
            flow=request.flow,
            created_at=now,
            transaction_info=request.transaction_info,
            cash_flow_template=request.cash_flow,
            payer=request.payer,
            domain_revision=request.domain_revision,
        ),
        RouteChanged(request.route, request.turnover_limits),
        CashFlowChanged(compute(request.cash_flow, request.cost)),
    ]
    if request.flow is None:
        changes += [StatusChanged(PROCESSED),
                    CaptureStarted(CaptureData(TIMEOUT_REASON, request.cost))]
    return changes


def check_hold(request: PaymentRequest, flow: HoldFlow, now: datetime,
               max_hold_lifetime_s: float) -> None:
    """A hold must end in the future and within the hold window; one that would expire into a
    capture needs something to capture (a capture of 0 is refused, so it could never end)."""
    latest = now + timedelta(seconds=max_hold_lifetime_s)
    if not now < flow.held_until <= latest:
        raise InvalidHoldLifetime(
            f"held_until {flow.held_until.isoformat()} must lie after now and at most "
            f"{max_hold_lifetime_s:g} s ahead (until {latest.isoformat()})")
    if flow.on_hold_expiration == "capture" and request.cost.amount == 0:
        raise InvalidAmount("a hold that expires into a capture needs a positive cost")


def capture(state: PaymentState, command: CaptureCommand) -> list[Change]:
    """Total capture: straight to the provider session. Partial: a new cash flow first.

    A cart without a cost captures the cart's total; with both, they must agree.
    """
    _expect_flow_waiting(state, "captured")
    cost = command.cost or state.cost
    if command.cost is None and command.cart is not None:
        cost = state.cost.with_amount(command.cart.total())
    if cost.currency != state.cost.currency:
        raise InconsistentCurrency(
            f"the payment is in {state.cost.currency}, the capture in {cost.currency}")
    if cost.amount <= 0:
        raise InvalidAmount("a capture needs a positive amount")
    if cost.amount > state.cost.amount:
        raise AmountExceedsPayment(
            f"capture of {cost.amount} exceeds the payment cost {state.cost.amount}")
    if command.cart is not None:
        command.cart.check_total(cost)
    data = CaptureData(command.reason, cost, command.cart)
    if cost == state.cost:
        return [CaptureStarted(data), SessionStarted(Target.captured(data))]
    partial = compute(state.started.cash_flow_template, cost)
    return [CaptureStarted(data), CashFlowChanged(partial)]


def cancel(state: PaymentState, reason: str) -> list[Change]:
    _expect_flow_waiting(state, "cancelled")
    return [SessionStarted(Target.cancelled(reason))]


def hold_expired(state: PaymentState) -> list[Change]:
    """What the hold's `on_hold_expiration` asks for, with the reason `Timeout`."""
    flow = state.started.flow
    if flow is not None and flow.on_hold_expiration == "cancel":
        return cancel(state, TIMEOUT_REASON)
    return capture(state, CaptureCommand(TIMEOUT_REASON))


def resumed(command: RepairCommand) -> Repaired:
    return Repaired(command.action, command.operator, command.reason)


def repair(state: PaymentState, command: RepairCommand) -> list[Change]:
    """The changes an operator's repair records; RepairNotApplicable when it does not fit.

    `fulfill_session` and `fail_session` settle a provider session the machine failed on:
    recorded as succeeded (the chain goes on) or as failed (the payment rolls back and fails).
    """
    repaired = resumed(command)
    if command.action == "resume":
        return [repaired]
    session = state.session
    if state.activity != "finalizing_session" or session is None or (
            session.status != "started"):
        raise RepairNotApplicable(
            f"{command.action} fits a machine failed in finalizing_session with its session "
            f"open; this payment is in {state.activity}")
    if command.action == "fulfill_session":
        return [repaired, SessionFinished(session.target, trx_id=command.trx_id)]
    if command.failure is None:
        raise RepairNotApplicable("fail_session needs a failure {code, reason}")
    return [repaired, SessionFinished(session.target, "failed", failure=command.failure),
            RollbackStarted(command.failure)]


def _expect_flow_waiting(state: PaymentState, wanted: str) -> None:
    if state.activity != "flow_waiting":
        raise InvalidPaymentState(
            f"the payment cannot be {wanted} now: it is {state.status.status}, "
            f"activity {state.activity} (only a held payment waiting in flow_waiting can)")
