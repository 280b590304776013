"""How the CLI prints: one console, status colours, times with how far off they are, money."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from rich.console import Console

console = Console(highlight=False)

_COLOURS = {"failed": "red", "overdue": "red", "retrying": "yellow", "working": "green",
            "pending": "cyan"}


def status(name: str) -> str:
    colour = _COLOURS.get(name)
    return f"[{colour}]{name}[/{colour}]" if colour else name


def when(moment: datetime | None) -> str:
    if moment is None:
        return ""
    delta = (moment - datetime.now(UTC)).total_seconds()
    relative = f"in {delta:.1f} s" if delta >= 0 else f"{-delta:.1f} s ago"
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} ({relative})"


def change(body: dict[str, Any]) -> str:
    """`kind  key=value ...` for an event body of one key (the payment changes), else JSON."""
    if len(body) == 1:
        (kind, value), = body.items()
        if isinstance(value, dict):
            details = " ".join(f"{k}={json.dumps(v, default=str)}" for k, v in value.items())
            return f"{kind}  {details}"[:300]
        return f"{kind}  {json.dumps(value, default=str)}"[:300]
    return json.dumps(body, default=str)[:300]


def money(value: Any) -> str:
    return money_text(value.amount, value.currency)


def money_text(amount: int, currency: str) -> str:
    """Minor units in major units with the currency, exactly: (12345, RUB) -> "123.45 RUB"."""
    from foundation.currencies import MINOR_UNITS

    places = MINOR_UNITS.get(currency)
    exponent = 2 if places is None else places
    if exponent == 0:
        return f"{amount} {currency}"
    sign, digits = ("-" if amount < 0 else ""), str(abs(amount)).rjust(exponent + 1, "0")
    return f"{sign}{digits[:-exponent]}.{digits[-exponent:]} {currency}"
