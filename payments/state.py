"""The payment state, folded from its changes, with the activity transitions of hellgate.

The activity says which step the next timer runs (docs/wire.md 4.1):

    processing_accounter --processed--> flow_waiting --capture_started--> processing_capture
    processing_capture --cash_flow_changed--> updating_accounter
    processing_capture | flow_waiting | updating_accounter --session_started--> finalizing_session
    finalizing_session --session_finished--> finalizing_accounter
    finalizing_accounter --captured | cancelled--> idle
    processing_accounter | finalizing_session --rollback_started--> processing_failure
    processing_failure --failed--> idle

A session that finished `failed` (an operator's `fail_session`) keeps finalizing_session until
the rollback starts. A change that does not fit the current activity is a bug and raises
`InvalidHistory`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from clients import limiter
from payments.cashflow import FinalCashFlow
from payments.events import (
    CaptureStarted,
    CashFlowChanged,
    Change,
    InvalidHistory,
    LimitsCommitted,
    LimitsHeld,
    LimitsRolledBack,
    PaymentStarted,
    PlanBatchHeld,
    PlanCommitted,
    PlanRolledBack,
    Repaired,
    RollbackStarted,
    RouteChanged,
    SessionFinished,
    SessionStarted,
    StatusChanged,
)
from payments.model import (
    PENDING,
    CaptureData,
    Failure,
    PaymentRequest,
    Route,
    Status,
    Target,
    TurnoverLimit,
)
from payments.money import Money

Activity = Literal[
    "new", "processing_accounter", "flow_waiting", "processing_capture", "updating_accounter",
    "finalizing_session", "finalizing_accounter", "processing_failure", "idle",
]

# The first route; a cascade would add one per re-route (docs/wire.md 2.3).
FIRST_ITERATION = 1


@dataclass(frozen=True)
class Session:
    """A provider session driving the payment to `target`."""

    target: Target
    status: Literal["started", "finished", "failed"] = "started"
    trx_id: str | None = None


@dataclass(frozen=True)
class PaymentState:
    activity: Activity = "new"
    payment: PaymentStarted | None = None
    status: Status = PENDING
    route: Route | None = None
    turnover_limits: tuple[TurnoverLimit, ...] = ()
    cash_flow: FinalCashFlow = ()
    partial_cash_flow: FinalCashFlow | None = None
    capture: CaptureData | None = None
    sessions: tuple[Session, ...] = ()
    iteration: int = FIRST_ITERATION
    limits: Literal["held", "committed", "rolled_back"] | None = None
    held_batches: tuple[PlanBatchHeld, ...] = ()
    plan: Literal["committed", "rolled_back"] | None = None
    failure: Failure | None = None  # why the payment is failing (from rollback_started)

    @property
    def started(self) -> PaymentStarted:
        if self.payment is None:
            raise InvalidHistory("the payment has not started")
        return self.payment

    @property
    def cost(self) -> Money:
        """The cost the payment was created with (a partial capture does not rewrite it)."""
        return self.started.cost

    @property
    def captured_cost(self) -> Money | None:
        return self.status.cost if self.status.status == "captured" else None

    @property
    def session(self) -> Session | None:
        return self.sessions[-1] if self.sessions else None

    @property
    def target(self) -> Target | None:
        return self.session.target if self.session else None

    @property
    def trx_id(self) -> str | None:
        """The provider's transaction id: the latest a session reported, else the registered."""
        for session in reversed(self.sessions):
            if session.trx_id is not None:
                return session.trx_id
        info = self.started.transaction_info
        return info.id if info else None

    # Complex ids (docs/wire.md 2.3, 3.4): segments joined with ".", ids never contain one.

    @property
    def plan_id(self) -> str:
        payment = self.started
        return f"{payment.invoice_id}.{payment.payment_id}.{self.iteration}"

    @property
    def limits_operation_id(self) -> str:
        payment, route = self.started, self.require_route()
        return limiter.operation_id(route.provider_id, route.terminal_id, payment.invoice_id,
                                    payment.payment_id, self.iteration)

    def session_id(self, target: Target) -> str:
        """The provider session id: one session per target and route attempt."""
        return f"{self.plan_id}.{target.status}"

    def require_route(self) -> Route:
        if self.route is None:
            raise InvalidHistory("the payment has no route")
        return self.route

    def request(self) -> PaymentRequest:
        """The command this payment was created from (to recognise a repeated one)."""
        payment = self.started
        return PaymentRequest(
            invoice_id=payment.invoice_id,
            payment_id=payment.payment_id,
            party_id=payment.party_id,
            shop_id=payment.shop_id,
            cost=payment.cost,
            route=self.require_route(),
            cash_flow=payment.cash_flow_template,
            turnover_limits=self.turnover_limits,
            transaction_info=payment.transaction_info,
            flow=payment.flow,
            payer=payment.payer,
            domain_revision=payment.domain_revision,
        )


