"""Operator reads over the runtime tables: totals for the metrics, rows for the CLI.

Every read here is bounded by an index or by the number of rows that are waiting, never by
the number of machines (see the metrics module and migration 0005_operate).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text

from workers.db import Tx
from workers.machine_store import READABLE_DUE_AT

# Only one scrape at a time folds the deltas; another reads totals plus the deltas left.
_FOLD_LOCK = 0x63656C67  # "celg"

_FOLD = text("""
    WITH moved AS (DELETE FROM machine_count_deltas RETURNING namespace, status, delta)
    INSERT INTO machine_counts (namespace, status, count)
    SELECT namespace, status, sum(delta) FROM moved GROUP BY namespace, status
    ORDER BY namespace, status
    ON CONFLICT (namespace, status) DO UPDATE SET count = machine_counts.count + excluded.count
""")
_TOTALS = text("""
    SELECT namespace, status, sum(count) AS count FROM (
        SELECT namespace, status, count FROM machine_counts
        UNION ALL
        SELECT namespace, status, delta FROM machine_count_deltas
    ) t GROUP BY namespace, status
""")


def machine_totals(tx: Tx) -> dict[tuple[str, str], int]:
    """Machines per (namespace, status), from the trigger-kept totals."""
    if tx.conn.execute(text("SELECT pg_try_advisory_xact_lock(:key)"),
                       {"key": _FOLD_LOCK}).scalar():
        tx.conn.execute(_FOLD)
    return {(ns, status): int(count) for ns, status, count in tx.conn.execute(_TOTALS)
            if count}


def stq_totals(tx: Tx, overdue_after: timedelta = timedelta(seconds=30)
               ) -> dict[tuple[str, str], int]:
    """STQ rows per (queue, state): failed, overdue, retrying or pending (first match)."""
    rows = tx.conn.execute(text("""
        SELECT queue, CASE WHEN failed_at IS NOT NULL THEN 'failed'
                           WHEN eta < now() - :overdue THEN 'overdue'
                           WHEN exec_tries > 0 THEN 'retrying'
                           ELSE 'pending' END AS state, count(*)
        FROM stq_tasks GROUP BY 1, 2
    """), {"overdue": overdue_after})
    return {(queue, state): count for queue, state, count in rows}


def overdue_timers(tx: Tx, overdue_after: timedelta = timedelta(seconds=30)) -> dict[str, int]:
    """Working machines whose timer is due more than `overdue_after` ago, per namespace.

    Reads the due-time index from its start up to the cut-off: only late timers.
    """
    rows = tx.conn.execute(text("""
        SELECT namespace, count(*) FROM machines
        WHERE timer_due_at IS NOT NULL AND timer_due_at < now() - :overdue
          AND status = 'working'
        GROUP BY namespace
    """), {"overdue": overdue_after})
    return {namespace: count for namespace, count in rows}


@dataclass(frozen=True)
class StqRow:
    queue: str
    task_id: str
    eta: datetime
    sent_at: datetime | None
    exec_tries: int
    reschedule_counter: int
    last_error: str | None
    failed_at: datetime | None

    def state(self, now: datetime, overdue_after: timedelta) -> str:
        if self.failed_at is not None:
            return "failed"
        if self.eta < now - overdue_after:
            return "overdue"
        return "retrying" if self.exec_tries else "pending"


def stq_rows(tx: Tx, *, queue: str | None = None, limit: int = 100) -> list[StqRow]:
    """STQ rows (waiting or failed), the most due first."""
    rows = tx.conn.execute(text("""
        SELECT queue, task_id, eta, sent_at, exec_tries, reschedule_counter, last_error,
               failed_at
        FROM stq_tasks WHERE (CAST(:queue AS text) IS NULL OR queue = :queue)
        ORDER BY eta LIMIT :limit
    """), {"queue": queue, "limit": limit})
    return [StqRow(*row) for row in rows]


def machine_rows(tx: Tx, *, namespace: str | None = None, status: str | None = None,
                 limit: int = 100) -> list[dict[str, Any]]:
    """Machines for `celgate machines list`, the latest changed first."""
    rows = tx.conn.execute(text("""
        SELECT namespace, id, status, error, """ + READABLE_DUE_AT + """, updated_at
        FROM machines m
        WHERE (CAST(:namespace AS text) IS NULL OR namespace = :namespace)
          AND (CAST(:status AS text) IS NULL OR status = :status)
        ORDER BY updated_at DESC LIMIT :limit
    """), {"namespace": namespace, "status": status, "limit": limit})
    return [dict(row._mapping) for row in rows]
