"""When the sweeper next publishes a timer or STQ row, and which step a machine timer runs.

The sweep used to test every due row's sent mark on each pass, re-sending every row whose
message looked lost: a backlog longer than the redelivery allowance was re-sent in full on
every pass and multiplied itself. `publish_at` holds the next moment a row is worth
publishing; each re-send pushes it further out (doubling), and a partial index keeps the scan
to the rows that are due for it. `timer_step` names the step a machine's timer runs, so its
message (and a re-send) goes out as that step's own Celery task.

Revision ID: 0006_timer_publish_at
Revises: 0005_operate
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_timer_publish_at"
down_revision = "0005_operate"
branch_labels = None
depends_on = None

# Existing rows: a never-sent timer is published once it is a minute from due (the default
# short-timer threshold), a sent one a minute after it was sent or due (the default allowance).
_BACKFILL = """
    UPDATE {table} SET {publish_at} = CASE
        WHEN {sent_at} IS NULL THEN {due} - interval '60 seconds'
        ELSE greatest({due}, {sent_at}) + interval '60 seconds' END
    WHERE {due} IS NOT NULL {extra}
"""


def upgrade() -> None:
    op.add_column("machines", sa.Column("timer_step", sa.String(64), nullable=True))
    op.add_column("machines", sa.Column("timer_publish_at", sa.DateTime(timezone=True),
                                        nullable=True))
    op.execute(_BACKFILL.format(table="machines", publish_at="timer_publish_at",
                                sent_at="timer_sent_at", due="timer_due_at",
                                extra="AND status = 'working'"))
    op.create_index("machines_timer_publish_idx", "machines", ["timer_publish_at"],
                    postgresql_where=sa.text("timer_publish_at IS NOT NULL"))
    # A row written without it (by hand, or by an older writer) is published on the next pass.
    op.add_column("stq_tasks", sa.Column("publish_at", sa.DateTime(timezone=True),
                                         nullable=True, server_default=sa.text("now()")))
    op.execute(_BACKFILL.format(table="stq_tasks", publish_at="publish_at", sent_at="sent_at",
                                due="eta", extra=""))
    op.create_index("stq_tasks_publish_idx", "stq_tasks", ["publish_at"],
                    postgresql_where=sa.text("publish_at IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("stq_tasks_publish_idx", table_name="stq_tasks")
    op.drop_column("stq_tasks", "publish_at")
    op.drop_index("machines_timer_publish_idx", table_name="machines")
    op.drop_column("machines", "timer_publish_at")
    op.drop_column("machines", "timer_step")
