"""The one currency table: active ISO 4217 alphabetic codes and their minor units.

Payments accept any code here; cashback needs a minor unit (it rounds to it), so funds and
precious metals without one are unknown to it. XTS and XXX are left out: they name "testing"
and "no currency", which no posting may carry.
"""

from __future__ import annotations

from foundation.errors import TypedError


class UnknownCurrency(TypedError):
    code = "unknown_currency"
    http_status = 400


def _codes(text: str) -> list[str]:
    return text.split()


# Decimal places of each code's minor unit; None where ISO 4217 gives none.
MINOR_UNITS: dict[str, int | None] = {
    **dict.fromkeys(_codes("""
        AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN
        BWP BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUC CUP CVE CZK DKK DOP DZD EGP ERN
        ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES
        KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK
        MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR
        SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD
        TWD TZS UAH USD USN UYU UZS VED VES WST XCD XCG YER ZAR ZMW ZWG ZWL
    """), 2),
    **dict.fromkeys(_codes("""
        BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF
    """), 0),
    **dict.fromkeys(_codes("BHD IQD JOD KWD LYD OMR TND"), 3),
    **dict.fromkeys(_codes("CLF UYW"), 4),
    **dict.fromkeys(_codes("XAG XAU XBA XBB XBC XBD XDR XPD XPT XSU XUA"), None),
}


def check(currency: str) -> str:
    """`currency` when it is an ISO 4217 code, else UnknownCurrency."""
    if currency not in MINOR_UNITS:
        raise UnknownCurrency(f"unknown currency {currency!r} (ISO 4217 code expected)")
    return currency


def minor_unit_places(currency: str) -> int:
    """Decimal places of the currency's minor unit: 2 for RUB, 0 for JPY."""
    places = MINOR_UNITS.get(currency)
    if places is None:
        raise UnknownCurrency(f"unknown currency {currency!r}"
                              + (" (it has no minor unit)" if currency in MINOR_UNITS else ""))
    return places
