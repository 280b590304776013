"""The state of the sandbox transactions service: invoices, their cashback operations, the
settings of how operations end, and the log of update calls (see `sandbox.transactions`)."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from clients.json_http import to_wire
from sandbox.transactions_bodies import (
    CashbackStatus,
    InvoiceSeed,
    OperationStatus,
    Outcome,
    RewardSeed,
    SettingsBody,
    UpdateBody,
)


class Refused(Exception):
    """A business answer other than 200: status, code and message go back to the caller."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def _now() -> datetime:
    return datetime.now(UTC)


def _wire_time(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _decimal(text: Any, what: str) -> Decimal:
    """A decimal string as Decimal; JSON numbers are refused so a float sender shows up."""
    if not isinstance(text, str):
        raise Refused(400, "bad_request", f"{what} must be a decimal string, got {text!r}")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise Refused(400, "bad_request", f"{what} is not a decimal: {text!r}") from None
    if not value.is_finite():
        raise Refused(400, "bad_request", f"{what} must be finite, got {text!r}")
    if value < 0:
        raise Refused(400, "negative_amount", f"{what} is negative: {text}")
    return value


def _amounts_json(amounts: dict[str, Decimal]) -> list[dict[str, str]]:
    return [{"source": source, "amount": to_wire(amount)}
            for source, amount in sorted(amounts.items())]


@dataclass
class _Operation:
    operation_id: str
    status: OperationStatus
    created: datetime
    reward: dict[str, Decimal]
    # When and how an operation started by an update ends; None for a seeded one (it stays).
    settles_at: datetime | None = None
    outcome: Outcome | None = None

    def to_json(self) -> dict[str, Any]:
        return {"operation_id": self.operation_id, "status": self.status,
                "created": _wire_time(self.created), "reward": _amounts_json(self.reward)}


@dataclass
class _Invoice:
    id: str
    currency: str
    status: str
    user_ip: str | None
    yandex_uid: str | None
    sum_to_pay: list[dict[str, Any]]
    held: list[dict[str, Any]]
    cleared: list[dict[str, Any]]
    cashback_status: CashbackStatus = "init"
    cashback_version: int = 1
    rewarded: dict[str, Decimal] = field(default_factory=dict)
    operations: list[_Operation] = field(default_factory=list)

    def settle(self, now: datetime) -> None:
        """End every started operation whose delay has passed, oldest first."""
        for operation in self.operations:
            if operation.status != "processing" or operation.settles_at is None:
                continue
            if operation.settles_at > now:
                continue
            if operation.outcome == "success":
                operation.status = "done"
                self.rewarded = dict(operation.reward)
                self.cashback_status = "success"
            else:
                operation.status = "failed"
                self.cashback_status = "failed"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "currency": self.currency, "status": self.status,
            "user_ip": self.user_ip, "yandex_uid": self.yandex_uid,
            "sum_to_pay": self.sum_to_pay, "held": self.held, "cleared": self.cleared,
            "cashback": {
                "status": self.cashback_status,
                "version": self.cashback_version,
                "rewarded": _amounts_json(self.rewarded),
                "operations": [op.to_json() for op in self.operations],
            },
        }


@dataclass
class _Settings:
    delay_s: float = 0.0
    outcome: Outcome = "success"
    outcomes: deque[Outcome] = field(default_factory=deque)
    conflicts: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"delay_s": self.delay_s, "outcome": self.outcome,
                "outcomes": list(self.outcomes), "conflicts": self.conflicts}


