"""The changes a payment machine records: one machine event per change.

Each change is a frozen dataclass with a stable `TYPE` tag and a schema `VERSION`; its JSON is
`{"type": TYPE, "v": VERSION, **fields}`. A stored change is never rewritten: a new shape gets a
new VERSION, and `from_json` is where an older version would be upcast.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, ClassVar, Literal

from pydantic import TypeAdapter, ValidationError

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
from workers.errors import TypedError


class InvalidHistory(Exception):
    """A stored change this code cannot read or apply: a bug, never retried."""


@dataclass(frozen=True)
class PaymentStarted:
    TYPE: ClassVar[str] = "payment_started"
    VERSION: ClassVar[int] = 1

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


@dataclass(frozen=True)
class RouteChanged:
    TYPE: ClassVar[str] = "route_changed"
    VERSION: ClassVar[int] = 1

    route: Route
    turnover_limits: tuple[TurnoverLimit, ...]


@dataclass(frozen=True)
class CashFlowChanged:
    TYPE: ClassVar[str] = "cash_flow_changed"
    VERSION: ClassVar[int] = 1

    cash_flow: FinalCashFlow


@dataclass(frozen=True)
class StatusChanged:
    TYPE: ClassVar[str] = "status_changed"
    VERSION: ClassVar[int] = 1

    status: Status


@dataclass(frozen=True)
class CaptureStarted:
    TYPE: ClassVar[str] = "capture_started"
    VERSION: ClassVar[int] = 1

    data: CaptureData


@dataclass(frozen=True)
class SessionStarted:
    TYPE: ClassVar[str] = "session_started"
    VERSION: ClassVar[int] = 1

    target: Target


@dataclass(frozen=True)
class SessionFinished:
    TYPE: ClassVar[str] = "session_finished"
    VERSION: ClassVar[int] = 1

    target: Target
    result: Literal["succeeded", "failed"] = "succeeded"
    trx_id: str | None = None
    failure: Failure | None = None  # set when the result is `failed`


@dataclass(frozen=True)
class RollbackStarted:
    """The payment fails: what it holds is rolled back (activity processing_failure)."""

    TYPE: ClassVar[str] = "rollback_started"
    VERSION: ClassVar[int] = 1

    failure: Failure


@dataclass(frozen=True)
class Repaired:
    """An operator repaired the failed machine: which action, who and why."""

    TYPE: ClassVar[str] = "repaired"
    VERSION: ClassVar[int] = 1

    action: str
    operator: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class LimitsHeld:
    TYPE: ClassVar[str] = "limits_held"
    VERSION: ClassVar[int] = 1

    operation_id: str


@dataclass(frozen=True)
class LimitsCommitted:
    TYPE: ClassVar[str] = "limits_committed"
    VERSION: ClassVar[int] = 1

    operation_id: str
    captured_amount: int


@dataclass(frozen=True)
class LimitsRolledBack:
    TYPE: ClassVar[str] = "limits_rolled_back"
    VERSION: ClassVar[int] = 1

    operation_id: str


@dataclass(frozen=True)
class PlanBatchHeld:
    """A batch held in the Accounter; commit and rollback list exactly these postings."""

    TYPE: ClassVar[str] = "plan_batch_held"
    VERSION: ClassVar[int] = 1

    plan_id: str
    batch_id: int
    cash_flow: FinalCashFlow


@dataclass(frozen=True)
class PlanCommitted:
    TYPE: ClassVar[str] = "plan_committed"
    VERSION: ClassVar[int] = 1

    plan_id: str
    batch_ids: tuple[int, ...]


@dataclass(frozen=True)
class PlanRolledBack:
    TYPE: ClassVar[str] = "plan_rolled_back"
    VERSION: ClassVar[int] = 1

    plan_id: str
    batch_ids: tuple[int, ...]


Change = (
    PaymentStarted | RouteChanged | CashFlowChanged | StatusChanged | CaptureStarted
    | SessionStarted | SessionFinished | LimitsHeld | LimitsCommitted | LimitsRolledBack
    | PlanBatchHeld | PlanCommitted | PlanRolledBack | RollbackStarted | Repaired
)

_TYPES: dict[str, type] = {
    cls.TYPE: cls
    for cls in (
        PaymentStarted, RouteChanged, CashFlowChanged, StatusChanged, CaptureStarted,
        SessionStarted, SessionFinished, LimitsHeld, LimitsCommitted, LimitsRolledBack,
        PlanBatchHeld, PlanCommitted, PlanRolledBack, RollbackStarted, Repaired,
    )
}


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
