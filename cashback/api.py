"""HTTP routes of cashback: register, the order view and its operator retry, rates, calc, and
the billing balance callback.

`router` goes behind the API's bearer auth; `balance_router` authenticates by the callback's
HMAC signature instead (billing does not hold our token).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError

import cashback.metrics  # noqa: F401 - registers the cashback collectors
from cashback import orders, rates
from cashback.balance import BalanceChanged, queue_balance_changed, verify_signature
from cashback.orders import Order, OrderNotFound
from cashback.rates import CalcRequest, RatesRequest
from cashback.register import RegisterRequest, register_cashback
from cashback.retry import retry
from foundation.errors import TypedError
from workers.errors import ErrorBody
from workers.text import check_text

router = APIRouter(tags=["cashback"])
balance_router = APIRouter(tags=["wallet"])


class RatesNotFound(TypedError):
    code = "rates_not_found"
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


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorBody} for status in statuses}


@router.post("/v1/cashback/register", response_model=RegisterAnswer,
             responses=_errors(400, 409))
def register(request: RegisterRequest) -> RegisterAnswer:
    """Record the order's target cashback and queue its charge (`register/cashback`)."""
    return RegisterAnswer(version=register_cashback(request).version)


class RatesAnswer(BaseModel):
    created: bool


class ClassRateView(BaseModel):
    class_: str = Field(alias="class")
    value: str
    max_absolute_value: str | None = None


class RatesView(BaseModel):
    order_id: str
    service: str
    tariff_class: str
    by_classes: list[ClassRateView]


class CalcAnswer(BaseModel):
    cashback: str


def _path_ids(service: str, order_id: str) -> None:
    """Ids from the URL reach PostgreSQL as text: refuse what it cannot store (400)."""
    check_text(service, "service")
    check_text(order_id, "order_id")


@router.get("/v1/cashback/{service}/{order_id}", response_model=OrderView,
            responses=_errors(400, 404))
def view(service: str, order_id: str) -> OrderView:
    _path_ids(service, order_id)
    order = orders.get(order_id, service)
    if order is None:
        raise OrderNotFound(f"no cashback registered for order {order_id} of {service}")
    return OrderView.of(order)


@router.post("/v1/cashback/{service}/{order_id}/retry", response_model=OrderView,
             status_code=202, responses=_errors(400, 404, 409))
def retry_order(service: str, order_id: str) -> OrderView:
    """An operator's retry of a failed order: back to pending, charged again under
    `<order_id>/v<version>/manual/<n>`; 409 when the order is not failed."""
    _path_ids(service, order_id)
    return OrderView.of(retry(order_id, service))


@router.post("/v1/cashback/rates", response_model=RatesAnswer, responses=_errors(400, 422))
def store_rates(request: RatesRequest) -> RatesAnswer:
    """The order's rates; the first write wins (`created: false` when it has some)."""
    return RatesAnswer(created=rates.store(request))


@router.get("/v1/cashback/rates/{service}/{order_id}", response_model=RatesView,
            response_model_exclude_none=True, response_model_by_alias=True,
            responses=_errors(400, 404))
def show_rates(service: str, order_id: str) -> RatesView:
    _path_ids(service, order_id)
    found = rates.get(order_id, service)
    if found is None:
        raise RatesNotFound(f"no cashback rates for order {order_id} of {service}")
    return RatesView(order_id=order_id, service=service, tariff_class=found.tariff_class,
                     by_classes=[ClassRateView.model_validate(item)
                                 for item in rates.to_json(found)])


@router.post("/v1/cashback/calc", response_model=CalcAnswer, responses=_errors(400, 422, 429))
def calc(request: CalcRequest) -> CalcAnswer:
    """min(base x rate of the order's tariff class, cap), rounded down to the cashback
    precision; 429 `rates_not_ready` while the order has no rates."""
    return CalcAnswer(cashback=format(rates.calc_for(request), "f"))


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
    except ValidationError as exc:
        # Only where and why: the input itself may be a deeply nested value.
        raise RequestValidationError([{"loc": e["loc"], "msg": e["msg"], "type": e["type"]}
                                      for e in exc.errors()]) from None
    except (ValueError, RecursionError):  # not JSON or not UTF-8; nested past the parser
        raise RequestValidationError([{"loc": ("body",), "msg": "the body is not valid JSON",
                                       "type": "json_invalid"}]) from None
    await run_in_threadpool(queue_balance_changed, change)
    return {}
