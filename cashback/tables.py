"""Cashback tables: the target cashback per order (`order_clears`) and its rates (`order_rates`).

There is no events table: transactions takes the TARGET cashback, so an order keeps only its
current target per source and a version that counts the changes. Migration 0002_cashback
creates these; the definitions here must match it.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, Integer, Numeric, String, Table, Text, text
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
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Index("order_clears_failed_idx", text("(error->>'code')"),
          postgresql_where=text("charge_status = 'failed'")),
)

order_rates = Table(
    "order_rates",
    metadata,
    Column("order_id", String(128), primary_key=True),
    Column("service", String(64), primary_key=True),
    Column("source", String(64), primary_key=True),
    # A fraction of the eligible cleared sum (0.1 = 10 %).
    Column("rate", Numeric, nullable=False),
    # An absolute cap in the order currency; NULL: uncapped.
    Column("max_value", Numeric, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
)
