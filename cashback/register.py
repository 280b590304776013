"""`register/cashback`: record an order's target cashback and queue its charge.

Values are decimal strings. A value with more decimals than the currency's minor unit carries
is refused (`too_precise`): the caller computed it, so a surplus digit is a caller bug worth
seeing. Accepted values are rounded DOWN to the currency's cashback precision
(CASHBACK_PRECISION: RUB whole units, so "50.70" is stored as "50"; BYN tenths), so two
registers whose values round to the same amounts change nothing.

Sources named take the new value, the others keep theirs. A new order starts at version 1; a
register that changes a value adds 1. Whatever happened, the charge is queued (one pending task
per order) and the answer is `need_processing: true`: the charge finds out what is left to do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from cashback import currencies, orders
from cashback.orders import ChargeStatus, Order
from cashback.queues import ORDER_ID_PATTERN, SERVICE_PATTERN, queue_charge
from cashback.text import SafeObject, SafeText
from foundation.errors import TypedError
from workers.db import Tx, transaction
from workers.logs import bind

_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")
MAX_INTEGER_DIGITS = 15


class InvalidCashbackValue(TypedError):
    code = "invalid_value"
    http_status = 400


class VersionMismatch(TypedError):
    code = "version_mismatch"
    http_status = 409


class OrderMismatch(TypedError):
    """The request names an existing order with a different currency or user."""

    code = "order_mismatch"
    http_status = 409


class SourceValue(BaseModel):
    model_config = ConfigDict(strict=True)

    source: SafeText = Field(min_length=1, max_length=64)
    value: str = Field(max_length=64, description="decimal string, >= 0")


class RegisterRequest(BaseModel):
    model_config = ConfigDict(strict=True)

    order_id: SafeText = Field(pattern=ORDER_ID_PATTERN)
    service: SafeText = Field(pattern=SERVICE_PATTERN)
    currency: SafeText = Field(min_length=1, max_length=8)
    yandex_uid: SafeText = Field(min_length=1, max_length=64)
    cashback_by_source: list[SourceValue] = Field(max_length=64)
    version: int | None = Field(None, description="the order_clears version last seen")
    payload: SafeObject | None = None
    wallet_id: SafeText | None = Field(None, min_length=1, max_length=128)
    billing_service: SafeText | None = Field(None, min_length=1, max_length=64)


@dataclass(frozen=True)
class RegisterResult:
    version: int


def register_cashback(request: RegisterRequest) -> RegisterResult:
    with transaction() as tx:
        return register_in(tx, request)


def register_in(tx: Tx, request: RegisterRequest) -> RegisterResult:
    """Register inside the caller's transaction (universal processing registers in its job's)."""
    with bind(order_id=request.order_id, service=request.service):
        values = parse_values(request.cashback_by_source, request.currency)
        # A request that expects no order tries to create it first: the common case costs
        # one statement, and ON CONFLICT settles a race with a concurrent register.
        if request.version in (None, 0) and orders.insert(tx, _new_order(request, values)):
            queue_charge(tx, request.order_id, request.service)
            return RegisterResult(version=1)
        current = orders.lock(tx, request.order_id, request.service)
        if current is None:  # orders are never deleted: it never existed
            raise VersionMismatch(f"the order does not exist; the request expects version "
                                  f"{request.version}")
        updated = _apply(current, request, values)
        orders.save(tx, updated)
        queue_charge(tx, updated.order_id, updated.service)
        return RegisterResult(updated.version)


def parse_values(items: list[SourceValue], currency: str) -> dict[str, Decimal]:
    """Validate the decimal strings and round them down to the cashback precision."""
    currencies.precision(currency)  # unknown currency first: it decides everything else
    values: dict[str, Decimal] = {}
    for item in items:
        if item.source in values:
            raise InvalidCashbackValue(f"source {item.source!r} is given twice",
                                       code="duplicate_source")
        values[item.source] = _parse_value(item, currency)
    return values


def _parse_value(item: SourceValue, currency: str) -> Decimal:
    value = parse_decimal(item.value, item.source)
    if currencies.round_down(value, currency) != value:
        raise InvalidCashbackValue(
            f"{item.source}: {item.value} has more decimals than {currency} allows "
            f"({currencies.precision(currency)})", code="too_precise")
    return currencies.round_down_cashback(value, currency)


def parse_decimal(text: str, what: str, *, integer_digits: int = MAX_INTEGER_DIGITS,
                  fraction_digits: int | None = None) -> Decimal:
    """A non-negative decimal string ("100.50") as Decimal, bounded in digits; "-0" is 0."""
    if not _DECIMAL.fullmatch(text):
        raise InvalidCashbackValue(f"{what}: {text!r} is not a decimal string like '100.50'",
                                   code="invalid_value")
    value = Decimal(text)
    if value < 0:
        raise InvalidCashbackValue(f"{what}: {text} is negative", code="negative_value")
    if value and value.adjusted() >= integer_digits:
        raise InvalidCashbackValue(f"{what}: {text} is too large", code="value_too_large")
    if fraction_digits is not None and -value.as_tuple().exponent > fraction_digits:
        raise InvalidCashbackValue(f"{what}: {text} has more than {fraction_digits} decimals",
                                   code="too_precise")
    return value.copy_abs()


def _check_version(expected: int | None, actual: int) -> None:
    if expected is not None and expected != actual:
        raise VersionMismatch(f"the order is at version {actual}, the request expects {expected}")


def _new_order(request: RegisterRequest, values: dict[str, Decimal]) -> Order:
    return Order(
        order_id=request.order_id,
        service=request.service,
        currency=request.currency,
        yandex_uid=request.yandex_uid,
        cashback_by_source=values,
        version=1,
        charge_status=ChargeStatus.PENDING,
        last_operation_id=None,
        error=None,
        wallet_id=request.wallet_id,
        billing_service=request.billing_service,
        payload=request.payload,
        manual_retries=0,
    )


def _apply(current: Order, request: RegisterRequest, values: dict[str, Decimal]) -> Order:
    _check_version(request.version, current.version)
    if request.currency != current.currency:
        raise OrderMismatch(f"the order's currency is {current.currency}, not "
                            f"{request.currency}", code="currency_mismatch")
    if request.yandex_uid != current.yandex_uid:
        raise OrderMismatch("the order belongs to another yandex_uid",
                            code="yandex_uid_mismatch")
    target = {**current.cashback_by_source, **values}
    changed = target != current.cashback_by_source  # Decimal equality: "50" == "50.00"
    # A failed order registered again is tried again; otherwise the status stays what the
    # charge last found, since nothing new is to be sent.
    status = (ChargeStatus.PENDING if changed or current.charge_status is ChargeStatus.FAILED
              else current.charge_status)
    return replace(
        current,
        cashback_by_source=target,
        version=current.version + 1 if changed else current.version,
        # Operator retries count per version: a new version starts at its plain id again.
        manual_retries=0 if changed else current.manual_retries,
        charge_status=status,
        error=None if status is ChargeStatus.PENDING else current.error,
        wallet_id=request.wallet_id or current.wallet_id,
        billing_service=request.billing_service or current.billing_service,
        payload=request.payload if request.payload is not None else current.payload,
    )
