"""Durable state machines: the stand-in for the event-sourced machine service.

A machine is `(namespace, id)` with an append-only event history, an optional auxiliary state,
a status (`working` or `failed` with the error) and at most one timer. A namespace supplies a
*processor*: a function from (signal, machine) to `Result` (new events, next action, response).
Processors are pure with respect to our storage: they may call peers, never the database or
Celery. The runner around them does the rest in one transaction that holds the machine's row
lock, so one processor call at a time runs per machine and its events, aux state and next timer
commit together. Messages to Celery are published only after that commit and carry the timer
token; a message whose token is no longer current is stale and dropped.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from pydantic import BaseModel
from sqlalchemy import select, tuple_, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import OperationalError

from workers import metrics, timers
from workers.celery_app import app
from workers.db import Tx, transaction
from workers.errors import TypedError
from workers.logs import bind
from workers.messages import TypedTask, parse
from workers.tables import machine_events, machines

log = logging.getLogger(__name__)

Json = dict[str, Any]


# --- what processors see and return -------------------------------------------------------


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
    status: str = "working"
    error: Json | None = None
    timer_due_at: datetime | None = None


@dataclass(frozen=True)
class Init:
    args: Json


@dataclass(frozen=True)
class Timeout:
    pass


@dataclass(frozen=True)
class Call:
    args: Json


Signal = Init | Timeout | Call


@dataclass(frozen=True)
class Action:
    """What to do with the timer: keep it, clear it, or set it `after_s` from now / at `at`."""

    kind: str = "keep"
    after_s: float = 0.0
    at: datetime | None = None

    @classmethod
    def keep(cls) -> Action:
        return cls("keep")

    @classmethod
    def unset(cls) -> Action:
        return cls("unset")

    @classmethod
    def timeout(cls, seconds: float) -> Action:
        return cls("set", after_s=max(0.0, seconds))

    @classmethod
    def instant(cls) -> Action:
        return cls.timeout(0)

    @classmethod
    def deadline(cls, at: datetime) -> Action:
        return cls("set", at=at)

    def due_at(self, now: datetime) -> datetime:
        return self.at if self.at is not None else now + timedelta(seconds=self.after_s)


_KEEP = object()


@dataclass(frozen=True)
class Result:
    events: Sequence[Json] = ()
    action: Action = field(default_factory=Action.keep)
    aux_state: Any = _KEEP
    response: Any = None
    # The step the next timer runs, when the namespace names its steps: its messages go out
    # as the Celery task of that name, so a task list shows which step ran.
    step: str | None = None


class Processor(Protocol):
    def __call__(self, signal: Signal, machine: Machine) -> Result: ...


def retry_everything(exc: BaseException) -> bool:
    return True


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


# --- the runner ---------------------------------------------------------------------------

_CALL_LOCK_TIMEOUT = "5s"
_EARLY_TOLERANCE = timedelta(milliseconds=500)


def now() -> datetime:
    return datetime.now(UTC)


def start(ns: Namespace, machine_id: str, args: Json) -> Any:
    """Create the machine and process its init signal; raise MachineAlreadyExists if it exists."""
    with bind(namespace=ns.name, machine_id=machine_id), transaction() as tx:
        # The inserted row is ours until commit (a concurrent start waits on its key), so it
        # needs no separate lock; RETURNING hands back its defaults.
        row = tx.conn.exec_driver_sql(_INSERT_MACHINE, _key(ns.name, machine_id)).first()
        if row is None:
            raise MachineAlreadyExists(f"{ns.name}/{machine_id} exists")
        machine = _machine(row, history=())
        result = ns.processor(Init(args), machine)
        _apply(tx, ns, row, result, fired=False)
        return result.response


def call(ns: Namespace, machine_id: str, args: Json) -> Any:
    """Process a synchronous call; the processor's exception reaches the caller, nothing stored."""
    with bind(namespace=ns.name, machine_id=machine_id), transaction() as tx:
        row = _lock(tx, ns.name, machine_id)
        if row.status == "failed":
            raise MachineFailed(f"{ns.name}/{machine_id} is failed: {row.error}")
        result = ns.processor(Call(args), _machine(row, _locked_history(tx, row)))
        _apply(tx, ns, row, result, fired=False)
        return result.response


