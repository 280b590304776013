"""An in-memory billing `transactions` service: invoices and their asynchronous cashback.

`/v2/cashback/update` takes the TARGET cashback per source. An accepted update bumps the
invoice's cashback version, adds an operation (`processing`) and puts the cashback
`in-progress`; once the configured delay has passed the operation ends with the next
configured outcome: `success` (the reward becomes the rewarded cashback) or `failed` (the
rewarded cashback stays). Operations settle lazily, on the next request that looks at the
invoice, so no background thread is needed and delay 0 settles at the very next read.

Answers follow docs/contract.md: the same operation id again is 200 with no new operation, a stale
version (or an update while one is in progress) is 409, an unknown invoice 404, a negative or
malformed amount 400. Every amount is a decimal string in both directions.

Control API under `/_sandbox/`: `invoices` (create or replace an invoice: its `sum_to_pay`,
`held` and `cleared` sums per payment type with their items, and its cashback state),
`settings` (delay, outcomes), `state` (invoices with operations, plus the log of every update
call), `reset`, `faults` (sandbox/json_peer.py says what each fault does;
the `match` operations are "invoice/retrieve" and "cashback/update").
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from clients.json_http import to_wire
from sandbox.control import control_routes, error, parse_control_body, sandbox_app
from sandbox.faults import JSON_FAULTS, Faults
from sandbox.json_peer import answer

Outcome = Literal["success", "failed"]
CashbackStatus = Literal["init", "in-progress", "success", "failed"]
OperationStatus = Literal["processing", "done", "failed"]

RETRIEVE, UPDATE = "invoice/retrieve", "cashback/update"


def _now() -> datetime:
    return datetime.now(UTC)


def _wire_time(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _decimal(text: Any, what: str) -> Decimal:
    """A decimal string as Decimal; JSON numbers are refused so a float sender shows up."""
    if not isinstance(text, str):
        raise _Refused(400, "bad_request", f"{what} must be a decimal string, got {text!r}")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise _Refused(400, "bad_request", f"{what} is not a decimal: {text!r}") from None
    if not value.is_finite():
        raise _Refused(400, "bad_request", f"{what} must be finite, got {text!r}")
    if value < 0:
        raise _Refused(400, "negative_amount", f"{what} is negative: {text}")
    return value


def _amounts_json(amounts: dict[str, Decimal]) -> list[dict[str, str]]:
    return [{"source": source, "amount": to_wire(amount)}
            for source, amount in sorted(amounts.items())]


class _Refused(Exception):
    """A business answer other than 200: status, code and message go back to the caller."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


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


# --- request bodies -----------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class _RetrieveBody(_Strict):
    id: StrictStr


class _RewardItem(_Strict):
    source: StrictStr = Field(min_length=1)
    amount: Any  # checked by _decimal so a number gets a precise message


class _UpdateBody(_Strict):
    invoice_id: StrictStr
    operation_id: StrictStr = Field(min_length=1)
    version: StrictInt
    yandex_uid: StrictStr
    user_ip: StrictStr = Field(min_length=1)
    wallet_account: StrictStr = Field(min_length=1)
    reward: list[_RewardItem]
    billing_service: StrictStr | None = None
    extra_payload: dict[str, Any] | None = None


