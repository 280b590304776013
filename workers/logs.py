"""Logs: every line carries the business ids and the Celery task id of the work that wrote it.

`bind(machine_id=...)` puts ids on every line logged inside the block, so a step's lines carry
its machine, business and woody trace ids without each call site repeating them. A task binds
its Celery task id and the id kwargs its component declares (workers/components.py) for its
whole run (`task_started`), so Celery's own "succeeded"/"failed" lines carry them too; the
"received" line, written by the worker's parent before any task runs, gets them from the data
Celery attaches to it.

Two formats (`LOG_FORMAT`): `json`, one object a line, for production; `text`, readable lines
with the ids after the message, for the demo and a terminal.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from functools import cache
from typing import Any

from workers.components import log_ids

_context: ContextVar[dict[str, object]] = ContextVar("log_context", default={})
# Ids bound anywhere inside a request, for its access line (see `collect_ids`).
_collected: ContextVar[dict[str, object] | None] = ContextVar("log_collected", default=None)

_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "data"}


@cache
def _kwarg_repr() -> re.Pattern[str]:
    """An id kwarg as it appears in the repr of a task's kwargs (Celery's "received" line)."""
    return re.compile(r"'(%s)': '([^']{0,256})'" % "|".join(map(re.escape, log_ids())))


@contextmanager
def bind(**ids: object) -> Iterator[None]:
    given = {k: v for k, v in ids.items() if v is not None}
    collected = _collected.get()
    if collected is not None:
        collected.update(given)
    token = _context.set({**_context.get(), **given})
    try:
        yield
    finally:
        _context.reset(token)


@contextmanager
def collect_ids() -> Iterator[dict[str, object]]:
    """A dict that gathers every id bound inside the block (a request's, for its access line).

    Route handlers run in a thread with a copy of the context; the dict itself is shared.
    """
    collected: dict[str, object] = {}
    token = _collected.set(collected)
    try:
        yield collected
    finally:
        _collected.reset(token)


def ids_of(kwargs: Mapping[str, Any]) -> dict[str, object]:
    return {k: kwargs[k] for k in log_ids() if isinstance(kwargs.get(k), str | int)}


_task_tokens: dict[str, Token] = {}


def task_started(task_id: str, task_name: str, kwargs: Mapping[str, Any]) -> None:
    """Bind a task's ids until `task_finished` (Celery's prerun/postrun signals)."""
    _task_tokens[task_id] = _context.set(
        {**_context.get(), "task_id": task_id, "task": task_name, **ids_of(kwargs or {})})


def task_finished(task_id: str) -> None:
    token = _task_tokens.pop(task_id, None)
    if token is not None:
        _context.reset(token)


def fields(record: logging.LogRecord) -> dict[str, object]:
    """The context and extras of a record: bound ids, Celery's task data, `extra=` fields."""
    line: dict[str, object] = dict(_context.get())
    data = getattr(record, "data", None)
    if isinstance(data, dict) and "id" in data:  # Celery's task lines
        line.setdefault("task_id", data["id"])
        line.setdefault("task", data.get("name"))
        for key, value in _kwarg_repr().findall(str(data.get("kwargs", ""))):
            line.setdefault(key, value)
    line.update({k: v for k, v in record.__dict__.items() if k not in _RESERVED})
    return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **fields(record),
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """`12:00:01.234 INFO  some.module: message  machine_id=... task_id=...`"""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S.%f")[:-3]
        extras = " ".join(f"{k}={v}" for k, v in fields(record).items())
        text = f"{ts} {record.levelname:<5} {record.name}: {record.getMessage()}"
        if extras:
            text += f"  {extras}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


_ZEROS = re.compile(r"^\{('\w+': 0(, )?)*\}$")


class QuietSweeps(logging.Filter):
    """Drop the every-few-seconds lines of a sweep that published nothing.

    The sweeper logs what it published itself; Celery's received/succeeded lines for an empty
    sweep, and beat's "sending due task" line for it, would bury everything else.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        data = getattr(record, "data", None)
        if record.levelno >= logging.WARNING:
            return True
        if isinstance(data, dict) and data.get("name") == SWEEP_TASK:
            returned = data.get("return_value")
            return returned is not None and not _ZEROS.match(str(returned))
        if record.name == "celery.beat" and SWEEP_TASK in str(record.args):
            return False
        return True


SWEEP_TASK = "workers.sweep"


def formatter(kind: str | None = None) -> logging.Formatter:
    from workers.settings import get_settings

    kind = kind or get_settings().log_format
    return TextFormatter() if kind == "text" else JsonFormatter()


def configure_logging(kind: str | None = None) -> None:
    root = logging.getLogger()
    if any(isinstance(h.formatter, JsonFormatter | TextFormatter) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(kind))
    handler.addFilter(QuietSweeps())
    root.addHandler(handler)
    root.setLevel(os.environ.get("LOG_LEVEL", "INFO").upper())
    # Lifecycle lines ("ready", "shutdown") are what supervisors wait for: keep them at any level.
    logging.getLogger("celery.apps.worker").setLevel(logging.INFO)