def repair(ns: Namespace, machine_id: str) -> None:
    """Resume a failed machine: clear the failure and re-run its current step at once."""
    with bind(namespace=ns.name, machine_id=machine_id), transaction() as tx:
        row = _lock(tx, ns.name, machine_id)
        if row.status != "failed":
            raise MachineNotFailed(f"{ns.name}/{machine_id} is not failed")
        _set_timer(tx, ns.name, row, now(), status="working", error=None, failed_attempts=0)
        log.info("machine repaired")


def get(namespace: str, machine_id: str) -> Machine:
    with transaction() as tx:
        row = tx.conn.exec_driver_sql(_READ, _key(namespace, machine_id)).first()
        if row is None:
            raise MachineNotFound(f"{namespace}/{machine_id}")
        return _machine(row, _history(row))


def handle_timeout(ns: Namespace, machine_id: str, token: str) -> str:
    """Run the machine's timer if `token` is still current. Returns what happened, for logs."""
    with bind(namespace=ns.name, machine_id=machine_id), transaction() as tx:
        row = _try_lock(tx, ns.name, machine_id)
        if row is None:
            # Another worker holds the row; ask again shortly with the same token.
            tx.after_commit(lambda: timers.publish(ns.task_name, _message(machine_id, token),
                                                   timers.busy_delay()))
            return "busy"
        if row.timer_token != token or row.status != "working" or row.timer_due_at is None:
            return "stale"
        current = now()
        if row.timer_due_at > current + _EARLY_TOLERANCE:
            due = row.timer_due_at
            task_name = timeout_task_name(ns.name, row.timer_step)
            tx.after_commit(lambda: timers.publish_if_near(task_name,
                                                           _message(machine_id, token), due))
            return "early"
        metrics.observe_timer_lag(ns.name, (current - row.timer_due_at).total_seconds())
        machine = _machine(row, _locked_history(tx, row))
        try:
            result = ns.processor(Timeout(), machine)
        except Exception as exc:  # the processor failed: nothing of it is stored
            _record_failure(tx, ns, row, exc)
            return "failed_attempt"
        _apply(tx, ns, row, result, fired=True)
        return "processed"


# --- internals ----------------------------------------------------------------------------


# The hot statements are constant SQL handed to the driver as it is (`exec_driver_sql`,
# placeholders in its %(name)s style): no statement compilation or bind processing per call,
# about 0.1 ms of CPU less a statement than `text()`. Starting a machine is one of them; the
# SQLAlchemy form of its upsert was not even cacheable and was compiled on every start.
_INSERT_MACHINE = """
    INSERT INTO machines (namespace, id) VALUES (%(namespace)s, %(machine_id)s)
    ON CONFLICT DO NOTHING
    RETURNING *
"""


# The step path is two round trips: the row with its history under the lock, then one
# statement that appends events and moves the row.
# The due time is read inside the years Python can hold: a row stored before due times were
# bounded (year 0 or 10000 in UTC) would otherwise make its machine unreadable.
_SELECT_MACHINE = """
    SELECT m.namespace, m.id, m.status, m.error, m.aux_state, m.last_event_id,
        m.failed_attempts, m.timer_token, m.timer_sent_at, m.timer_step, m.created_at,
        m.updated_at,
        -- GREATEST and LEAST skip NULLs: no timer must stay NULL, not become year 9999.
        CASE WHEN m.timer_due_at IS NOT NULL THEN GREATEST(
            LEAST(m.timer_due_at, '9999-12-30 00:00:00+00'), '0001-01-02 00:00:00+00')
        END AS timer_due_at, (
        SELECT json_agg(json_build_array(e.event_id, e.occurred_at, e.body) ORDER BY e.event_id)
        FROM machine_events e WHERE e.namespace = m.namespace AND e.machine_id = m.id
    ) AS history
    FROM machines m WHERE m.namespace = %(namespace)s AND m.id = %(machine_id)s
"""
_READ = _SELECT_MACHINE
_LOCK = _SELECT_MACHINE + " FOR UPDATE OF m"
_TRY_LOCK = _SELECT_MACHINE + " FOR UPDATE OF m SKIP LOCKED"

