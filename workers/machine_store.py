"""The machines' SQL: reading, locking and writing machine rows and their event histories."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, tuple_, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import OperationalError

from workers import timers
from workers.db import Tx, transaction
from workers.machine_model import (
    Event,
    Json,
    Machine,
    MachineBusy,
    MachineNotFound,
    MachineSummary,
)
from workers.tables import machine_events, machines

_CALL_LOCK_TIMEOUT = "5s"


# The hot statements are constant SQL handed to the driver as it is (`exec_driver_sql`,
# placeholders in its %(name)s style): no statement compilation or bind processing per call,
# about 0.1 ms of CPU less a statement than `text()`. Starting a machine is one of them; the
# SQLAlchemy form of its upsert was not even cacheable and was compiled on every start.
INSERT_MACHINE = """
    INSERT INTO machines (namespace, id) VALUES (%(namespace)s, %(machine_id)s)
    ON CONFLICT DO NOTHING
    RETURNING *
"""


# The step path is two round trips: the row with its history under the lock, then one
# statement that appends events and moves the row.
# The due time is read inside the years Python can hold: a row stored before due times were
# bounded (year 0 or 10000 in UTC) would otherwise make its machine unreadable.
# GREATEST and LEAST skip NULLs: no timer must stay NULL, not become year 9999.
READABLE_DUE_AT = """
    CASE WHEN m.timer_due_at IS NOT NULL THEN GREATEST(
        LEAST(m.timer_due_at, '9999-12-30 00:00:00+00'), '0001-01-02 00:00:00+00')
    END AS timer_due_at"""

SELECT_MACHINE = f"""
    SELECT m.namespace, m.id, m.status, m.error, m.aux_state, m.last_event_id,
        m.failed_attempts, m.timer_token, m.timer_sent_at, m.timer_step, m.created_at,
        m.updated_at, {READABLE_DUE_AT}, (
        SELECT json_agg(json_build_array(e.event_id, e.occurred_at, e.body) ORDER BY e.event_id)
        FROM machine_events e WHERE e.namespace = m.namespace AND e.machine_id = m.id
    ) AS history
    FROM machines m WHERE m.namespace = %(namespace)s AND m.id = %(machine_id)s
"""
READ = SELECT_MACHINE
LOCK = SELECT_MACHINE + " FOR UPDATE OF m"
TRY_LOCK = SELECT_MACHINE + " FOR UPDATE OF m SKIP LOCKED"

APPLY = """
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


def key(namespace: str, machine_id: str) -> Json:
    return {"namespace": namespace, "machine_id": machine_id}


def lock(tx: Tx, namespace: str, machine_id: str) -> Row:
    """Wait (briefly) for the row lock: calls and repairs queue behind a running step."""
    tx.conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{_CALL_LOCK_TIMEOUT}'")
    try:
        row = tx.conn.exec_driver_sql(LOCK, key(namespace, machine_id)).first()
    except OperationalError as exc:
        raise MachineBusy(f"{namespace}/{machine_id} is busy") from exc
    if row is None:
        raise MachineNotFound(f"{namespace}/{machine_id}")
    return row


def try_lock(tx: Tx, namespace: str, machine_id: str) -> Row | None:
    """The row if it is free, None if another worker holds it."""
    row = tx.conn.exec_driver_sql(TRY_LOCK, key(namespace, machine_id)).first()
    if row is None and not exists(tx, namespace, machine_id):
        raise MachineNotFound(f"{namespace}/{machine_id}")
    return row


def exists(tx: Tx, namespace: str, machine_id: str) -> bool:
    query = select(machines.c.id).where(machines.c.namespace == namespace,
                                        machines.c.id == machine_id)
    return tx.conn.execute(query).first() is not None


def history(row: Row) -> tuple[Event, ...]:
    """The history read with the row (see `locked_history` for a row that had to wait)."""
    return events(row.history)


def events(raw: list | None) -> tuple[Event, ...]:
    return tuple(
        Event(event_id, datetime.fromisoformat(occurred_at), body)
        for event_id, occurred_at, body in raw or ()
    )


READ_HISTORY = """
    SELECT json_agg(json_build_array(event_id, occurred_at, body) ORDER BY event_id)
    FROM machine_events WHERE namespace = %(namespace)s AND machine_id = %(machine_id)s
"""


def locked_history(tx: Tx, row: Row) -> tuple[Event, ...]:
    """The history of a row this transaction has locked, as it stands now.

    Under READ COMMITTED a locking statement that had to wait (or met a row updated after its
    snapshot) returns the row's newest version, but its history subquery still reads the
    statement's older snapshot. The row's `last_event_id` is current, so a history shorter than
    it was read too early: read it again in a new statement, which sees every commit before
    our lock. The common case (no wait) costs no extra round trip.
    """
    if len(row.history or ()) == row.last_event_id:
        return history(row)
    return events(tx.conn.exec_driver_sql(READ_HISTORY, key(row.namespace, row.id)).scalar())


def to_machine(row: Row, history: tuple[Event, ...]) -> Machine:
    return Machine(
        namespace=row.namespace,
        id=row.id,
        history=history,
        aux_state=row.aux_state,
        status=row.status,
        error=row.error,
        timer_due_at=row.timer_due_at,
    )


def update_row(tx: Tx, namespace: str, machine_id: str, values: Json) -> None:
    tx.conn.execute(
        update(machines)
        .where(machines.c.namespace == namespace, machines.c.id == machine_id)
        .values(**values)
    )


SWEEP = timers.claim_sql("machines", ("namespace", "id"), due="timer_due_at",
                         sent_at="timer_sent_at", publish_at="timer_publish_at",
                         returning="t.namespace, t.id, t.timer_token, t.timer_step")


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
        if not exists(tx, namespace, machine_id):
            raise MachineNotFound(f"{namespace}/{machine_id}")
        return tuple(Event(*row) for row in tx.conn.execute(query))
