"""The changes a payment machine records: one machine event per change.

Each change is a frozen dataclass with a stable `TYPE` tag and a schema `VERSION`; its JSON is
`{"type": TYPE, "v": VERSION, **fields}`. A stored change is never rewritten: a new shape gets a
new VERSION, and `from_json` is where an older version would be upcast.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, Literal

from pydantic import TypeAdapter, ValidationError

from foundation.errors import TypedError
from payments.cashflow import CashFlowTemplate, FinalCashFlow
from payments.model import (
    CaptureData,
    Failure,
    HoldFlow,
    Payer,
    Route,
    Status,
    Target,
    TransactionInfo,
    TurnoverLimit,
)
from payments.money import Money


class InvalidHistory(TypedError):
    """A stored change this code cannot read or apply: a bug, never retried."""

    code = "invalid_history"


_TYPES: dict[str, type] = {}


def change(type_name: str, version: int = 1):
    """Declare a stored change: a frozen dataclass written as `{"type", "v", **fields}`.

    Raise `version` when a field changes meaning; adding an optional field with a default
    needs no new version (a body stored without it reads as the default)."""
    def declare(cls: type) -> type:
        cls = dataclass(frozen=True)(cls)
        cls.TYPE, cls.VERSION = type_name, version
        _TYPES[type_name] = cls
        return cls
    return declare


@change("payment_started")
class PaymentStarted:
    invoice_id: str
    payment_id: str
    party_id: str
    shop_id: str
    cost: Money
    flow: HoldFlow | None  # None: a registered payment (instant flow)
    created_at: datetime
    transaction_info: TransactionInfo | None
    cash_flow_template: CashFlowTemplate
    # Optional fields with a default are additive: a body stored without them reads as None.
    payer: Payer | None = None
    domain_revision: int | None = None


@change("route_changed")
class RouteChanged:
    route: Route
    turnover_limits: tuple[TurnoverLimit, ...]


@change("cash_flow_changed")
class CashFlowChanged:
    cash_flow: FinalCashFlow


@change("status_changed")
class StatusChanged:
    status: Status


@change("capture_started")
class CaptureStarted:
    data: CaptureData


@change("session_started")
class SessionStarted:
    target: Target


@change("session_finished")
class SessionFinished:
    target: Target
    result: Literal["succeeded", "failed"] = "succeeded"
    trx_id: str | None = None
    failure: Failure | None = None  # set when the result is `failed`


@change("rollback_started")
class RollbackStarted:
    """The payment fails: what it holds is rolled back (activity processing_failure)."""

    failure: Failure


@change("repaired")
class Repaired:
    """An operator repaired the failed machine: which action, who and why."""

    action: str
    operator: str | None = None
    reason: str | None = None


@change("limits_held")
class LimitsHeld:
    operation_id: str


@change("limits_committed")
class LimitsCommitted:
    operation_id: str
    captured_amount: int


@change("limits_rolled_back")
class LimitsRolledBack:
    operation_id: str


@change("plan_batch_held")
class PlanBatchHeld:
    """A batch held in the Accounter; commit and rollback list exactly these postings."""

    plan_id: str
    batch_id: int
    cash_flow: FinalCashFlow


@change("plan_committed")
class PlanCommitted:
    plan_id: str
    batch_ids: tuple[int, ...]


@change("plan_rolled_back")
class PlanRolledBack:
    plan_id: str
    batch_ids: tuple[int, ...]


Change = (
    PaymentStarted | RouteChanged | CashFlowChanged | StatusChanged | CaptureStarted
    | SessionStarted | SessionFinished | LimitsHeld | LimitsCommitted | LimitsRolledBack
    | PlanBatchHeld | PlanCommitted | PlanRolledBack | RollbackStarted | Repaired
)

@cache
def _adapter(cls: type) -> TypeAdapter:
    return TypeAdapter(cls)


def to_json(change: Change) -> dict[str, Any]:
    body = _adapter(type(change)).dump_python(change, mode="json")
    return {"type": change.TYPE, "v": change.VERSION, **body}


def from_json(body: dict[str, Any]) -> Change:
    if not isinstance(body, dict):
        raise InvalidHistory(f"a change is a JSON object, not {type(body).__name__}")
    fields = dict(body)
    kind, version = fields.pop("type", None), fields.pop("v", None)
    cls = _TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise InvalidHistory(f"unknown change type {kind!r}")
    if version != cls.VERSION:
        raise InvalidHistory(f"{kind}: unknown schema version {version!r}")
    try:
        return _adapter(cls).validate_python(fields)
    except (ValidationError, TypedError) as exc:  # a field's shape, or a value's own check
        raise InvalidHistory(f"{kind}: unreadable: {exc}") from exc