class _ItemSeed(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item_id: StrictStr  # e.g. "ride", "tips", "cashback" (what the user paid with points)
    amount: StrictStr

    @field_validator("amount")
    @classmethod
    def _decimal_string(cls, amount: str) -> str:
        # A seed the client could not parse would test the seed, not the service; a negative
        # item (a refund line) is allowed.
        try:
            if Decimal(amount).is_finite():
                return amount
        except InvalidOperation:
            pass
        raise ValueError(f"item amount must be a finite decimal string, got {amount!r}")


class _PaymentItemsSeed(BaseModel):
    model_config = ConfigDict(extra="forbid")
    payment_type: StrictStr
    items: list[_ItemSeed] = []


class _RewardSeed(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: StrictStr
    amount: StrictStr


class _OperationSeed(BaseModel):
    model_config = ConfigDict(extra="forbid")
    operation_id: StrictStr
    status: OperationStatus
    created: datetime | None = None
    reward: list[_RewardSeed] = []


class _CashbackSeed(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: CashbackStatus = "init"
    version: StrictInt = 1
    rewarded: list[_RewardSeed] = []
    operations: list[_OperationSeed] = []


class InvoiceSeed(BaseModel):
    """Body of `POST /_sandbox/invoices`: an invoice to create (or replace) as it is given."""

    model_config = ConfigDict(extra="forbid")
    id: StrictStr = Field(min_length=1)
    currency: StrictStr = "RUB"
    status: StrictStr = "cleared"
    user_ip: StrictStr | None = None
    yandex_uid: StrictStr | None = None
    sum_to_pay: list[_PaymentItemsSeed] = []
    held: list[_PaymentItemsSeed] = []
    cleared: list[_PaymentItemsSeed] = []
    cashback: _CashbackSeed = _CashbackSeed()


class SettingsBody(BaseModel):
    """Body of `POST /_sandbox/settings`; fields left out keep their value.

    `outcomes` are used one by one by the next accepted updates, then `outcome` for the rest.
    `conflicts`: that many next updates find that another writer has just changed the
    invoice's cashback (its version goes up by one) and are answered 409.
    """

    model_config = ConfigDict(extra="forbid")
    delay_s: float | None = Field(None, ge=0)
    outcome: Outcome | None = None
    outcomes: list[Outcome] | None = None
    conflicts: int | None = Field(None, ge=0)


# --- the state ----------------------------------------------------------------------------


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

    def update(self, body: _UpdateBody) -> str:
        """Apply an update; returns how it was taken ("accepted" or "repeat")."""
        reward: dict[str, Decimal] = {}
        for item in body.reward:
            if item.source in reward:
                raise _Refused(400, "bad_request", f"source {item.source!r} is given twice")
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
                raise _Refused(409, "version_conflict",
                               f"cashback version is {invoice.cashback_version}, "
                               f"not {body.version}")
            if invoice.cashback_status == "in-progress":
                raise _Refused(409, "in_progress", "another cashback operation is in progress")
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
        def rewards(items: list[_RewardSeed]) -> dict[str, Decimal]:
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
            raise _Refused(404, "invoice_not_found", f"no invoice {invoice_id!r}")
        return invoice


# --- HTTP ---------------------------------------------------------------------------------


async def _json_body(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise _Refused(400, "bad_request", "the body is not valid JSON") from None


def _validate(model: type[BaseModel], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}"
                             for e in exc.errors())
        raise _Refused(400, "bad_request", problems) from None


def create_app(state: TransactionsState | None = None, faults: Faults | None = None) -> Starlette:
    state = state or TransactionsState()
    faults = faults or Faults(JSON_FAULTS)

    async def with_faults(operation: str, request: Request,
                          handle: Callable[[Any], dict[str, Any]]) -> Response:
        """Answer `handle(body)` under the fault plan; a refusal becomes its error answer."""
        try:
            data = await _json_body(request)
        except _Refused as refused:
            data = refused

        def run() -> Response:
            try:
                if isinstance(data, _Refused):
                    raise data
                return JSONResponse(handle(data))
            except _Refused as refused:
                return error(refused.status, refused.code, str(refused))

        return await answer(faults, operation, run)

    def retrieve_invoice(data: Any) -> dict[str, Any]:
        return state.retrieve(_validate(_RetrieveBody, data).id)

    def update_cashback(data: Any) -> dict[str, Any]:
        entry: dict[str, Any] = {"body": data}
        try:
            body = _validate(_UpdateBody, data)
            entry.update(invoice_id=body.invoice_id, operation_id=body.operation_id,
                         version=body.version)
            entry["outcome"] = state.update(body)
        except _Refused as refused:
            entry["outcome"] = refused.code
            raise
        finally:
            state.log_update(entry)
        return {}

    async def retrieve(request: Request) -> Response:
        return await with_faults(RETRIEVE, request, retrieve_invoice)

    async def update(request: Request) -> Response:
        return await with_faults(UPDATE, request, update_cashback)

    async def seed(request: Request) -> JSONResponse:
        try:
            body = await parse_control_body(request, InvoiceSeed)
            return JSONResponse(state.seed(body), status_code=201)
        except _Refused as refused:
            return error(400, "bad_request", str(refused))

    async def configure(request: Request) -> JSONResponse:
        body = await parse_control_body(request, SettingsBody)
        return JSONResponse(state.configure(body))

    async def show_settings(request: Request) -> JSONResponse:
        return JSONResponse(state.settings())

    return sandbox_app([
        Route("/v2/invoice/retrieve", retrieve, methods=["POST"]),
        Route("/v2/cashback/update", update, methods=["POST"]),
        Route("/_sandbox/invoices", seed, methods=["POST"]),
        Route("/_sandbox/settings", configure, methods=["POST"]),
        Route("/_sandbox/settings", show_settings, methods=["GET"]),
        *control_routes(state, faults),
    ])
