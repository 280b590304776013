"""Text and JSON that PostgreSQL can store, checked at the door.

PostgreSQL refuses NUL in text and JSONB, a lone surrogate cannot be encoded as UTF-8, a JSON
number too large for a float arrives as infinity (JSONB has no such value), and a deeply nested
payload costs recursion in every layer that walks it. Each is refused as a bad value (400,
docs/contract.md: "text holding NUL"), raised from pydantic validators as a TypedError so that the
API answers it and a task logs its code.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator, ValidationInfo

from foundation.errors import TypedError
from workers.text import check_text

MAX_PAYLOAD_DEPTH = 32


class InvalidPayload(TypedError):
    code = "invalid_payload"
    http_status = 400


def check_json(value: Any, what: str, *, depth: int = 0) -> Any:
    """Walk a JSON value: every key and string storable, numbers finite, depth bounded."""
    if depth > MAX_PAYLOAD_DEPTH:
        raise InvalidPayload(f"{what} is nested deeper than {MAX_PAYLOAD_DEPTH} levels",
                             code="payload_too_deep")
    if isinstance(value, str):
        check_text(value, what)
    elif isinstance(value, float) and not math.isfinite(value):
        raise InvalidPayload(f"{what} holds a number JSON cannot carry ({value})")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text(key, f"{what} key")
            check_json(item, what, depth=depth + 1)
    elif isinstance(value, list):
        for item in value:
            check_json(item, what, depth=depth + 1)
    return value


def _text(value: str, info: ValidationInfo) -> str:
    return check_text(value, info.field_name or "text")


def _json(value: Any, info: ValidationInfo) -> Any:
    return check_json(value, info.field_name or "payload")


SafeText = Annotated[str, AfterValidator(_text)]
"""A str field that PostgreSQL can store (no NUL, no lone surrogate)."""

SafeObject = Annotated[dict[str, Any], AfterValidator(_json)]
"""A JSON object (JSONB column): storable keys and strings, finite numbers, bounded depth."""
