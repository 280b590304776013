"""STQ-style tasks: jobs keyed by `(queue, task_id)`, rows in PostgreSQL, messages as hints.

Adding a task that is already pending updates its kwargs and due time and rotates its token,
so there is never more than one pending task per id and older messages turn stale. A job
returns `Finish` (the row is deleted) or `Reschedule` (new due time, new token). A job that
raises runs again after a backoff; after STQ_RETRY_LIMIT attempts (a transient failure is
waited out) its row is marked failed: kept for operators (`celgate stq list`, the
`celgate_stq_tasks` gauge), never swept, until the task is added again. The queue name is the
Celery task name that executes it, so the sweeper needs no registry to publish.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import text, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import DBAPIError

from workers import timers
from workers.celery_app import app
from workers.db import Tx, transaction
from workers.logs import bind
from workers.messages import TypedTask, parse
from workers.tables import stq_tasks
from workers.timers import now

log = logging.getLogger(__name__)

TOKEN_KEY = "stq_token"
"""Kwarg our own messages add; a message from another service has none."""


@dataclass(frozen=True)
class Task:
    queue: str
    task_id: str
    kwargs: dict[str, Any]
    eta: datetime
    exec_tries: int
    reschedule_counter: int


@dataclass(frozen=True)
class Finish:
    pass


@dataclass(frozen=True)
class Reschedule:
    delay_s: float


JobResult = Finish | Reschedule
Job = Callable[[Tx, Task], JobResult]


def add(tx: Tx, queue: str, task_id: str, kwargs: dict[str, Any], *, delay_s: float = 0) -> None:
    """Queue (or re-queue) a task inside the caller's transaction; the message follows commit."""
    current = now()
    armed = timers.arm(current + timedelta(seconds=delay_s), current)
    tx.conn.execute(_ADD, {"queue": queue, "task_id": task_id, "kwargs": json.dumps(kwargs),
                           "eta": armed.due, "token": armed.token, "sent_at": armed.sent_at,
                           "publish_at": armed.publish_at, "now": current})
    if armed.near:
        tx.after_commit(lambda: _publish(queue, kwargs, armed.token, armed.due))


def pending(queue: str, task_id: str) -> Task | None:
    with transaction() as tx:
        row = tx.conn.execute(_READ, {"queue": queue, "task_id": task_id}).first()
        return _task(row) if row else None


def execute(queue: str, task_id: str, kwargs: dict[str, Any], token: str | None, job: Job) -> str:
    """Run the job for a message. Returns what happened, for logs.

    A message without a token comes from another service: it queues the task (or nudges the
    pending one) and then runs it like our own.
    """
    if token is None:
        with transaction() as tx:
            add(tx, queue, task_id, kwargs)
        return "queued"
    with bind(stq_queue=queue, task_id=task_id), transaction() as tx:
        row = tx.conn.execute(_TRY_LOCK, {"queue": queue, "task_id": task_id}).first()
        if row is None:
            if tx.conn.execute(_READ, {"queue": queue, "task_id": task_id}).first() is None:
                return "stale"  # finished already
            delay = timers.busy_delay()
            tx.after_commit(lambda: _publish(queue, kwargs, token, now(), countdown=delay))
            return "busy"
        if row.token != token or row.failed_at is not None:
            return "stale"
        task = _task(row)
        try:
            with tx.conn.begin_nested():
                result = job(tx, task)
        except Exception as exc:  # the job's writes are rolled back to the savepoint
            if _connection_lost(tx, exc):
                # Nothing can be recorded on a dead connection (it would only raise
                # PendingRollbackError); the row keeps its publish time and comes back.
                raise
            return _attempt_failed(tx, row, exc)
        if isinstance(result, Finish):
            tx.conn.execute(_DELETE, {"queue": queue, "task_id": task_id})
            return "finished"
        _reschedule(tx, row, result.delay_s, reschedule=True)
        return "rescheduled"


_SWEEP = timers.claim_sql("stq_tasks", ("queue", "task_id"), due="eta", sent_at="sent_at",
                          publish_at="publish_at", returning="t.queue, t.kwargs, t.token")


def sweep_due(limit: int) -> int:
    """Publish one batch of rows whose publish time has come (near, or message lost)."""
    def message(row: Row, countdown: float) -> tuple[str, dict[str, Any], float]:
        return row.queue, {**row.kwargs, TOKEN_KEY: row.token}, countdown

    count = timers.sweep_batch(_SWEEP, limit, message)
    if count:
        log.info("swept stq tasks", extra={"count": count})
    return count


# --- internals ----------------------------------------------------------------------------