_APPLY = """
    WITH appended AS (
        INSERT INTO machine_events (namespace, machine_id, event_id, occurred_at, body)
        SELECT %(namespace)s, %(machine_id)s, %(last_event_id)s + e.n, %(now)s, e.body
        FROM jsonb_array_elements(CAST(%(events)s AS jsonb)) WITH ORDINALITY AS e(body, n)
    )
    UPDATE machines SET
        last_event_id = %(last_event_id)s + %(count)s,
        aux_state = CASE WHEN %(set_aux)s THEN CAST(%(aux_state)s AS jsonb) ELSE aux_state END,
        timer_due_at = CASE WHEN %(keep_timer)s THEN timer_due_at ELSE %(due)s END,
        timer_token = CASE WHEN %(keep_timer)s THEN timer_token ELSE %(token)s END,
        timer_sent_at = CASE WHEN %(keep_timer)s THEN timer_sent_at ELSE %(sent_at)s END,
        timer_publish_at = CASE WHEN %(keep_timer)s THEN timer_publish_at
                                ELSE %(publish_at)s END,
        timer_step = CASE WHEN %(keep_timer)s THEN timer_step ELSE %(step)s END,
        failed_attempts = 0, error = NULL, updated_at = %(now)s
    WHERE namespace = %(namespace)s AND id = %(machine_id)s
"""


def _key(namespace: str, machine_id: str) -> Json:
    return {"namespace": namespace, "machine_id": machine_id}


def _lock(tx: Tx, namespace: str, machine_id: str) -> Row:
    """Wait (briefly) for the row lock: calls and repairs queue behind a running step."""
    tx.conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{_CALL_LOCK_TIMEOUT}'")
    try:
        row = tx.conn.exec_driver_sql(_LOCK, _key(namespace, machine_id)).first()
    except OperationalError as exc:
        raise MachineBusy(f"{namespace}/{machine_id} is busy") from exc
    if row is None:
        raise MachineNotFound(f"{namespace}/{machine_id}")
    return row


def _try_lock(tx: Tx, namespace: str, machine_id: str) -> Row | None:
    """The row if it is free, None if another worker holds it."""
    row = tx.conn.exec_driver_sql(_TRY_LOCK, _key(namespace, machine_id)).first()
    if row is None and not _exists(tx, namespace, machine_id):
        raise MachineNotFound(f"{namespace}/{machine_id}")
    return row


def _exists(tx: Tx, namespace: str, machine_id: str) -> bool:
    query = select(machines.c.id).where(machines.c.namespace == namespace,
                                        machines.c.id == machine_id)
    return tx.conn.execute(query).first() is not None


def _history(row: Row) -> tuple[Event, ...]:
    return _events(row.history)


def _events(raw: list | None) -> tuple[Event, ...]:
    return tuple(
        Event(event_id, datetime.fromisoformat(occurred_at), body)
        for event_id, occurred_at, body in raw or ()
    )


_READ_HISTORY = """
    SELECT json_agg(json_build_array(event_id, occurred_at, body) ORDER BY event_id)
    FROM machine_events WHERE namespace = %(namespace)s AND machine_id = %(machine_id)s
"""


def _locked_history(tx: Tx, row: Row) -> tuple[Event, ...]:
    """The history of a row this transaction has locked, as it stands now.

    Under READ COMMITTED a locking statement that had to wait (or met a row updated after its
    snapshot) returns the row's newest version, but its history subquery still reads the
    statement's older snapshot. The row's `last_event_id` is current, so a history shorter than
    it was read too early: read it again in a new statement, which sees every commit before
    our lock. The common case (no wait) costs no extra round trip.
    """
    if len(row.history or ()) == row.last_event_id:
        return _history(row)
    return _events(tx.conn.exec_driver_sql(_READ_HISTORY, _key(row.namespace, row.id)).scalar())


def _machine(row: Row, history: tuple[Event, ...]) -> Machine:
    return Machine(
        namespace=row.namespace,
        id=row.id,
        history=history,
        aux_state=row.aux_state,
        status=row.status,
        error=row.error,
        timer_due_at=row.timer_due_at,
    )


def _message(machine_id: str, token: str) -> Json:
    return {"machine_id": machine_id, "token": token}


