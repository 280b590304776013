"""The steps of the payment machine: one function per activity, run when its timer fires.

A step reads the folded state, calls peers and returns the changes to record plus the next
timer. It never touches the database or Celery: the machine runner stores what it returns, in
one transaction with the timer. Every peer call is keyed by ids derived from the state (plan id
+ batch id, limiter operation id, provider session id), so a step repeated after a crash or a
failed attempt repeats the same calls and the peers answer as they did the first time.

A step that raises stores nothing; the processor's `is_transient` decides between a retry on a
timer and marking the machine failed (see `processor`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from clients import accounter
from clients.limiter import LimitChange, PaymentContext
from clients.woody import BusinessError
from foundation.errors import TypedError
from payments import decisions
from payments.cashflow import FinalCashFlow, revert, to_batch
from payments.events import (
    Change,
    InvalidHistory,
    LimitsCommitted,
    LimitsHeld,
    LimitsRolledBack,
    PlanBatchHeld,
    PlanCommitted,
    PlanRolledBack,
    RollbackStarted,
    SessionFinished,
    SessionStarted,
    StatusChanged,
)
from payments.model import PROCESSED, CaptureData, Failure, Status, Target
from payments.money import Money
from payments.peers import Peers
from payments.state import Activity, PaymentState
from workers.machines import Action

log = logging.getLogger(__name__)

# Batch ids within the payment's plan (docs/wire.md 2.3).
HOLD_BATCH, REVERT_BATCH, PARTIAL_BATCH = 1, 2, 3

# This service keeps no domain configuration: the limiter context carries the revision the
# payment command gave, else this one.
DEFAULT_DOMAIN_REVISION = 0


@dataclass(frozen=True)
class Step:
    changes: Sequence[Change]
    action: Action


class ProviderSessionFailed(TypedError):
    """The provider failed the session for good: nothing here can fix it, an operator can."""

    code = "provider_session_failed"


class ProviderSessionRetry(TypedError):
    """The provider failed the session with a transient failure: run the session again later."""

    code = "provider_session_transient_failure"
    transient = True


# --- the steps ------------------------------------------------------------------------------


def processing_accounter(state: PaymentState, peers: Peers) -> Step:
    """Hold payment: hold the limits, check them against their boundaries, hold the cash flow
    (batch 1), then wait for the hold's end.

    A hold the Limiter or the Accounter refuses with a business answer, or a limit whose value
    after the hold exceeds its `upper_boundary`, fails the payment: the rollback starts, and
    `processing_failure` releases whatever was held.
    """
    flow = state.started.flow
    if flow is None:
        raise InvalidHistory("a registered payment never waits in processing_accounter")
    changes: list[Change] = []
    try:
        changes += _hold_limits(state, peers, captured=None)
    except BusinessError as refused:
        return _rollback(changes, _refusal(refused))
    bounded = any(limit.upper_boundary is not None for limit in state.turnover_limits)
    # No boundary, no overflow: the values are read back only when there is one to check.
    overflow = _overflow(state, peers) if changes and bounded else None
    if overflow is not None:
        return _rollback(changes, overflow)
    try:
        changes.append(_hold_batch(state, peers, HOLD_BATCH, state.cash_flow))
    except BusinessError as refused:
        return _rollback(changes, _refusal(refused))
    changes.append(StatusChanged(PROCESSED))
    return Step(changes, Action.deadline(flow.held_until))


def processing_failure(state: PaymentState, peers: Peers) -> Step:
    """Roll back what the payment holds (its limits, every held batch of its plan), then fail
    it. Each rollback is keyed by the operation / plan id, so a repeat after a crash releases
    nothing twice; a part already rolled back is not asked again."""
    if state.failure is None:
        raise InvalidHistory("processing_failure without a failure")
    changes: list[Change] = []
    if state.limits == "held":
        peers.limiter.rollback_batch(state.limits_operation_id, _limit_changes(state),
                                     _limit_context(state, captured=None))
        changes.append(LimitsRolledBack(state.limits_operation_id))
    if state.held_batches and state.plan is None:
        batches = [to_batch(held.batch_id, held.cash_flow) for held in state.held_batches]
        plan_id = finish_plan(peers, peers.accounter.rollback_plan, state, batches)
        changes.append(PlanRolledBack(plan_id, tuple(b.id for b in batches)))
    changes.append(StatusChanged(Status.failed(state.failure)))
    return Step(changes, Action.unset())


def flow_waiting(state: PaymentState, peers: Peers) -> Step:
    """The hold expired: capture in full or cancel, as `on_hold_expiration` says."""
    return Step(decisions.hold_expired(state), Action.instant())


def processing_capture(state: PaymentState, peers: Peers) -> Step:
    """Registered payment: hold limits (with the captured cost) and batch 1; the provider
    already captured it, so the capture session starts and succeeds at once."""
    data = _capture_data(state)
    target = Target.captured(data)
    changes = [*_hold_limits(state, peers, captured=data.cost),
               _hold_batch(state, peers, HOLD_BATCH, state.cash_flow),
               SessionStarted(target), SessionFinished(target)]
    return Step(changes, Action.instant())


def updating_accounter(state: PaymentState, peers: Peers) -> Step:
    """Partial capture: revert the held cash flow (batch 2), hold the new one (batch 3)."""
    data = _capture_data(state)
    if state.partial_cash_flow is None:
        raise InvalidHistory("updating_accounter without a partial cash flow")
    changes = [_hold_batch(state, peers, REVERT_BATCH, revert(state.cash_flow)),
               _hold_batch(state, peers, PARTIAL_BATCH, state.partial_cash_flow),
               SessionStarted(Target.captured(data))]
    return Step(changes, Action.instant())


def finalizing_session(state: PaymentState, peers: Peers) -> Step:
    """Drive the provider session of the current target until it finishes."""
    target = _target(state)
    cost = target.cost or state.cost
    route = state.require_route()
    info = state.started.transaction_info
    result = peers.provider.process_session(
        session_id=state.session_id(target), target=target.status,
        invoice_id=state.started.invoice_id, payment_id=state.started.payment_id,
        cost_amount=cost.amount, currency=cost.currency, trx_id=state.trx_id,
        route=(route.provider_id, route.terminal_id), reason=target.reason,
        cart=None if target.cart is None else [
            {"product": line.product, "quantity": line.quantity,
             "price": {"amount": line.price.amount, "currency": line.price.currency}}
            for line in target.cart.lines],
        trx_extra=None if info is None else info.extra,
    )
    if result.status == "processing":
        log.info("provider session in progress", extra={"poll_in_s": result.poll_in_s})
        return Step((), Action.timeout(result.poll_in_s or 0))
    if result.status == "succeeded":
        return Step([SessionFinished(target, trx_id=result.trx_id)], Action.instant())
    if result.transient:
        raise ProviderSessionRetry(f"session {state.session_id(target)}: {result.failure_code}")
    raise ProviderSessionFailed(f"session {state.session_id(target)}: {result.failure_code}")


def finalizing_accounter(state: PaymentState, peers: Peers) -> Step:
    """Captured: commit limits and plan. Cancelled: roll them back. Then the final status."""
    target = _target(state)
    batches = [to_batch(held.batch_id, held.cash_flow) for held in state.held_batches]
    changes: list[Change] = []
    if target.status == "captured":
        captured = target.cost or state.cost
        if state.limits == "held":
            peers.limiter.commit_batch(state.limits_operation_id, _limit_changes(state),
                                       _limit_context(state, captured=captured))
            changes.append(LimitsCommitted(state.limits_operation_id, captured.amount))
        plan_id = finish_plan(peers, peers.accounter.commit_plan, state, batches)
        changes.append(PlanCommitted(plan_id, tuple(b.id for b in batches)))
    else:
        if state.limits == "held":
            peers.limiter.rollback_batch(state.limits_operation_id, _limit_changes(state),
                                         _limit_context(state, captured=None))
            changes.append(LimitsRolledBack(state.limits_operation_id))
        plan_id = finish_plan(peers, peers.accounter.rollback_plan, state, batches)
        changes.append(PlanRolledBack(plan_id, tuple(b.id for b in batches)))
    changes.append(StatusChanged(Status.of_target(target)))
    return Step(changes, Action.unset())


STEPS: dict[Activity, Callable[[PaymentState, Peers], Step]] = {
    "processing_accounter": processing_accounter,
    "flow_waiting": flow_waiting,
    "processing_capture": processing_capture,
    "updating_accounter": updating_accounter,
    "finalizing_session": finalizing_session,
    "finalizing_accounter": finalizing_accounter,
    "processing_failure": processing_failure,
}


# --- peer calls shared by the steps ---------------------------------------------------------


def _hold_limits(state: PaymentState, peers: Peers, *, captured: Money | None) -> list[Change]:
    """Hold the route's turnover limits; no call and no change for a route without limits."""
    if not state.turnover_limits:
        return []
    peers.limiter.hold_batch(state.limits_operation_id, _limit_changes(state),
                             _limit_context(state, captured=captured))
    return [LimitsHeld(state.limits_operation_id)]


