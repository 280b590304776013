"""What a command or an expired hold changes in a payment: pure functions from state to changes.

They run under the machine's lock (a `Call` or a timer), so the checks against the state and
the changes they lead to are one atomic decision. A refusal is a typed error; nothing is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from payments.cashflow import compute
from payments.errors import (
    AmountExceedsPayment,
    InconsistentCurrency,
    InvalidAmount,
    InvalidPaymentState,
)
from payments.events import (
    CaptureStarted,
    CashFlowChanged,
    Change,
    PaymentStarted,
    RouteChanged,
    SessionStarted,
    StatusChanged,
)
from payments.model import (
    PROCESSED,
    TIMEOUT_REASON,
    CaptureData,
    Cart,
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


def start(request: PaymentRequest, now: datetime) -> list[Change]:
    """The changes that create a payment.

    A hold payment stops in `processing_accounter`: its step holds limits and the cash flow.
    A registered payment was processed by the provider already, so it is processed and its
    capture started at once (wire-facts 4.4): it lands in `processing_capture`.
    """
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
        ),
        RouteChanged(request.route, request.turnover_limits),
        CashFlowChanged(compute(request.cash_flow, request.cost)),
    ]
    if request.flow is None:
        changes += [StatusChanged(PROCESSED),
                    CaptureStarted(CaptureData(TIMEOUT_REASON, request.cost))]
    return changes


def capture(state: PaymentState, command: CaptureCommand) -> list[Change]:
    """Total capture: straight to the provider session. Partial: a new cash flow first."""
    _expect_flow_waiting(state, "captured")
    cost = command.cost or state.cost
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


def _expect_flow_waiting(state: PaymentState, wanted: str) -> None:
    if state.activity != "flow_waiting":
        raise InvalidPaymentState(
            f"the payment cannot be {wanted} now: it is {state.status.status}, "
            f"activity {state.activity} (only a held payment waiting in flow_waiting can)")
