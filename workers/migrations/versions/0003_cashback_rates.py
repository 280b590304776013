"""Cashback rates per tariff class (written once per order) and operator retries of an order.

`order_rates` had one row per source with a rate, and nothing ever wrote it; the service it
follows keeps, per order, the order's tariff class and a rate (with an optional absolute cap)
per class. It becomes one row per order, so "first write wins" is a single INSERT ... ON
CONFLICT DO NOTHING. `order_clears.manual_retries` numbers the operator retries of the order's
current version.

Revision ID: 0003_cashback_rates
Revises: 0002_cashback
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003_cashback_rates"
down_revision = "0002_cashback"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("order_rates")
    op.create_table(
        "order_rates",
        sa.Column("order_id", sa.String(128), primary_key=True),
        sa.Column("service", sa.String(64), primary_key=True),
        sa.Column("tariff_class", sa.String(64), nullable=False),
        sa.Column("by_classes", JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.text("now()")),
        sa.CheckConstraint("jsonb_typeof(by_classes) = 'array'",
                           name="order_rates_by_classes_check"),
    )
    op.add_column("order_clears", sa.Column("manual_retries", sa.Integer, nullable=False,
                                            server_default=sa.text("0")))
    op.create_check_constraint("order_clears_manual_retries_check", "order_clears",
                               "manual_retries >= 0")


def downgrade() -> None:
    op.drop_constraint("order_clears_manual_retries_check", "order_clears")
    op.drop_column("order_clears", "manual_retries")
    op.drop_table("order_rates")
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
