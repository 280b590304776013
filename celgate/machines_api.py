"""`GET /v1/machines`: the operators' list of machines (e.g. every failed payment), paged by
an opaque cursor over (namespace, id)."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from foundation.errors import TypedError
from workers import machines

router = APIRouter(prefix="/v1/machines", tags=["machines"])

MAX_PAGE = 1000
DEFAULT_PAGE = 100
STATUSES = ("working", "failed")


class InvalidQuery(TypedError):
    code = "invalid_query"
    http_status = 400


class MachineItem(BaseModel):
    namespace: str
    id: str
    status: str
    error: dict[str, Any] | None
    updated_at: datetime


class MachinePage(BaseModel):
    machines: list[MachineItem]
    next: str | None  # pass as `after` for the next page; null on the last one


def encode_cursor(namespace: str, machine_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([namespace, machine_id]).encode()).decode()


def decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error):
        raise InvalidQuery("after: not a cursor this API gave") from None
    if not (isinstance(key, list) and len(key) == 2 and all(isinstance(k, str) for k in key)):
        raise InvalidQuery("after: not a cursor this API gave")
    _check_text("after", key[0])
    _check_text("after", key[1])
    return key[0], key[1]


def _check_text(what: str, value: str) -> None:
    if "\x00" in value or len(value) > 256:
        raise InvalidQuery(f"{what}: at most 256 characters, no NUL")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidQuery(f"{what}: not valid Unicode") from None


@router.get("", response_model=MachinePage)
def list_machines(namespace: str | None = None, status: str | None = None,
                  after: str | None = None, limit: int = DEFAULT_PAGE) -> MachinePage:
    """Machines in (namespace, id) order, optionally of one namespace and one status."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidQuery(f"limit must be 1..{MAX_PAGE}, got {limit}")
    if status is not None and status not in STATUSES:
        raise InvalidQuery(f"status must be one of {', '.join(STATUSES)}")
    if namespace is not None:
        _check_text("namespace", namespace)
    key = None if after is None else decode_cursor(after)
    # One more than asked tells whether a next page exists.
    rows = machines.list_machines(namespace, status, key, limit + 1)
    page = rows[:limit]
    more = len(rows) > limit
    return MachinePage(
        machines=[MachineItem(namespace=r.namespace, id=r.id, status=r.status, error=r.error,
                              updated_at=r.updated_at) for r in page],
        next=encode_cursor(page[-1].namespace, page[-1].id) if more else None,
    )
