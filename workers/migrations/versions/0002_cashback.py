"""Cashback tables: order_clears (target cashback per order) and order_rates.

Revision ID: 0002_cashback
Revises: 0001_runtime
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002_cashback"
down_revision = "0001_runtime"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "order_clears",
        sa.Column("order_id", sa.String(128), primary_key=True),
        sa.Column("service", sa.String(64), primary_key=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("yandex_uid", sa.String(64), nullable=False),
        sa.Column("cashback_by_source", JSONB, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("charge_status", sa.String(16), nullable=False),
        sa.Column("last_operation_id", sa.Text, nullable=True),
        sa.Column("error", JSONB, nullable=True),
        sa.Column("wallet_id", sa.String(128), nullable=True),
        sa.Column("billing_service", sa.String(64), nullable=True),
        sa.Column("payload", JSONB, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.text("now()")),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.text("now()")),
        sa.CheckConstraint(
            "charge_status IN ('pending', 'charging', 'charged', 'failed')",
            name="order_clears_charge_status_check",
        ),
        sa.CheckConstraint("version >= 1", name="order_clears_version_check"),
    )
    # The failed-orders metric counts these on every scrape.
    op.create_index("order_clears_failed_idx", "order_clears", [sa.text("(error->>'code')")],
                    postgresql_where=sa.text("charge_status = 'failed'"))
    op.create_table(
        "order_rates",
        sa.Column("order_id", sa.String(128), primary_key=True),
        sa.Column("service", sa.String(64), primary_key=True),
        sa.Column("source", sa.String(64), primary_key=True),
        sa.Column("rate", sa.Numeric, nullable=False),
        sa.Column("max_value", sa.Numeric, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.text("now()")),
        sa.CheckConstraint("rate >= 0", name="order_rates_rate_check"),
        sa.CheckConstraint("max_value IS NULL OR max_value >= 0",
                           name="order_rates_max_value_check"),
    )


def downgrade() -> None:
    op.drop_table("order_rates")
    op.drop_index("order_clears_failed_idx", table_name="order_clears")
    op.drop_table("order_clears")
