"""The machine runner: one processor call at a time per machine, its effects in one commit.

Every signal (start, call, timeout, repair) runs in one transaction that holds the machine's
row lock, so its events, aux state and next timer commit together (`workers.machine_store`).
Messages to Celery are published only after that commit and carry the timer token; a message
whose token is no longer current is stale and dropped. Each namespace's timers run as Celery
tasks named after their steps.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy.engine import Row

from foundation.errors import TypedError, code_of
from workers import machine_store as store
from workers import metrics, timers
from workers.celery_app import app
from workers.db import Tx, transaction
from workers.logs import bind
from workers.machine_model import (  # noqa: F401 - the runtime's public names live here too
    KEEP,
    Action,
    ActionKind,
    Call,
    Event,
    Init,
    Json,
    Machine,
    MachineAlreadyExists,
    MachineBusy,
    MachineError,
    MachineFailed,
    MachineNotFailed,
    MachineNotFound,
    MachineStatus,
    MachineSummary,
    Namespace,
    Outcome,
    Processor,
    Repair,
    Result,
    Signal,
    Timeout,
    retry_everything,
    timeout_task_name,
)
from workers.machine_store import history_page, list_machines  # noqa: F401
from workers.messages import TypedTask, parse
from workers.timers import now

log = logging.getLogger(__name__)

_EARLY_TOLERANCE = timedelta(milliseconds=500)


def start(ns: Namespace, machine_id: str, args: Any) -> Any:
    """Create the machine and process its init signal; raise MachineAlreadyExists if it exists."""
    with bind(namespace=ns.name, machine_id=machine_id), transaction() as tx:
        # The inserted row is ours until commit (a concurrent start waits on its key), so it
        # needs no separate lock; RETURNING hands back its defaults.
        row = tx.conn.exec_driver_sql(store.INSERT_MACHINE, store.key(ns.name, machine_id)).first()
        if row is None:
            raise MachineAlreadyExists(f"{ns.name}/{machine_id} exists")
        machine = store.to_machine(row, history=())
        result = ns.processor(Init(args), machine)
        _apply(tx, ns, row, result, fired=False)
        return result.response


def call(ns: Namespace, machine_id: str, args: Any) -> Any:
    """Process a synchronous call; the processor's exception reaches the caller, nothing stored."""
    with bind(namespace=ns.name, machine_id=machine_id), transaction() as tx:
        row = store.lock(tx, ns.name, machine_id)
        if row.status == MachineStatus.FAILED:
            raise MachineFailed(f"{ns.name}/{machine_id} is failed: {row.error}")
        result = ns.processor(Call(args), store.to_machine(row, store.locked_history(tx, row)))
        _apply(tx, ns, row, result, fired=False)
        return result.response


def repair(ns: Namespace, machine_id: str) -> None:
    """Resume a failed machine: clear the failure and re-run its current step at once."""
    with bind(namespace=ns.name, machine_id=machine_id), transaction() as tx:
        row = store.lock(tx, ns.name, machine_id)
        if row.status != MachineStatus.FAILED:
            raise MachineNotFailed(f"{ns.name}/{machine_id} is not failed")
        _set_timer(tx, ns.name, row, now(), status=MachineStatus.WORKING, error=None,
                   failed_attempts=0)
        log.info("machine repaired")


def get(namespace: str, machine_id: str) -> Machine:
    with transaction() as tx:
        row = tx.conn.exec_driver_sql(store.READ, store.key(namespace, machine_id)).first()
        if row is None:
            raise MachineNotFound(f"{namespace}/{machine_id}")
        return store.to_machine(row, store.history(row))


def handle_timeout(ns: Namespace, machine_id: str, token: str) -> Outcome:
    """Run the machine's timer if `token` is still current. Returns what happened, for logs."""
    with bind(namespace=ns.name, machine_id=machine_id), transaction() as tx:
        row = store.try_lock(tx, ns.name, machine_id)
        if row is None:
            # Another worker holds the row; ask again shortly with the same token.
            tx.after_commit(lambda: timers.publish(ns.task_name, _message(machine_id, token),
                                                   timers.busy_delay()))
            return Outcome.BUSY
        if (row.timer_token != token or row.status != MachineStatus.WORKING
                or row.timer_due_at is None):
            return Outcome.STALE
        current = now()
        if row.timer_due_at > current + _EARLY_TOLERANCE:
            due = row.timer_due_at
            task_name = timeout_task_name(ns.name, row.timer_step)
            tx.after_commit(lambda: timers.publish_if_near(task_name,
                                                           _message(machine_id, token), due))
            return Outcome.EARLY
        metrics.observe_timer_lag(ns.name, (current - row.timer_due_at).total_seconds())
        machine = store.to_machine(row, store.locked_history(tx, row))
        try:
            result = ns.processor(Timeout(), machine)
        except Exception as exc:  # the processor failed: nothing of it is stored
            _record_failure(tx, ns, row, exc)
            return Outcome.FAILED_ATTEMPT
        _apply(tx, ns, row, result, fired=True)
        return Outcome.PROCESSED


