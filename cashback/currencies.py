"""ISO 4217 minor-unit precision, the cashback precision, and rounding DOWN to them.

Cashback has a precision of its own per currency (CASHBACK_PRECISION: Plus points in RUB are
whole, BYN tenths); a currency it does not name uses its ISO minor unit. Cashback is never
rounded up: a fraction the precision cannot carry is dropped, so the sum charged never exceeds
what the rates allow.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

from cashback.settings import get_settings
from workers.errors import TypedError

# Currency -> number of decimal places of its minor unit (ISO 4217).
PRECISION: dict[str, int] = {
    "AMD": 2, "AUD": 2, "AZN": 2, "BYN": 2, "CAD": 2, "CHF": 2, "CNY": 2, "CZK": 2, "EUR": 2,
    "GBP": 2, "GEL": 2, "ILS": 2, "KGS": 2, "KZT": 2, "MDL": 2, "NOK": 2, "PLN": 2, "RON": 2,
    "RSD": 2, "RUB": 2, "SEK": 2, "TJS": 2, "TRY": 2, "UAH": 2, "USD": 2, "UZS": 2,
    "CLP": 0, "ISK": 0, "JPY": 0, "KRW": 0, "VND": 0,
    "BHD": 3, "JOD": 3, "KWD": 3, "OMR": 3, "TND": 3,
}


class UnknownCurrency(TypedError):
    code = "unknown_currency"
    http_status = 400


def precision(currency: str) -> int:
    try:
        return PRECISION[currency]
    except KeyError:
        raise UnknownCurrency(f"unknown currency {currency!r}") from None


def minor_unit(currency: str) -> Decimal:
    """The smallest amount of the currency: Decimal('0.01') for RUB, Decimal('1') for JPY."""
    return Decimal(1).scaleb(-precision(currency))


def round_down(value: Decimal, currency: str) -> Decimal:
    """`value` truncated towards zero to the currency's precision (exponent fixed to it)."""
    return value.quantize(minor_unit(currency), rounding=ROUND_DOWN)


def cashback_precision(currency: str) -> int:
    """Decimal places cashback in `currency` is kept at (UnknownCurrency when not ISO)."""
    iso = precision(currency)
    return get_settings().cashback_precision_by_currency.get(currency, iso)


def round_down_cashback(value: Decimal, currency: str) -> Decimal:
    """`value` truncated towards zero to the currency's cashback precision."""
    return value.quantize(Decimal(1).scaleb(-cashback_precision(currency)), rounding=ROUND_DOWN)
