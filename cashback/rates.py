"""An order's cashback rates (`order_rates`) and the calc: how much cashback a sum earns.

Rates are written once per order, when it is priced: the order's tariff class and a rate per
class, each a fraction of the base with an optional absolute cap. The first write wins and is
never overwritten, so a late or repeated writer cannot change the cashback of an order
already counted.

`calc` is the one rule both `POST /v1/cashback/calc` and universal processing use:
min(base x rate of the order's class, cap), rounded DOWN to the cashback precision; base is
the cleared sum, plus the held sum when instant cashback is on; 0 for a class without a rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal, localcontext

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import bindparam, select, text

from cashback import currencies
from cashback.queues import ORDER_ID_PATTERN, SERVICE_PATTERN
from cashback.register import InvalidCashbackValue, parse_decimal
from cashback.settings import get_settings
from cashback.tables import order_rates
from cashback.text import SafeText
from foundation.errors import TypedError
from workers.db import Tx, transaction

# A rate is a fraction of the base (0.1 is 10 %); these bounds keep every product exact.
RATE_INTEGER_DIGITS = 6
RATE_FRACTION_DIGITS = 12
AMOUNT_FRACTION_DIGITS = 18


@dataclass(frozen=True)
class ClassRate:
    value: Decimal
    max_absolute_value: Decimal | None  # None: uncapped


@dataclass(frozen=True)
class OrderRates:
    tariff_class: str
    by_classes: dict[str, ClassRate]


def calc(rates: OrderRates, *, cleared: Decimal, held: Decimal, instant: bool,
         precision: int) -> Decimal:
    """The cashback the sums earn at the rate of the order's tariff class (pure)."""
    rate = rates.by_classes.get(rates.tariff_class)
    quantum = Decimal(1).scaleb(-precision)
    if rate is None:
        return Decimal(0).quantize(quantum)
    # Inputs are bounded in digits; a wide context keeps the product and the rounding exact.
    with localcontext(prec=80):
        base = cleared + (held if instant else 0)
        value = base * rate.value
        if rate.max_absolute_value is not None:
            value = min(value, rate.max_absolute_value)
        return value.quantize(quantum, rounding=ROUND_DOWN)


# --- the request and the table ------------------------------------------------------------


class ClassRateBody(BaseModel):
    model_config = ConfigDict(strict=True, populate_by_name=True)

    class_: SafeText = Field(alias="class", min_length=1, max_length=64)
    value: str = Field(max_length=64, description="decimal string, a fraction of the base")
    max_absolute_value: str | None = Field(None, max_length=64,
                                           description="decimal string, a cap in the currency")


class RatesRequest(BaseModel):
    model_config = ConfigDict(strict=True)

    order_id: SafeText = Field(pattern=ORDER_ID_PATTERN)
    service: SafeText = Field(pattern=SERVICE_PATTERN)
    tariff_class: SafeText = Field(min_length=1, max_length=64)
    by_classes: list[ClassRateBody] = Field(max_length=64)


def parse_rates(request: RatesRequest) -> OrderRates:
    by_classes: dict[str, ClassRate] = {}
    for item in request.by_classes:
        if item.class_ in by_classes:
            raise InvalidCashbackValue(f"class {item.class_!r} is given twice",
                                       code="duplicate_class")
        by_classes[item.class_] = _class_rate(item)
    return OrderRates(request.tariff_class, by_classes)


def _class_rate(item: ClassRateBody) -> ClassRate:
    value = parse_decimal(item.value, f"rate of {item.class_}",
                          integer_digits=RATE_INTEGER_DIGITS,
                          fraction_digits=RATE_FRACTION_DIGITS)
    cap = None
    if item.max_absolute_value is not None:
        cap = parse_decimal(item.max_absolute_value, f"max_absolute_value of {item.class_}",
                            fraction_digits=AMOUNT_FRACTION_DIGITS)
    return ClassRate(value, cap)


_INSERT = text(
    "INSERT INTO order_rates (order_id, service, tariff_class, by_classes)"
    " VALUES (:order_id, :service, :tariff_class, :by_classes)"
    " ON CONFLICT (order_id, service) DO NOTHING RETURNING 1"
).bindparams(bindparam("by_classes", type_=order_rates.c.by_classes.type))
_SELECT = select(order_rates.c.tariff_class, order_rates.c.by_classes).where(
    order_rates.c.order_id == bindparam("order_id"),
    order_rates.c.service == bindparam("service"))


def store(request: RatesRequest) -> bool:
    """Write the order's rates unless it has some; True when these were stored."""
    rates = parse_rates(request)
    with transaction() as tx:
        return tx.conn.execute(_INSERT, {
            "order_id": request.order_id, "service": request.service,
            "tariff_class": rates.tariff_class, "by_classes": to_json(rates),
        }).first() is not None


def load(tx: Tx, order_id: str, service: str) -> OrderRates | None:
    row = tx.conn.execute(_SELECT, {"order_id": order_id, "service": service}).first()
    if row is None:
        return None
    return OrderRates(row.tariff_class, {
        item["class"]: ClassRate(
            Decimal(item["value"]),
            None if item.get("max_absolute_value") is None
            else Decimal(item["max_absolute_value"]))
        for item in row.by_classes})


def get(order_id: str, service: str) -> OrderRates | None:
    with transaction() as tx:
        return load(tx, order_id, service)


def to_json(rates: OrderRates) -> list[dict[str, str]]:
    items = []
    for class_, rate in rates.by_classes.items():
        item = {"class": class_, "value": format(rate.value, "f")}
        if rate.max_absolute_value is not None:
            item["max_absolute_value"] = format(rate.max_absolute_value, "f")
        items.append(item)
    return items


# --- the calc route -------------------------------------------------------------------------


class RatesNotReady(TypedError):
    code = "rates_not_ready"
    http_status = 429


class CalcRequest(BaseModel):
    model_config = ConfigDict(strict=True)

    order_id: SafeText = Field(pattern=ORDER_ID_PATTERN)
    service: SafeText = Field(pattern=SERVICE_PATTERN)
    currency: SafeText = Field(min_length=1, max_length=8)
    held: str = Field(max_length=64, description="decimal string")
    cleared: str = Field(max_length=64, description="decimal string")


def calc_for(request: CalcRequest) -> Decimal:
    precision = currencies.cashback_precision(request.currency)
    held = parse_decimal(request.held, "held", fraction_digits=AMOUNT_FRACTION_DIGITS)
    cleared = parse_decimal(request.cleared, "cleared", fraction_digits=AMOUNT_FRACTION_DIGITS)
    rates = get(request.order_id, request.service)
    if rates is None:
        raise RatesNotReady(f"no cashback rates for order {request.order_id} of "
                            f"{request.service} yet")
    return calc(rates, cleared=cleared, held=held,
                instant=get_settings().cashback_instant_enabled, precision=precision)
