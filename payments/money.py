"""Money: an amount in integer minor units and an ISO 4217 currency code.

A `Money` cannot be built invalid: the amount is a non-negative 64-bit integer (the peers'
`i64`) and the currency an active ISO 4217 alphabetic code.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from payments.errors import InvalidAmount, UnknownCurrency

MAX_AMOUNT = 2**63 - 1

# Active ISO 4217 alphabetic codes (funds and precious metals included; XTS/XXX excluded:
# they name "testing" and "no currency", which no posting may carry).
CURRENCIES = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN
    BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP
    ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK
    JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK
    MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN
    PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB
    TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XAG
    XAU XBA XBB XBC XBD XCD XCG XDR XOF XPD XPF XPT XSU XUA YER ZAR ZMW ZWG ZWL
    """.split()
)


@dataclass(frozen=True)
class Money:
    amount: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise InvalidAmount(f"amount must be an integer of minor units, got {self.amount!r}")
        if not 0 <= self.amount <= MAX_AMOUNT:
            raise InvalidAmount(f"amount must be between 0 and {MAX_AMOUNT}, got {self.amount}")
        if self.currency not in CURRENCIES:
            raise UnknownCurrency(f"unknown currency {self.currency!r} (ISO 4217 code expected)")

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
