"""STQ rows that failed for good: `failed_at`.

A job that kept raising used to be retried forever. After STQ_RETRY_LIMIT attempts its row is
now kept with `failed_at` set and no publish time, so the sweeper leaves it alone while the
gauge and `celgate stq list` show it; adding the task again brings it back.

Revision ID: 0007_stq_failed
Revises: 0006_timer_publish_at
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_stq_failed"
down_revision = "0006_timer_publish_at"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("stq_tasks", sa.Column("failed_at", sa.DateTime(timezone=True),
                                         nullable=True))


def downgrade() -> None:
    # A failed row goes back to being retried: the old code knows no other state.
    op.execute("UPDATE stq_tasks SET publish_at = now() WHERE failed_at IS NOT NULL")
    op.drop_column("stq_tasks", "failed_at")