# Constant statements: the hot path compiles nothing per call.
_ADD = text("""
    INSERT INTO stq_tasks (queue, task_id, kwargs, eta, token, sent_at, publish_at)
    VALUES (:queue, :task_id, CAST(:kwargs AS jsonb), :eta, :token, :sent_at, :publish_at)
    ON CONFLICT (queue, task_id) DO UPDATE SET
        kwargs = excluded.kwargs, eta = excluded.eta, token = excluded.token,
        sent_at = excluded.sent_at, publish_at = excluded.publish_at, updated_at = :now,
        -- a failed task added again starts over
        exec_tries = CASE WHEN stq_tasks.failed_at IS NULL THEN stq_tasks.exec_tries ELSE 0 END,
        failed_at = NULL
""")
_READ = text("SELECT * FROM stq_tasks WHERE queue = :queue AND task_id = :task_id")
_TRY_LOCK = text("SELECT * FROM stq_tasks WHERE queue = :queue AND task_id = :task_id "
                 "FOR UPDATE SKIP LOCKED")
_DELETE = text("DELETE FROM stq_tasks WHERE queue = :queue AND task_id = :task_id")


def _connection_lost(tx: Tx, exc: Exception) -> bool:
    return tx.conn.invalidated or (isinstance(exc, DBAPIError) and exc.connection_invalidated)


def _key(queue: str, task_id: str) -> tuple:
    return (stq_tasks.c.queue == queue, stq_tasks.c.task_id == task_id)


def _task(row: Row) -> Task:
    return Task(
        queue=row.queue,
        task_id=row.task_id,
        kwargs=row.kwargs,
        eta=row.eta,
        exec_tries=row.exec_tries,
        reschedule_counter=row.reschedule_counter,
    )


def _publish(
    queue: str, kwargs: dict[str, Any], token: str, eta: datetime, countdown: float | None = None
) -> None:
    delay = timers.delay_until(eta) if countdown is None else countdown
    timers.publish(queue, {**kwargs, TOKEN_KEY: token}, delay)


def _reschedule(tx: Tx, row: Row, delay_s: float, *, reschedule: bool, **values: Any) -> None:
    current = now()
    armed = timers.arm(current + timedelta(seconds=delay_s), current)
    counter = row.reschedule_counter + (1 if reschedule else 0)
    tx.conn.execute(
        update(stq_tasks)
        .where(*_key(row.queue, row.task_id))
        .values(
            eta=armed.due,
            token=armed.token,
            sent_at=armed.sent_at,
            publish_at=armed.publish_at,
            reschedule_counter=counter,
            updated_at=current,
            **values,
        )
    )
    if armed.near:
        tx.after_commit(lambda: _publish(row.queue, row.kwargs, armed.token, armed.due))


def _attempt_failed(tx: Tx, row: Row, exc: Exception) -> str:
    """Run the job again after a backoff, or mark the row failed once the policy gives up."""
    tries = row.exec_tries + 1
    error = f"{type(exc).__name__}: {exc}"
    policy = timers.stq_retry_policy()
    if policy.retries(tries, exc):
        delay = policy.delay(tries)
        log.warning("stq job failed, retrying",
                    extra={"error": error, "exec_tries": tries, "retry_in_s": delay})
        _reschedule(tx, row, delay, reschedule=False, exec_tries=tries, last_error=error[:2000])
        return "failed_attempt"
    log.error("stq job failed for good", extra={
        "code": "stq_failed", "stq_queue": row.queue, "task_id": row.task_id, "error": error,
        "exec_tries": tries})
    current = now()
    # No publish time: the sweeper never claims the row again.
    tx.conn.execute(update(stq_tasks).where(*_key(row.queue, row.task_id)).values(
        exec_tries=tries, last_error=error[:2000], failed_at=current, sent_at=None,
        publish_at=None, updated_at=current))
    return "failed"


# --- the Celery side ----------------------------------------------------------------------

K = TypeVar("K", bound=BaseModel)


def register_task(
    name: str,
    kwargs_model: type[K],
    task_id_of: Callable[[K], str],
    job: Callable[[Tx, Task, K], JobResult],
):
    """Define the Celery task `name` that executes STQ tasks of the queue of the same name.

    The kwargs are validated into `kwargs_model` on every delivery: a malformed message is
    rejected (logged, acked), never retried.
    """

    @app.task(name=name, base=TypedTask)
    def stq_task(**kwargs: Any) -> str:
        token = kwargs.pop(TOKEN_KEY, None)
        args = parse(kwargs_model, kwargs)
        task_id = task_id_of(args)
        outcome = execute(
            name, task_id, args.model_dump(mode="json"), token,
            lambda tx, task: job(tx, task, args),
        )
        log.info("stq task handled", extra={"stq_queue": name, "task_id": task_id,
                                            "outcome": outcome})
        return outcome

    return stq_task
