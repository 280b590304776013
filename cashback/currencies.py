"""ISO 4217 minor-unit precision and rounding DOWN to it.

Cashback is never rounded up: a fraction of a minor unit that the currency cannot carry is
dropped, so the sum charged never exceeds what the rates allow.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

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
