"""What a machine namespace sees and returns: the model of the durable machines.

A machine is `(namespace, id)` with an append-only event history, an optional auxiliary state,
a status (`working` or `failed` with the error) and at most one timer. A namespace supplies a
*processor*: a function from (signal, machine) to `Result` (new events, next action, response).
Processors are pure with respect to our storage: they may call peers, never the database or
Celery. `workers.machines` runs them; `workers.machine_store` holds the SQL.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from foundation.errors import TypedError
from foundation.retry import retry_everything

Json = dict[str, Any]


class MachineStatus(StrEnum):
    WORKING = "working"
    FAILED = "failed"


class ActionKind(StrEnum):
    KEEP = "keep"
    UNSET = "unset"
    SET = "set"


class Outcome(StrEnum):
    """What a timer message came to, for logs and metrics."""

    PROCESSED = "processed"
    STALE = "stale"  # its token is no longer current, or the machine is failed
    BUSY = "busy"  # another worker holds the row: sent again shortly
    EARLY = "early"  # not due yet: sent again when it is near
    FAILED_ATTEMPT = "failed_attempt"  # the step raised: a retry or the failure is recorded


@dataclass(frozen=True)
class Event:
    id: int
    occurred_at: datetime
    body: Json


@dataclass(frozen=True)
class Machine:
    namespace: str
    id: str
    history: tuple[Event, ...]
    aux_state: Json | None
    status: MachineStatus = MachineStatus.WORKING
    error: Json | None = None
    timer_due_at: datetime | None = None


# Signal arguments are the namespace's own typed commands, in-process: the runtime passes them
# to the processor untouched and never stores them.


@dataclass(frozen=True)
class Init:
    args: Any


@dataclass(frozen=True)
class Timeout:
    pass


@dataclass(frozen=True)
class Call:
    args: Any


@dataclass(frozen=True)
class Action:
    """What to do with the timer: keep it, clear it, or set it `after_s` from now / at `at`."""

    kind: ActionKind = ActionKind.KEEP
    after_s: float = 0.0
    at: datetime | None = None

    @classmethod
    def keep(cls) -> Action:
        return cls(ActionKind.KEEP)

    @classmethod
    def unset(cls) -> Action:
        return cls(ActionKind.UNSET)

    @classmethod
    def timeout(cls, seconds: float) -> Action:
        return cls(ActionKind.SET, after_s=max(0.0, seconds))

    @classmethod
    def instant(cls) -> Action:
        return cls.timeout(0)

    @classmethod
    def deadline(cls, at: datetime) -> Action:
        return cls(ActionKind.SET, at=at)

    def due_at(self, now: datetime) -> datetime:
        return self.at if self.at is not None else now + timedelta(seconds=self.after_s)


KEEP = object()
"""`Result.aux_state` default: leave the stored aux state as it is."""


@dataclass(frozen=True)
class Result:
    events: Sequence[Json] = ()
    action: Action = field(default_factory=Action.keep)
    aux_state: Any = KEEP
    response: Any = None
    # The step the next timer runs, when the namespace names its steps: its messages go out
    # as the Celery task of that name, so a task list shows which step ran.
    step: str | None = None


class Processor(Protocol):
    def __call__(self, signal: Signal, machine: Machine) -> Result: ...


@dataclass(frozen=True)
class Namespace:
    """A kind of machine: its processor and how to tell a transient failure from a fatal one.

    Transient failures of a timeout are retried on a timer with capped exponential backoff;
    fatal ones, and transient ones past the retry limit, mark the machine failed until repaired.
    """

    name: str
    processor: Processor
    is_transient: Callable[[BaseException], bool] = retry_everything
    steps: tuple[str, ...] = ()

    @property
    def task_name(self) -> str:
        return timeout_task_name(self.name)


def timeout_task_name(namespace: str, step: str | None = None) -> str:
    """The Celery task that delivers a timer of a namespace (routed by its prefix): the
    step's own task when the timer names one, else the namespace's generic one."""
    return f"{namespace}.{step}" if step else f"{namespace}.machine_timeout"


@dataclass(frozen=True)
class Repair:
    """An operator's repair of a failed machine, handed to the processor with its arguments
    (which action, who, why): it answers with the events that record it and the next action,
    or raises a typed error when the repair does not fit (nothing is stored then)."""

    args: Any


Signal = Init | Timeout | Call | Repair


# --- errors the runner raises -------------------------------------------------------------


class MachineError(TypedError):
    code = "machine_error"
    http_status = 409


class MachineNotFound(MachineError):
    code = "machine_not_found"
    http_status = 404


class MachineAlreadyExists(MachineError):
    code = "machine_already_exists"


class MachineFailed(MachineError):
    code = "machine_failed"


class MachineNotFailed(MachineError):
    code = "machine_not_failed"


class MachineBusy(MachineError):
    code = "machine_busy"
    http_status = 503


@dataclass(frozen=True)
class MachineSummary:
    namespace: str
    id: str
    status: str
    error: Json | None
    updated_at: datetime
