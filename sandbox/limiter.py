"""An in-memory Limiter double for payment turnover limits.

Limits are configured through the control API (id, currency, upper boundary, scopes). A limit
with scopes keeps one value per scope key, as the real limiter does: `payment_tool` counts per
card token, `payer_contact_email` per payer email, `party`, `shop`, `provider`, `terminal` per
that id; a payment whose context lacks a scoped value (no card for `payment_tool`) is refused
with PaymentToolNotSupported. An operation holds the payment's cost on each limit it names; a
commit moves the held amount (or the smaller captured cost from the context) into the
committed total; a rollback releases it. A limit's value (per scope key) is committed + held,
and going past the upper boundary is not an error: the caller reads the value and decides
(docs/wire.md 3.4). Errors follow the liminator-backed limiter: an unknown operation is
`InvalidRequest(["OperationNotFound"])`, a change already committed or rolled back is
`InvalidRequest(["OperationAlreadyInFinalState"])`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from clients.limiter import base_thrift, limiter_base_thrift, limiter_thrift
from sandbox.control import (
    CallLog,
    control_routes,
    parse_control_body,
)
from sandbox.faults import Faults
from sandbox.woody_server import WOODY_FAULTS, WoodyApp, create_woody_app

HOLD, COMMIT, ROLLBACK = "HOLD", "COMMIT", "ROLLBACK"
OPERATION_NOT_FOUND = "OperationNotFound"
ALREADY_FINAL = "OperationAlreadyInFinalState"


SCOPES = ("party", "shop", "payment_tool", "payer_contact_email", "provider", "terminal")


@dataclass
class _Totals:
    committed: int = 0
    held: int = 0

    @property
    def value(self) -> int:
        return self.committed + self.held


@dataclass
class _Limit:
    id: str
    currency: str
    upper_boundary: int | None
    description: str | None = None
    scopes: tuple[str, ...] = ()
    buckets: dict[str, _Totals] = field(default_factory=dict)  # scope key -> its totals

    def bucket(self, key: str) -> _Totals:
        return self.buckets.setdefault(key, _Totals())

    @property
    def committed(self) -> int:
        return sum(b.committed for b in self.buckets.values())

    @property
    def held(self) -> int:
        return sum(b.held for b in self.buckets.values())

    @property
    def value(self) -> int:
        """The highest value of any scope key (the one that would overflow first)."""
        return max((b.value for b in self.buckets.values()), default=0)

    def to_thrift(self, amount: int | None = None) -> Any:
        return limiter_thrift.Limit(id=self.id, amount=self.value if amount is None else amount,
                                    description=self.description)


@dataclass
class _Change:
    state: str
    held: int
    bucket: str = ""
    committed: int = 0
    value_after: int = 0  # the value of the change's scope key right after its last step


@dataclass
class _Operation:
    changes: dict[str, _Change] = field(default_factory=dict)


@dataclass(frozen=True)
class _OperationCash:
    cost: int
    currency: str
    captured: int | None
    scope_values: dict[str, str | None] = field(default_factory=dict)

    def key(self, limit: _Limit) -> str:
        """The limit's scope key for this payment; refused when the payment lacks a value."""
        parts = []
        for scope in limit.scopes:
            value = self.scope_values.get(scope)
            if value is None:
                if scope == "payment_tool":
                    raise limiter_thrift.PaymentToolNotSupported(payment_tool="payment_terminal")
                raise _invalid_request(f"the context carries no {scope} for limit {limit.id}")
            parts.append(f"{scope}={value}")
        return "|".join(parts)


