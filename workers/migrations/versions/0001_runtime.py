"""Runtime tables: machines, machine events, STQ-style tasks.

Revision ID: 0001_runtime
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001_runtime"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "machines",
        sa.Column("namespace", sa.String(64), primary_key=True),
        sa.Column("id", sa.String(256), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False, server_default="working"),
        sa.Column("error", JSONB, nullable=True),
        sa.Column("aux_state", JSONB, nullable=True),
        sa.Column("last_event_id", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("failed_attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("timer_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("timer_token", sa.String(36), nullable=True),
        sa.Column("timer_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
    )
    op.create_index(
        "machines_timer_due_idx",
        "machines",
        ["timer_due_at"],
        postgresql_where=sa.text("timer_due_at IS NOT NULL"),
    )
    op.create_table(
        "machine_events",
        sa.Column("namespace", sa.String(64), primary_key=True),
        sa.Column("machine_id", sa.String(256), primary_key=True),
        sa.Column("event_id", sa.BigInteger, primary_key=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("body", JSONB, nullable=False),
    )
    op.create_table(
        "stq_tasks",
        sa.Column("queue", sa.String(128), primary_key=True),
        sa.Column("task_id", sa.String(256), primary_key=True),
        sa.Column("kwargs", JSONB, nullable=False),
        sa.Column("eta", sa.DateTime(timezone=True), nullable=False),
        sa.Column("token", sa.String(36), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("exec_tries", sa.Integer, nullable=False, server_default="0"),
        sa.Column("reschedule_counter", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
    )
    op.create_index("stq_tasks_eta_idx", "stq_tasks", ["eta"])


def downgrade() -> None:
    op.drop_table("stq_tasks")
    op.drop_table("machine_events")
    op.drop_index("machines_timer_due_idx", table_name="machines")
    op.drop_table("machines")
