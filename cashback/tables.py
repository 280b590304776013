"""Cashback tables: the target cashback per order (`order_clears`) and its rates (`order_rates`).

There is no events table: transactions takes the TARGET cashback, so an order keeps only its
current target per source and a version that counts the changes. Migrations 0002_cashback
and 0003_cashback_rates create these; the definitions here must match them.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, Integer, String, Table, Text, text
from sqlalchemy.dialects.postgresql import JSONB

from workers.db import metadata

order_clears = Table(
    "order_clears",
    metadata,
    Column("order_id", String(128), primary_key=True),
    Column("service", String(64), primary_key=True),
    Column("currency", String(3), nullable=False),
    Column("yandex_uid", String(64), nullable=False),
    # {source: "decimal string"}: every source ever registered, zeros included.
    Column("cashback_by_source", JSONB, nullable=False),
    Column("version", Integer, nullable=False),
    Column("charge_status", String(16), nullable=False),
    Column("last_operation_id", Text, nullable=True),
    Column("error", JSONB(none_as_null=True), nullable=True),
    Column("wallet_id", String(128), nullable=True),
    Column("billing_service", String(64), nullable=True),
    Column("payload", JSONB(none_as_null=True), nullable=True),
    Column("manual_retries", Integer, nullable=False, server_default=text("0")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Index("order_clears_failed_idx", text("(error->>'code')"),
          postgresql_where=text("charge_status = 'failed'")),
)

# One row per order, written once (first write wins): the order's tariff class and the rates
# of every class, `[{"class", "value", "max_absolute_value"?}]` with decimal strings.
order_rates = Table(
    "order_rates",
    metadata,
    Column("order_id", String(128), primary_key=True),
    Column("service", String(64), primary_key=True),
    Column("tariff_class", String(64), nullable=False),
    Column("by_classes", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
)