def _apply(tx: Tx, ns: Namespace, row: Row, result: Result, *, fired: bool) -> None:
    current = now()
    action = result.action
    # A fired timer is consumed: keeping it would run the same step again.
    keep_timer = action.kind == "keep" and not fired
    armed = timers.arm(action.due_at(current), current) if action.kind == "set" else None
    tx.conn.exec_driver_sql(
        _APPLY,
        {
            **_key(ns.name, row.id),
            "now": current,
            "last_event_id": row.last_event_id,
            "events": json.dumps(list(result.events)),
            "count": len(result.events),
            "set_aux": result.aux_state is not _KEEP,
            "aux_state": None if result.aux_state in (_KEEP, None) else json.dumps(
                result.aux_state),
            "keep_timer": keep_timer,
            "due": armed and armed.due,
            "token": armed and armed.token,
            "sent_at": armed and armed.sent_at,
            "publish_at": armed and armed.publish_at,
            "step": result.step,
        },
    )
    if armed is not None and armed.near:
        _publish_after_commit(tx, ns.name, row.id, armed, result.step)


def _publish_after_commit(tx: Tx, namespace: str, machine_id: str, armed: timers.Armed,
                          step: str | None) -> None:
    message, task_name = _message(machine_id, armed.token), timeout_task_name(namespace, step)
    tx.after_commit(lambda: timers.publish(task_name, message, timers.delay_until(armed.due)))


def _set_timer(tx: Tx, namespace: str, row: Row, due: datetime, **values: Any) -> None:
    """Run the row's current step again at `due` (a retry, a repair)."""
    current = now()
    armed = timers.arm(due, current)
    values.update(timer_due_at=armed.due, timer_token=armed.token, timer_sent_at=armed.sent_at,
                  timer_publish_at=armed.publish_at, updated_at=current)
    _update(tx, namespace, row.id, values)
    if armed.near:
        _publish_after_commit(tx, namespace, row.id, armed, row.timer_step)


def _update(tx: Tx, namespace: str, machine_id: str, values: Json) -> None:
    tx.conn.execute(
        update(machines)
        .where(machines.c.namespace == namespace, machines.c.id == machine_id)
        .values(**values)
    )


def _record_failure(tx: Tx, ns: Namespace, row: Row, exc: Exception) -> None:
    attempts = row.failed_attempts + 1
    error = {"code": getattr(exc, "code", None) or _snake_case(type(exc).__name__),
             "type": type(exc).__name__, "message": str(exc)[:2000], "attempts": attempts}
    if ns.is_transient(exc) and attempts < timers.machine_retry_limit():
        delay = timers.backoff(attempts)
        log.warning("step failed, retrying", extra={"error": error, "retry_in_s": delay})
        _set_timer(
            tx, ns.name, row, now() + timedelta(seconds=delay),
            failed_attempts=attempts, error=error,
        )
        return
    log.error("machine failed", extra={"error": error})
    _update(
        tx, ns.name, row.id,
        {
            "status": "failed",
            "error": error,
            "failed_attempts": attempts,
            "timer_due_at": None,
            "timer_token": None,
            "timer_sent_at": None,
            "timer_publish_at": None,
            "updated_at": now(),
        },
    )


