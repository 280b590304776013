"""ISO 4217 minor-unit precision (`foundation.currencies`), the cashback precision, and rounding
DOWN to them.

Cashback has a precision of its own per currency (CASHBACK_PRECISION: Plus points in RUB are
whole, BYN tenths); a currency it does not name uses its ISO minor unit. Cashback is never
rounded up: a fraction the precision cannot carry is dropped, so the sum charged never exceeds
what the rates allow.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

from cashback.settings import get_settings
from foundation import currencies


def precision(currency: str) -> int:
    """Decimal places of the currency's ISO 4217 minor unit (UnknownCurrency without one)."""
    return currencies.minor_unit_places(currency)


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