def _message(machine_id: str, token: str) -> Json:
    return {"machine_id": machine_id, "token": token}


def _apply(tx: Tx, ns: Namespace, row: Row, result: Result, *, fired: bool) -> None:
    current = now()
    action = result.action
    # A fired timer is consumed: keeping it would run the same step again.
    keep_timer = action.kind == ActionKind.KEEP and not fired
    armed = timers.arm(action.due_at(current), current) if action.kind == ActionKind.SET else None
    tx.conn.exec_driver_sql(
        store.APPLY,
        {
            **store.key(ns.name, row.id),
            "now": current,
            "last_event_id": row.last_event_id,
            "events": json.dumps(list(result.events)),
            "count": len(result.events),
            "set_aux": result.aux_state is not KEEP,
            "aux_state": None if result.aux_state in (KEEP, None) else json.dumps(
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
    store.update_row(tx, namespace, row.id, values)
    if armed.near:
        _publish_after_commit(tx, namespace, row.id, armed, row.timer_step)


def _record_failure(tx: Tx, ns: Namespace, row: Row, exc: Exception) -> None:
    attempts = row.failed_attempts + 1
    error = {"code": code_of(exc), "type": type(exc).__name__, "message": str(exc)[:2000],
             "attempts": attempts}
    policy = timers.machine_retry_policy(ns.is_transient)
    if policy.retries(attempts, exc):
        delay = policy.delay(attempts)
        log.warning("step failed, retrying", extra={"error": error, "retry_in_s": delay})
        _set_timer(
            tx, ns.name, row, now() + timedelta(seconds=delay),
            failed_attempts=attempts, error=error,
        )
        return
    log.error("machine failed", extra={"error": error})
    store.update_row(
        tx, ns.name, row.id,
        {
            "status": MachineStatus.FAILED,
            "error": error,
            "failed_attempts": attempts,
            "timer_due_at": None,
            "timer_token": None,
            "timer_sent_at": None,
            "timer_publish_at": None,
            "updated_at": now(),
        },
    )


def sweep_due(limit: int) -> int:
    """Publish one batch of timers whose publish time has come (near, or message lost)."""
    def message(row: Row, countdown: float) -> tuple[str, Json, float]:
        return (timeout_task_name(row.namespace, row.timer_step),
                _message(row.id, row.timer_token), countdown)

    count = timers.sweep_batch(store.SWEEP, limit, message)
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


class StepAttemptFailed(TypedError):
    """Reported to Celery when a step attempt failed, after the runtime recorded it (a retry
    timer, or the machine marked failed): a task list shows the attempt failed, not a success.
    Not an answer (no HTTP status), so the task does raise it."""

    code = "step_attempt_failed"


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
        if outcome == Outcome.FAILED_ATTEMPT:
            raise StepAttemptFailed(f"{ns.name}/{message.machine_id}: the step failed; its "
                                    "retry or the machine's failure is recorded")
        return outcome

    generic = app.task(name=ns.task_name, base=TypedTask)(run_timer)
    for step in ns.steps:
        app.task(name=timeout_task_name(ns.name, step), base=TypedTask)(run_timer)
    return generic


# --- operator repairs ---------------------------------------------------------------------


def repair_with(ns: Namespace, machine_id: str, args: Any) -> Any:
    """Repair a failed machine through its processor: the events the processor returns are
    appended, the machine works again, and its timer is what the processor asked for."""
    with bind(namespace=ns.name, machine_id=machine_id), transaction() as tx:
        row = store.lock(tx, ns.name, machine_id)
        if row.status != MachineStatus.FAILED:
            raise MachineNotFailed(f"{ns.name}/{machine_id} is not failed")
        result = ns.processor(Repair(args), store.to_machine(row, store.locked_history(tx, row)))
        store.update_row(tx, ns.name, machine_id, {"status": MachineStatus.WORKING})
        _apply(tx, ns, row, result, fired=False)
        log.info("machine repaired", extra={"repair": args})
        return result.response