def fold(changes: Iterable[Change], state: PaymentState | None = None) -> PaymentState:
    state = state or PaymentState()
    for change in changes:
        state = apply(state, change)
    return state


def apply(state: PaymentState, change: Change) -> PaymentState:
    match change:
        case PaymentStarted():
            _expect(state, change, "new")
            return _with(state, activity="processing_accounter", payment=change)
        case RouteChanged(route=route, turnover_limits=limits):
            _expect(state, change, "processing_accounter")
            return _with(state, route=route, turnover_limits=limits)
        case CashFlowChanged(cash_flow=cash_flow):
            if state.activity == "processing_capture":
                return _with(state, activity="updating_accounter", partial_cash_flow=cash_flow)
            _expect(state, change, "processing_accounter")
            return _with(state, cash_flow=cash_flow)
        case CaptureStarted(data=data):
            _expect(state, change, "flow_waiting")
            return _with(state, activity="processing_capture", capture=data)
        case SessionStarted(target=target):
            _expect(state, change, "processing_capture", "flow_waiting", "updating_accounter")
            return _with(state, activity="finalizing_session",
                         sessions=(*state.sessions, Session(target)))
        case SessionFinished(target=target, trx_id=trx_id, result=result):
            _expect(state, change, "finalizing_session")
            if target != state.target or state.session is None or (
                    state.session.status != "started"):
                raise InvalidHistory(f"session finished for {target}, open: {state.session}")
            if result == "failed":
                return _with(state, sessions=(*state.sessions[:-1], Session(target, "failed")))
            finished = Session(target, "finished", trx_id)
            return _with(state, activity="finalizing_accounter",
                         sessions=(*state.sessions[:-1], finished))
        case RollbackStarted(failure=failure):
            _expect(state, change, "processing_accounter", "finalizing_session")
            if state.activity == "finalizing_session" and (
                    state.session is None or state.session.status != "failed"):
                raise InvalidHistory("rollback_started while the session has not failed")
            return _with(state, activity="processing_failure", failure=failure)
        case Repaired():
            return state
        case StatusChanged(status=status):
            return _status_changed(state, change, status)
        case LimitsHeld():
            return _with(state, limits="held")
        case LimitsCommitted():
            return _with(state, limits="committed")
        case LimitsRolledBack():
            return _with(state, limits="rolled_back")
        case PlanBatchHeld(batch_id=batch_id):
            if any(held.batch_id == batch_id for held in state.held_batches):
                raise InvalidHistory(f"batch {batch_id} held twice")
            return _with(state, held_batches=(*state.held_batches, change))
        case PlanCommitted():
            return _with(state, plan="committed")
        case PlanRolledBack():
            return _with(state, plan="rolled_back")
    raise InvalidHistory(f"unknown change {change!r}")


def _with(state: PaymentState, **changes: Any) -> PaymentState:
    """`dataclasses.replace` without its per-call look at the fields: a fold runs this once
    per change."""
    return PaymentState(**{**state.__dict__, **changes})


_STATUS_FROM: dict[str, tuple[Activity, Activity]] = {
    # status -> (the activity it must come from, the activity it leads to)
    "processed": ("processing_accounter", "flow_waiting"),
    "captured": ("finalizing_accounter", "idle"),
    "cancelled": ("finalizing_accounter", "idle"),
    "failed": ("processing_failure", "idle"),
}


def _status_changed(state: PaymentState, change: StatusChanged, status: Status) -> PaymentState:
    if status.status not in _STATUS_FROM:
        raise InvalidHistory(f"a payment never changes to {status.status}")
    before, after = _STATUS_FROM[status.status]
    _expect(state, change, before)
    return _with(state, activity=after, status=status)


def _expect(state: PaymentState, change: Change, *activities: Activity) -> None:
    if state.activity not in activities:
        raise InvalidHistory(f"{change.TYPE} in activity {state.activity}")
