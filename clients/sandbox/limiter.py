"""An in-memory Limiter double for payment turnover limits.

Limits are configured through the control API (id, currency, upper boundary). An operation
holds the payment's cost on each limit it names; a commit moves the held amount (or the smaller
captured cost from the context) into the committed total; a rollback releases it. A limit's
value is committed + held, and going past the upper boundary is not an error: the caller reads
the value and decides (wire-facts.md 3.4). Errors follow the liminator-backed limiter: an
unknown operation is `InvalidRequest(["OperationNotFound"])`, a change already committed or
rolled back is `InvalidRequest(["OperationAlreadyInFinalState"])`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from clients.limiter import base_thrift, limiter_base_thrift, limiter_thrift
from clients.sandbox.control import (
    CallLog,
    control_routes,
    parse_control_body,
)
from clients.sandbox.faults import Faults
from clients.sandbox.woody_server import WOODY_FAULTS, WoodyApp, create_woody_app

HOLD, COMMIT, ROLLBACK = "HOLD", "COMMIT", "ROLLBACK"
OPERATION_NOT_FOUND = "OperationNotFound"
ALREADY_FINAL = "OperationAlreadyInFinalState"


@dataclass
class _Limit:
    id: str
    currency: str
    upper_boundary: int | None
    description: str | None = None
    committed: int = 0
    held: int = 0

    @property
    def value(self) -> int:
        return self.committed + self.held

    def to_thrift(self, amount: int | None = None) -> Any:
        return limiter_thrift.Limit(id=self.id, amount=self.value if amount is None else amount,
                                    description=self.description)


@dataclass
class _Change:
    state: str
    held: int
    committed: int = 0
    value_after: int = 0  # the limit's value right after this change's last step


@dataclass
class _Operation:
    changes: dict[str, _Change] = field(default_factory=dict)


@dataclass(frozen=True)
class _OperationCash:
    cost: int
    currency: str
    captured: int | None


def _invalid_request(*errors: str) -> Exception:
    return base_thrift.InvalidRequest(errors=list(errors))


def _operation_cash(context: Any) -> _OperationCash:
    """The payment's cost (and captured cost, if any) from an invoice-payment context."""
    payproc = context.payment_processing if context is not None else None
    if payproc is None:
        raise limiter_thrift.OperationContextNotSupported(
            context_type=limiter_thrift.LimitContextType(
                withdrawal_processing=limiter_thrift.LimitContextTypeWithdrawalProcessing()))
    if payproc.op is None or payproc.op.invoice_payment is None:
        raise _invalid_request("the sandbox limiter only serves invoice_payment operations")
    invoice = payproc.invoice
    payment = invoice.payment.payment if invoice and invoice.payment else None
    if payment is None:
        raise _invalid_request("the context carries no payment")
    captured_status = payment.status.captured if payment.status else None
    captured_cost = captured_status.cost if captured_status else None
    return _OperationCash(
        cost=payment.cost.amount, currency=payment.cost.currency.symbolic_code,
        captured=None if captured_cost is None else captured_cost.amount,
    )


