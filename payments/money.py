"""Money: an amount in integer minor units and an ISO 4217 currency code.

A `Money` cannot be built invalid: the amount is a non-negative 64-bit integer (the peers'
`i64`) and the currency an active ISO 4217 alphabetic code (`foundation.currencies`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from foundation import currencies
from payments.errors import InvalidAmount

MAX_AMOUNT = 2**63 - 1


@dataclass(frozen=True)
class Money:
    amount: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise InvalidAmount(f"amount must be an integer of minor units, got {self.amount!r}")
        if not 0 <= self.amount <= MAX_AMOUNT:
            raise InvalidAmount(f"amount must be between 0 and {MAX_AMOUNT}, got {self.amount}")
        currencies.check(self.currency)

    @classmethod
    def of(cls, amount: int | Decimal, currency: str) -> Money:
        """Money from a JSON number: only whole minor units are accepted, never a fraction."""
        return cls(minor_units(amount), currency)

    def with_amount(self, amount: int) -> Money:
        return Money(amount, self.currency)


def minor_units(amount: int | Decimal) -> int:
    if isinstance(amount, Decimal):
        if not amount.is_finite() or amount != amount.to_integral_value():
            raise InvalidAmount(f"amount must be whole minor units, got {amount}")
        return int(amount)
    return amount