def _scope_values(invoice: Any, payment: Any) -> dict[str, str | None]:
    domain_invoice = invoice.invoice
    route = invoice.payment.route
    resource = payment.payer.payment_resource if payment.payer else None
    tool = resource.resource.payment_tool if resource and resource.resource else None
    card = tool.bank_card if tool else None
    contact = resource.contact_info if resource else None
    return {
        "party": domain_invoice.party_ref.id if domain_invoice and domain_invoice.party_ref
        else None,
        "shop": domain_invoice.shop_ref.id if domain_invoice and domain_invoice.shop_ref
        else None,
        "payment_tool": card.token if card else None,
        "payer_contact_email": contact.email if contact else None,
        "provider": str(route.provider.id) if route and route.provider else None,
        "terminal": str(route.terminal.id) if route and route.terminal else None,
    }


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
        scope_values=_scope_values(invoice, payment),
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
                        description: str | None = None, scopes: Sequence[str] = ()) -> None:
        """Create a limit or change its settings (its totals stay)."""
        with self._lock:
            limit = self._limits.get(limit_id)
            if limit is None:
                self._limits[limit_id] = _Limit(limit_id, currency, upper_boundary, description,
                                                tuple(scopes))
            else:
                limit.currency, limit.upper_boundary = currency, upper_boundary
                limit.description, limit.scopes = description, tuple(scopes)

    # --- Thrift methods ---

    def hold_batch(self, request: Any, context: Any) -> list[Any]:
        cash = _operation_cash(context)
        with self._lock:
            limits = self._limits_for(request, cash.currency)
            operation = self._operations.get(request.operation_id) or _Operation()
            held_before = [operation.changes.get(limit.id) for limit in limits]
            if any(change is not None and change.state != HOLD for change in held_before):
                raise _invalid_request(ALREADY_FINAL)
            keys = [cash.key(limit) for limit in limits]  # refused before anything is held
            self._operations[request.operation_id] = operation
            for limit, key in zip(limits, keys, strict=True):
                if limit.id not in operation.changes:  # a repeated hold changes nothing
                    bucket = limit.bucket(key)
                    bucket.held += cash.cost
                    operation.changes[limit.id] = _Change(HOLD, held=cash.cost, bucket=key,
                                                          value_after=bucket.value)
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
                    bucket = limit.bucket(change.bucket)
                    bucket.held -= change.held
                    bucket.committed += amount
                    change.state, change.committed = COMMIT, amount
                    change.value_after = bucket.value

    def rollback_batch(self, request: Any, context: Any) -> None:
        cash = _operation_cash(context)
        with self._lock:
            # The hold's business errors, repeated.
            for limit in self._limits_for(request, cash.currency):
                cash.key(limit)
            limits, changes = self._changes_for(request)
            if any(change.state == COMMIT for change in changes):
                raise _invalid_request(ALREADY_FINAL)
            for limit, change in zip(limits, changes, strict=True):
                if change.state == HOLD:
                    bucket = limit.bucket(change.bucket)
                    bucket.held -= change.held
                    change.state = ROLLBACK
                    change.value_after = bucket.value

    def get_batch(self, request: Any, context: Any) -> list[Any]:
        with self._lock:
            limits = [self._limit(change.id) for change in request.limit_changes]
            operation = self._operations.get(request.operation_id)
            if operation is None or any(limit.id not in operation.changes for limit in limits):
                raise _invalid_request(OPERATION_NOT_FOUND)
            return [limit.to_thrift(operation.changes[limit.id].value_after) for limit in limits]

    def get_values(self, request: Any, context: Any) -> list[Any]:
        cash = _operation_cash(context)
        with self._lock:
            limits = [self._limit(change.id) for change in request.limit_changes]
            return [limit.to_thrift(limit.bucket(cash.key(limit)).value) for limit in limits]

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
                    "held": limit.held, "amount": limit.value, "scopes": list(limit.scopes),
                    "buckets": {key: {"committed": b.committed, "held": b.held}
                                for key, b in limit.buckets.items()},
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
    scopes: list[Literal[SCOPES]] = Field(default_factory=list)  # type: ignore[valid-type]


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
        state.configure_limit(body.id, body.currency, body.upper_boundary, body.description,
                              body.scopes)
        return JSONResponse(body.model_dump(), status_code=201)

    return create_woody_app(limiter_thrift.Limiter, handlers, faults, calls, control=[
        *control_routes(state, faults, calls),
        Route("/_sandbox/limits", configure_limit, methods=["POST"]),
    ])
