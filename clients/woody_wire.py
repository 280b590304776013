"""The woody wire around the Thrift body: headers, span ids, deadlines, the trace context.

Shared by the woody client and the sandbox woody server (docs/wire.md 1.1).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

THRIFT_CONTENT_TYPE = "application/x-thrift"

TRACE_ID_HEADER = "woody.trace-id"
SPAN_ID_HEADER = "woody.span-id"
PARENT_ID_HEADER = "woody.parent-id"
DEADLINE_HEADER = "woody.deadline"
META_HEADER_PREFIX = "woody.meta."
ERROR_CLASS_HEADER = "woody.error-class"
ERROR_REASON_HEADER = "woody.error-reason"

# The parent id of a call that starts a trace.
ROOT_PARENT_ID = "undefined"
MAX_ID_BYTES = 64

_DEADLINE_RE = re.compile(
    r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d{1,9})?(Z|[+-]00:00)$"
)


def new_id() -> str:
    return uuid.uuid4().hex


def format_deadline(moment: datetime) -> str:
    """RFC 3339 in UTC with milliseconds, e.g. `2026-05-18T12:29:11.123Z`."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_deadline(text: str) -> datetime:
    """Parse a `woody.deadline` value; only UTC offsets are accepted, as by the Erlang server."""
    match = _DEADLINE_RE.match(text.strip())
    if match is None:
        raise ValueError(f"bad woody deadline {text!r}")
    whole, fraction, _ = match.groups()
    micros = int(((fraction or ".")[1:] + "000000")[:6])
    try:
        moment = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S")
    except ValueError as exc:
        raise ValueError(f"bad woody deadline {text!r}") from exc
    return moment.replace(microsecond=micros, tzinfo=UTC)


def _check_id(kind: str, value: str) -> None:
    if not value or len(value.encode()) > MAX_ID_BYTES:
        raise ValueError(f"woody {kind} must be 1..{MAX_ID_BYTES} bytes, got {value!r}")


@dataclass(frozen=True)
class WoodyContext:
    """Where a call sits in a trace: outgoing calls get a fresh span whose parent is `span_id`.

    `WoodyContext.new()` starts a trace (parent id `undefined`); a server handling a request
    uses `from_headers` so its own calls continue the caller's trace. `deadline` and `meta`
    travel to every call made with this context.
    """

    trace_id: str
    span_id: str = ROOT_PARENT_ID
    deadline: datetime | None = None
    meta: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_id("trace id", self.trace_id)
        _check_id("span id", self.span_id)
        if self.deadline is not None and self.deadline.tzinfo is None:
            raise ValueError("a woody deadline must be timezone-aware")

    @classmethod
    def new(cls, *, deadline: datetime | None = None,
            meta: Mapping[str, str] | None = None) -> WoodyContext:
        return cls(trace_id=new_id(), deadline=deadline, meta=dict(meta or {}))

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> WoodyContext:
        """The context of an incoming request; ValueError when its woody headers are bad."""
        lowered = {name.lower(): value for name, value in headers.items()}
        ids = [lowered.get(h) for h in (TRACE_ID_HEADER, SPAN_ID_HEADER, PARENT_ID_HEADER)]
        if any(value is None for value in ids):
            raise ValueError("bad woody id header")
        for kind, value in zip(("trace id", "span id", "parent id"), ids, strict=True):
            _check_id(kind, value or "")
        raw_deadline = lowered.get(DEADLINE_HEADER)
        meta = {name[len(META_HEADER_PREFIX):]: value for name, value in lowered.items()
                if name.startswith(META_HEADER_PREFIX)}
        return cls(trace_id=ids[0] or "", span_id=ids[1] or "",
                   deadline=parse_deadline(raw_deadline) if raw_deadline else None, meta=meta)

    def outgoing_headers(self, span_id: str) -> dict[str, str]:
        headers = {
            TRACE_ID_HEADER: self.trace_id,
            SPAN_ID_HEADER: span_id,
            PARENT_ID_HEADER: self.span_id,
        }
        if self.deadline is not None:
            headers[DEADLINE_HEADER] = format_deadline(self.deadline)
        for key, value in self.meta.items():
            headers[META_HEADER_PREFIX + key] = value
        return headers
