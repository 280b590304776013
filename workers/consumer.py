"""The worker's message consumer, guarded so that no message can stop a worker.

Celery's consumer trusts a message's shape: a body that is not `[args, kwargs, embed]`, or a
header such as `timelimit: "x"`, raises inside the consumer's main loop and the worker process
exits; with late acks the message is restored and stops the next worker too. Anyone who can
publish to our queues could stop every worker. So each message is checked before Celery sees
it, and whatever still raises while Celery dispatches it is caught: either way the message is
logged with its queue and the reason, and dropped (acked). Our own work never depends on a
message (PostgreSQL holds it), so dropping a malformed one loses nothing of ours.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from numbers import Real
from typing import Any

from celery.worker.consumer import Consumer

from foundation.errors import TypedError

log = logging.getLogger(__name__)

# Far beyond any real task's kwargs (ours nest a few levels), far below the recursion limit
# that the JSON decoder, pickling into the pool and repr would hit.
MAX_DEPTH = 64


class Malformed(TypedError):
    """Why a message is not a task message we can run."""

    code = "malformed_message"


def check(message: Any) -> None:
    """Raise `Malformed` unless the message is a protocol-2 task message of sane shape."""
    headers = message.headers
    if not isinstance(headers, dict):
        raise Malformed("headers are not a mapping")
    for name in ("task", "id"):
        if not isinstance(headers.get(name), str) or not headers[name]:
            raise Malformed(f"header {name!r} is not a non-empty string")
    for name in ("root_id", "parent_id", "group", "argsrepr", "kwargsrepr", "origin",
                 "shadow", "lang"):
        if not isinstance(headers.get(name), (str, type(None))):
            raise Malformed(f"header {name!r} is not a string")
    for name in ("retries", "replaced_task_nesting", "group_index"):
        if not _is_int_or_none(headers.get(name)):
            raise Malformed(f"header {name!r} is not an integer")
    _check_timelimit(headers.get("timelimit"))
    for name in ("eta", "expires"):
        _check_time(name, headers.get(name))
    if message.content_type != "application/json":
        raise Malformed(f"content type {message.content_type!r} is not JSON")
    _check_body(message.body)


def _is_int_or_none(value: Any) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool))


def _check_timelimit(value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, (list, tuple)) or len(value) != 2 or not all(
        v is None or (isinstance(v, Real) and not isinstance(v, bool) and v >= 0)
        for v in value
    ):
        raise Malformed("header 'timelimit' is not [soft, hard] seconds")


def _check_time(name: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, str):
        try:
            datetime.fromisoformat(value)
            return
        except ValueError:
            pass
    raise Malformed(f"header {name!r} is not an ISO 8601 time")


def _check_body(raw: Any) -> None:
    if isinstance(raw, str):
        raw = raw.encode()
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise Malformed("body is not bytes")
    try:
        body = json.loads(bytes(raw))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise Malformed(f"body is not JSON: {type(exc).__name__}") from None
    if _deeper_than(body, MAX_DEPTH):
        raise Malformed(f"body nests deeper than {MAX_DEPTH} levels")
    if not (isinstance(body, list) and len(body) == 3):
        raise Malformed("body is not [args, kwargs, embed]")
    args, kwargs, embed = body
    if not isinstance(args, list):
        raise Malformed("args are not a list")
    if not isinstance(kwargs, dict):
        raise Malformed("kwargs are not an object")
    if not isinstance(embed, dict):
        raise Malformed("embed is not an object")


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether lists and objects nest more than `limit` levels (iterative: no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in item)
    return False


def _queue(message: Any) -> str:
    info = getattr(message, "delivery_info", None) or {}
    return str(info.get("routing_key") or info.get("exchange") or "?")


def _drop(message: Any, reason: str) -> None:
    headers = message.headers if isinstance(message.headers, dict) else {}
    log.error(
        "malformed message dropped",
        extra={"code": "malformed_message", "queue": _queue(message), "reason": reason[:500],
               "headers": repr(headers)[:500]},
    )
    try:
        message.ack()
    except Exception:  # a lost connection: the message comes back and is dropped again
        log.warning("could not ack a dropped message", exc_info=True,
                    extra={"queue": _queue(message)})


class GuardedConsumer(Consumer):
    """Celery's consumer with every incoming message checked, and dispatch errors contained."""

    def create_task_handler(self, *args: Any, **kwargs: Any) -> Callable[[Any], Any]:
        handle = super().create_task_handler(*args, **kwargs)

        def on_task_received(message: Any) -> Any:
            try:
                check(message)
            except Malformed as exc:
                return _drop(message, str(exc))
            try:
                return handle(message)
            except Exception as exc:  # anything Celery could not dispatch is the message's fault
                return _drop(message, f"{type(exc).__name__}: {exc}")

        return on_task_received