class TransactionsState:
    """Invoices, settings and the update log; every operation takes one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._invoices: dict[str, _Invoice] = {}
        self._settings = _Settings()
        self._updates: list[dict[str, Any]] = []

    def reset(self) -> None:
        with self._lock:
            self._invoices = {}
            self._settings = _Settings()
            self._updates = []

    # --- the protocol ---

    def retrieve(self, invoice_id: str) -> dict[str, Any]:
        with self._lock:
            invoice = self._invoice(invoice_id)
            invoice.settle(_now())
            return invoice.to_json()

    def update(self, body: UpdateBody) -> str:
        """Apply an update; returns how it was taken ("accepted" or "repeat")."""
        reward: dict[str, Decimal] = {}
        for item in body.reward:
            if item.source in reward:
                raise Refused(400, "bad_request", f"source {item.source!r} is given twice")
            reward[item.source] = _decimal(item.amount, f"reward of {item.source!r}")
        with self._lock:
            invoice = self._invoice(body.invoice_id)
            now = _now()
            invoice.settle(now)
            if any(op.operation_id == body.operation_id for op in invoice.operations):
                return "repeat"
            if self._settings.conflicts > 0:
                self._settings.conflicts -= 1
                invoice.cashback_version += 1
            if body.version != invoice.cashback_version:
                raise Refused(409, "version_conflict",
                               f"cashback version is {invoice.cashback_version}, "
                               f"not {body.version}")
            if invoice.cashback_status == "in-progress":
                raise Refused(409, "in_progress", "another cashback operation is in progress")
            settings = self._settings
            outcome = settings.outcomes.popleft() if settings.outcomes else settings.outcome
            invoice.operations.append(_Operation(
                operation_id=body.operation_id, status="processing", created=now,
                reward=reward, settles_at=now + timedelta(seconds=settings.delay_s),
                outcome=outcome,
            ))
            invoice.cashback_version += 1
            invoice.cashback_status = "in-progress"
            if settings.delay_s == 0:
                invoice.settle(now)
            return "accepted"

    def log_update(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._updates.append({**entry, "at": _wire_time(_now())})

    # --- control ---

    def seed(self, seed: InvoiceSeed) -> dict[str, Any]:
        def rewards(items: list[RewardSeed]) -> dict[str, Decimal]:
            return {r.source: _decimal(r.amount, f"amount of {r.source!r}") for r in items}

        now = _now()
        invoice = _Invoice(
            id=seed.id, currency=seed.currency, status=seed.status, user_ip=seed.user_ip,
            yandex_uid=seed.yandex_uid,
            sum_to_pay=[p.model_dump() for p in seed.sum_to_pay],
            held=[p.model_dump() for p in seed.held],
            cleared=[p.model_dump() for p in seed.cleared],
            cashback_status=seed.cashback.status,
            cashback_version=seed.cashback.version,
            rewarded=rewards(seed.cashback.rewarded),
            operations=[_Operation(operation_id=op.operation_id, status=op.status,
                                   created=(op.created or now).astimezone(UTC),
                                   reward=rewards(op.reward))
                        for op in seed.cashback.operations],
        )
        with self._lock:
            self._invoices[invoice.id] = invoice
            return invoice.to_json()

    def configure(self, body: SettingsBody) -> dict[str, Any]:
        with self._lock:
            if body.delay_s is not None:
                self._settings.delay_s = body.delay_s
            if body.outcome is not None:
                self._settings.outcome = body.outcome
            if body.outcomes is not None:
                self._settings.outcomes = deque(body.outcomes)
            if body.conflicts is not None:
                self._settings.conflicts = body.conflicts
            return self._settings.to_json()

    def settings(self) -> dict[str, Any]:
        with self._lock:
            return self._settings.to_json()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            now = _now()
            for invoice in self._invoices.values():
                invoice.settle(now)
            return {
                "invoices": {i.id: i.to_json() for i in self._invoices.values()},
                "updates": [dict(entry) for entry in self._updates],
                "settings": self._settings.to_json(),
            }

    def _invoice(self, invoice_id: str) -> _Invoice:
        invoice = self._invoices.get(invoice_id)
        if invoice is None:
            raise Refused(404, "invoice_not_found", f"no invoice {invoice_id!r}")
        return invoice
