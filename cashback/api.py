"""HTTP routes of cashback: register, the order view, and the billing balance callback.

`router` goes behind the API's bearer auth; `balance_router` authenticates by the callback's
HMAC signature instead (billing does not hold our token).
"""

from __future__ import annotations

import json
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

import cashback.metrics  # noqa: F401 - registers the cashback collectors
from cashback import orders
from cashback.balance import BalanceChanged, queue_balance_changed, verify_signature
from cashback.orders import Order
from cashback.register import InvalidCashbackValue, RegisterRequest, register_cashback
from workers.errors import TypedError

router = APIRouter(tags=["cashback"])
balance_router = APIRouter(tags=["wallet"])


class OrderNotFound(TypedError):
    code = "order_not_found"
    http_status = 404


class RegisterAnswer(BaseModel):
    need_processing: Literal[True] = True
    version: int


class SourceValueView(BaseModel):
    source: str
    value: str


class ErrorView(BaseModel):
    code: str
    message: str


class OrderView(BaseModel):
    order_id: str
    service: str
    currency: str
    version: int
    cashback_by_source: list[SourceValueView]
    charge_status: Literal["pending", "charging", "charged", "failed"]
    last_operation_id: str | None
    error: ErrorView | None

    @classmethod
    def of(cls, order: Order) -> OrderView:
        return cls(
            order_id=order.order_id, service=order.service, currency=order.currency,
            version=order.version,
            cashback_by_source=[SourceValueView(source=source, value=format(value, "f"))
                                for source, value in sorted(order.cashback_by_source.items())],
            charge_status=order.charge_status.value,
            last_operation_id=order.last_operation_id,
            error=ErrorView(**order.error) if order.error else None,
        )


@router.post("/v1/cashback/register", response_model=RegisterAnswer)
def register(request: RegisterRequest) -> RegisterAnswer:
    """Record the order's target cashback and queue its charge (`register/cashback`)."""
    return RegisterAnswer(version=register_cashback(request).version)


@router.get("/v1/cashback/{service}/{order_id}", response_model=OrderView)
def view(service: str, order_id: str) -> OrderView:
    if "\x00" in service or "\x00" in order_id:
        # PostgreSQL text cannot hold NUL, so the lookup itself would fail (CONTRACT.md: 400).
        raise InvalidCashbackValue("service and order_id cannot contain NUL characters")
    order = orders.get(order_id, service)
    if order is None:
        raise OrderNotFound(f"no cashback registered for order {order_id} of {service}")
    return OrderView.of(order)


@balance_router.post(
    "/v1/wallet/balance-callback",
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": BalanceChanged.model_json_schema()}}}},
)
async def balance_callback(request: Request) -> dict[str, str]:
    """From billing: a wallet's balance changed. `X-Signature` is the hex HMAC-SHA256 of the
    raw body under BILLING_CALLBACK_SECRET. Queues the cache update and the silent push."""
    raw = await request.body()
    verify_signature(raw, request.headers.get("X-Signature"))
    try:
        change = BalanceChanged.model_validate(json.loads(raw))
    except ValueError as exc:  # not JSON, or pydantic's ValidationError (a ValueError)
        errors = exc.errors() if isinstance(exc, ValidationError) else [
            {"loc": ("body",), "msg": "the body is not valid JSON", "type": "json_invalid"}]
        raise RequestValidationError(errors) from None
    await run_in_threadpool(queue_balance_changed, change)
    return {}
