"""Runtime tables: machines with their event histories and timers, and STQ-style task rows.

Alembic migrations create them (workers/migrations); these definitions are what the code
queries against and must match the newest migration.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from workers.db import metadata

machines = Table(
    "machines",
    metadata,
    Column("namespace", String(64), primary_key=True),
    Column("id", String(256), primary_key=True),
    Column("status", String(16), nullable=False, server_default="working"),
    Column("error", JSONB, nullable=True),
    Column("aux_state", JSONB, nullable=True),
    Column("last_event_id", BigInteger, nullable=False, server_default="0"),
    Column("failed_attempts", Integer, nullable=False, server_default="0"),
    Column("timer_due_at", DateTime(timezone=True), nullable=True),
    Column("timer_token", String(36), nullable=True),
    Column("timer_sent_at", DateTime(timezone=True), nullable=True),
    # When the sweeper next publishes the timer (migration 0006).
    Column("timer_publish_at", DateTime(timezone=True), nullable=True),
    # The step the timer runs: its message goes out as that step's Celery task.
    Column("timer_step", String(64), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Index(
        "machines_timer_due_idx",
        "timer_due_at",
        postgresql_where=text("timer_due_at IS NOT NULL"),
    ),
    Index(
        "machines_timer_publish_idx",
        "timer_publish_at",
        postgresql_where=text("timer_publish_at IS NOT NULL"),
    ),
)

machine_events = Table(
    "machine_events",
    metadata,
    Column("namespace", String(64), primary_key=True),
    Column("machine_id", String(256), primary_key=True),
    Column("event_id", BigInteger, primary_key=True),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("body", JSONB, nullable=False),
)

stq_tasks = Table(
    "stq_tasks",
    metadata,
    Column("queue", String(128), primary_key=True),
    Column("task_id", String(256), primary_key=True),
    Column("kwargs", JSONB, nullable=False),
    Column("eta", DateTime(timezone=True), nullable=False),
    Column("token", String(36), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=True),
    Column("publish_at", DateTime(timezone=True), nullable=True, server_default=text("now()")),
    Column("exec_tries", Integer, nullable=False, server_default="0"),
    Column("reschedule_counter", Integer, nullable=False, server_default="0"),
    Column("last_error", Text, nullable=True),
    # Set when the job raised STQ_RETRY_LIMIT times: the row is kept, never swept (migration
    # 0007), until the task is added again.
    Column("failed_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Index("stq_tasks_eta_idx", "eta"),
    Index("stq_tasks_publish_idx", "publish_at", postgresql_where=text("publish_at IS NOT NULL")),
)
