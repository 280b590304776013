"""Text PostgreSQL can store: no NUL character, no lone UTF-16 surrogate.

Both reach us in valid JSON (`"\\u0000"`, `"\\ud800"`) and would fail inside the database as a
500; every package refuses them at the door with this one error instead.
"""

from __future__ import annotations

from foundation.errors import TypedError


class InvalidText(TypedError):
    code = "invalid_text"
    http_status = 400


def check_text(value: str, what: str) -> str:
    """`value` unchanged, or InvalidText naming `what`."""
    if value.isascii() and "\x00" not in value:  # the common case, without an encode
        return value
    if "\x00" in value:
        raise InvalidText(f"{what}: text must not hold a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidText(f"{what}: text must be valid Unicode (a lone surrogate)") from None
    return value