def _overflow(state: PaymentState, peers: Peers) -> Failure | None:
    """`limit_overflow` when a limit's value as the hold left it (read back with GetBatch, as
    the core does) is strictly above the limit's `upper_boundary`."""
    values = peers.limiter.get_batch(state.limits_operation_id, _limit_changes(state),
                                     _limit_context(state, captured=None))
    amounts = {limit.id: limit.amount for limit in values}
    over = [f"{limit.id}: {amounts[limit.id]} > {limit.upper_boundary}"
            for limit in state.turnover_limits
            if limit.upper_boundary is not None and limit.id in amounts
            and amounts[limit.id] > limit.upper_boundary]
    return Failure("limit_overflow", "; ".join(over)) if over else None


def _refusal(error: BusinessError) -> Failure:
    """The failure of a hold a peer refused: the peer error's code names it."""
    code = getattr(error, "code", None) or "hold_refused"
    return Failure(code, str(error)[:1000])


def _rollback(changes: list[Change], failure: Failure) -> Step:
    log.warning("payment hold failed, rolling back", extra={"failure": failure.code})
    return Step([*changes, RollbackStarted(failure)], Action.instant())


def finish_plan(peers: Peers, finish: Callable[..., object], state: PaymentState,
                 batches: list[accounter.Batch]) -> str:
    """Commit or roll back the plan; the plan id it was found under.

    Plans made by an older version of the core were named `<invoice>.<payment>`; with the
    legacy fallback on, a plan the Accounter does not know is tried again under that name.
    """
    try:
        finish(state.plan_id, batches)
        return state.plan_id
    except accounter.InvalidRequest as error:
        if not (peers.legacy_plan_ids and _plan_not_found(error)):
            raise
    legacy = f"{state.started.invoice_id}.{state.started.payment_id}"
    log.warning("plan not found, trying its legacy id", extra={"plan_id": legacy})
    finish(legacy, batches)
    return legacy