def _snake_case(name: str) -> str:
    """`ResourceUnavailable` -> `resource_unavailable`: a code for an error that has none."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


_SWEEP = timers.claim_sql("machines", ("namespace", "id"), due="timer_due_at",
                          sent_at="timer_sent_at", publish_at="timer_publish_at",
                          returning="t.namespace, t.id, t.timer_token, t.timer_step")


def sweep_due(limit: int) -> int:
    """Publish one batch of timers whose publish time has come (near, or message lost)."""
    def publish(row: Row, countdown: float) -> None:
        timers.publish(timeout_task_name(row.namespace, row.timer_step),
                       _message(row.id, row.timer_token), countdown)

    count = timers.sweep_batch(_SWEEP, limit, publish)
    if count:
        log.info("swept machine timers", extra={"count": count})
    return count


# --- the Celery side ----------------------------------------------------------------------


class TimeoutMessage(BaseModel):
    machine_id: str
    token: str


_registered: dict[str, Namespace] = {}


def registered(name: str) -> Namespace:
    """A namespace whose timeout task this process defined (for operator commands)."""
    try:
        return _registered[name]
    except KeyError:
        raise MachineNotFound(f"no machine namespace {name!r}") from None


class StepAttemptFailed(Exception):
    """Reported to Celery when a step attempt failed, after the runtime recorded it (a retry
    timer, or the machine marked failed): a task list shows the attempt failed, not a success.
    Not a TypedError, so the task does raise it."""


def register_timeout_task(ns: Namespace):
    """Define the Celery tasks that run this namespace's timers: one generic task and one per
    named step, all doing the same (the machine's state decides the step; the name shows it)."""
    _registered[ns.name] = ns

    def run_timer(**kwargs: Any) -> str:
        message = parse(TimeoutMessage, kwargs)
        started = time.perf_counter()
        outcome = handle_timeout(ns, message.machine_id, message.token)
        metrics.step_done(ns.name, outcome, started)
        log.debug("timeout handled", extra={"namespace": ns.name, "machine_id": message.machine_id,
                                           "outcome": outcome})
        if outcome == "failed_attempt":
            raise StepAttemptFailed(f"{ns.name}/{message.machine_id}: the step failed; its "
                                    "retry or the machine's failure is recorded")
        return outcome

    generic = app.task(name=ns.task_name, base=TypedTask)(run_timer)
    for step in ns.steps:
        app.task(name=timeout_task_name(ns.name, step), base=TypedTask)(run_timer)
    return generic


# --- operator repairs and paged reads -----------------------------------------------------


@dataclass(frozen=True)
class Repair:
    """An operator's repair of a failed machine, handed to the processor with its arguments
    (which action, who, why): it answers with the events that record it and the next action,
    or raises a typed error when the repair does not fit (nothing is stored then)."""

    args: Json


def repair_with(ns: Namespace, machine_id: str, args: Json) -> Any:
    """Repair a failed machine through its processor: the events the processor returns are
    appended, the machine works again, and its timer is what the processor asked for."""
    with bind(namespace=ns.name, machine_id=machine_id), transaction() as tx:
        row = _lock(tx, ns.name, machine_id)
        if row.status != "failed":
            raise MachineNotFailed(f"{ns.name}/{machine_id} is not failed")
        result = ns.processor(Repair(args), _machine(row, _locked_history(tx, row)))
        _update(tx, ns.name, machine_id, {"status": "working"})
        _apply(tx, ns, row, result, fired=False)
        log.info("machine repaired", extra={"repair": args})
        return result.response


@dataclass(frozen=True)
class MachineSummary:
    namespace: str
    id: str
    status: str
    error: Json | None
    updated_at: datetime


def list_machines(namespace: str | None, status: str | None, after: tuple[str, str] | None,
                  limit: int) -> list[MachineSummary]:
    """Machines in (namespace, id) order after the key `after`, optionally of one namespace
    and one status; at most `limit`."""
    query = select(machines.c.namespace, machines.c.id, machines.c.status, machines.c.error,
                   machines.c.updated_at)
    if namespace is not None:
        query = query.where(machines.c.namespace == namespace)
    if status is not None:
        query = query.where(machines.c.status == status)
    if after is not None:
        query = query.where(tuple_(machines.c.namespace, machines.c.id) > tuple_(*after))
    query = query.order_by(machines.c.namespace, machines.c.id).limit(limit)
    with transaction() as tx:
        return [MachineSummary(*row) for row in tx.conn.execute(query)]


def history_page(namespace: str, machine_id: str, after: int, limit: int) -> tuple[Event, ...]:
    """Events of the machine with ids above `after`, oldest first, at most `limit`."""
    query = (select(machine_events.c.event_id, machine_events.c.occurred_at,
                    machine_events.c.body)
             .where(machine_events.c.namespace == namespace,
                    machine_events.c.machine_id == machine_id,
                    machine_events.c.event_id > after)
             .order_by(machine_events.c.event_id).limit(limit))
    with transaction() as tx:
        if not _exists(tx, namespace, machine_id):
            raise MachineNotFound(f"{namespace}/{machine_id}")
        return tuple(Event(*row) for row in tx.conn.execute(query))