class LimiterState:
    """Limits and operations of the double; every operation takes one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._limits: dict[str, _Limit] = {}
        self._operations: dict[str, _Operation] = {}

    def reset(self) -> None:
        with self._lock:
            self._limits = {}
            self._operations = {}

    def configure_limit(self, limit_id: str, currency: str, upper_boundary: int | None = None,
                        description: str | None = None) -> None:
        """Create a limit or change its settings (its totals stay)."""
        with self._lock:
            limit = self._limits.get(limit_id)
            if limit is None:
                self._limits[limit_id] = _Limit(limit_id, currency, upper_boundary, description)
            else:
                limit.currency, limit.upper_boundary = currency, upper_boundary
                limit.description = description

    # --- Thrift methods ---

    def hold_batch(self, request: Any, context: Any) -> list[Any]:
        cash = _operation_cash(context)
        with self._lock:
            limits = self._limits_for(request, cash.currency)
            operation = self._operations.get(request.operation_id) or _Operation()
            held_before = [operation.changes.get(limit.id) for limit in limits]
            if any(change is not None and change.state != HOLD for change in held_before):
                raise _invalid_request(ALREADY_FINAL)
            self._operations[request.operation_id] = operation
            for limit in limits:
                if limit.id not in operation.changes:  # a repeated hold changes nothing
                    limit.held += cash.cost
                    operation.changes[limit.id] = _Change(HOLD, held=cash.cost,
                                                          value_after=limit.value)
            return [limit.to_thrift(operation.changes[limit.id].value_after) for limit in limits]

    def commit_batch(self, request: Any, context: Any) -> None:
        cash = _operation_cash(context)
        with self._lock:
            limits, changes = self._changes_for(request)
            for change in changes:
                if change.state == ROLLBACK:
                    raise _invalid_request(ALREADY_FINAL)
                amount = change.held if cash.captured is None else cash.captured
                if change.state == HOLD and not 0 <= amount <= change.held:
                    raise limiter_thrift.ForbiddenOperationAmount(
                        amount=amount, allowed_range=limiter_base_thrift.AmountRange(
                            upper=limiter_base_thrift.AmountBound(inclusive=change.held),
                            lower=limiter_base_thrift.AmountBound(inclusive=0)))
            for limit, change in zip(limits, changes, strict=True):
                if change.state == HOLD:
                    amount = change.held if cash.captured is None else cash.captured
                    limit.held -= change.held
                    limit.committed += amount
                    change.state, change.committed = COMMIT, amount
                    change.value_after = limit.value

    def rollback_batch(self, request: Any, context: Any) -> None:
        cash = _operation_cash(context)
        with self._lock:
            self._limits_for(request, cash.currency)  # the hold's business errors, repeated
            limits, changes = self._changes_for(request)
            if any(change.state == COMMIT for change in changes):
                raise _invalid_request(ALREADY_FINAL)
            for limit, change in zip(limits, changes, strict=True):
                if change.state == HOLD:
                    limit.held -= change.held
                    change.state = ROLLBACK
                    change.value_after = limit.value

    def get_batch(self, request: Any, context: Any) -> list[Any]:
        with self._lock:
            limits = [self._limit(change.id) for change in request.limit_changes]
            operation = self._operations.get(request.operation_id)
            if operation is None or any(limit.id not in operation.changes for limit in limits):
                raise _invalid_request(OPERATION_NOT_FOUND)
            return [limit.to_thrift(operation.changes[limit.id].value_after) for limit in limits]

    def get_values(self, request: Any, context: Any) -> list[Any]:
        with self._lock:
            return [self._limit(change.id).to_thrift() for change in request.limit_changes]

    def get(self, id: str, clock: Any, context: Any) -> Any:  # noqa: A002 - the IDL's name
        with self._lock:
            return self._limit(id).to_thrift()

    def get_versioned(self, id: str, version: int, clock: Any, context: Any) -> Any:  # noqa: A002
        return self.get(id, clock, context)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "limits": {limit.id: {
                    "currency": limit.currency, "upper_boundary": limit.upper_boundary,
                    "description": limit.description, "committed": limit.committed,
                    "held": limit.held, "amount": limit.value,
                    "overflow": limit.upper_boundary is not None
                    and limit.value > limit.upper_boundary,
                } for limit in self._limits.values()},
                "operations": {operation_id: {limit_id: {
                    "state": change.state, "held": change.held, "committed": change.committed,
                } for limit_id, change in operation.changes.items()}
                    for operation_id, operation in self._operations.items()},
            }

    # --- internals ---

    def _limit(self, limit_id: str) -> _Limit:
        limit = self._limits.get(limit_id)
        if limit is None:
            raise limiter_thrift.LimitNotFound()
        return limit

    def _limits_for(self, request: Any, currency: str) -> list[_Limit]:
        limits = [self._limit(change.id) for change in request.limit_changes]
        for limit in limits:
            if limit.currency != currency:
                raise limiter_thrift.InvalidOperationCurrency(
                    currency=currency, expected_currency=limit.currency)
        return limits

    def _changes_for(self, request: Any) -> tuple[list[_Limit], list[_Change]]:
        limits = [self._limit(change.id) for change in request.limit_changes]
        operation = self._operations.get(request.operation_id)
        if operation is None:
            raise _invalid_request(OPERATION_NOT_FOUND)
        changes: Sequence[_Change | None] = [operation.changes.get(limit.id) for limit in limits]
        if any(change is None for change in changes):
            raise limiter_thrift.LimitChangeNotFound()
        return limits, [change for change in changes if change is not None]


class LimitConfig(BaseModel):
    """Body of `POST /_sandbox/limits`."""

    model_config = ConfigDict(extra="forbid")
    id: StrictStr = Field(min_length=1)
    currency: StrictStr = Field(min_length=1)
    upper_boundary: StrictInt | None = None
    description: StrictStr | None = None


def create_app(state: LimiterState | None = None, faults: Faults | None = None) -> WoodyApp:
    """The Limiter double: Thrift at "/", control under `/_sandbox/`.

    The single-change methods (Hold, Commit, Rollback) are not served: current hellgate no
    longer calls them, and the double answers them 500.
    """
    state = state or LimiterState()
    faults = faults or Faults(WOODY_FAULTS)
    calls = CallLog()
    handlers = {
        "HoldBatch": state.hold_batch, "CommitBatch": state.commit_batch,
        "RollbackBatch": state.rollback_batch, "GetBatch": state.get_batch,
        "GetValues": state.get_values, "Get": state.get, "GetVersioned": state.get_versioned,
    }

    async def configure_limit(request: Request) -> JSONResponse:
        body = await parse_control_body(request, LimitConfig)
        state.configure_limit(body.id, body.currency, body.upper_boundary, body.description)
        return JSONResponse(body.model_dump(), status_code=201)

    return create_woody_app(limiter_thrift.Limiter, handlers, faults, calls, control=[
        *control_routes(state, faults, calls),
        Route("/_sandbox/limits", configure_limit, methods=["POST"]),
    ])