def _plan_not_found(error: accounter.InvalidRequest) -> bool:
    return any(text.startswith("Posting plan not found") for text in error.errors)


def _hold_batch(state: PaymentState, peers: Peers, batch_id: int,
                cash_flow: FinalCashFlow) -> PlanBatchHeld:
    peers.accounter.hold(state.plan_id, to_batch(batch_id, cash_flow))
    return PlanBatchHeld(state.plan_id, batch_id, cash_flow)


def _limit_changes(state: PaymentState) -> list[LimitChange]:
    return [LimitChange(limit.id, limit.version) for limit in state.turnover_limits]


def _limit_context(state: PaymentState, *, captured: Money | None) -> PaymentContext:
    """The payment as the limiter sees it: always `captured`, with a cost only when given."""
    payment, route = state.started, state.require_route()
    flow = payment.flow
    return PaymentContext(
        invoice_id=payment.invoice_id,
        payment_id=payment.payment_id,
        party_id=payment.party_id,
        shop_id=payment.shop_id,
        created_at=_rfc3339(payment.created_at),
        domain_revision=(DEFAULT_DOMAIN_REVISION if payment.domain_revision is None
                         else payment.domain_revision),
        cost_amount=payment.cost.amount,
        currency=payment.cost.currency,
        provider_id=route.provider_id,
        terminal_id=route.terminal_id,
        captured_amount=None if captured is None else captured.amount,
        flow_hold=None if flow is None else (flow.on_hold_expiration,
                                             _rfc3339(flow.held_until)),
        payer=payment.payer,
    )


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _capture_data(state: PaymentState) -> CaptureData:
    if state.capture is None:
        raise InvalidHistory(f"{state.activity} without capture data")
    return state.capture


def _target(state: PaymentState) -> Target:
    if state.target is None:
        raise InvalidHistory(f"{state.activity} without a session target")
    return state.target
