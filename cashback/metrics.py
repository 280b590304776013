"""Prometheus metrics of cashback: failed orders read from PostgreSQL when scraped, and two
counters a worker updates at the spot (operations sent, universal processing that gave up).

The orders whose charge failed are counted by the database, not by a counter in one worker
process: any process that serves the default registry reports the same, restart-proof figure.
A partial index on failed orders keeps the scrape cheap.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from cashback.orders import ChargeStatus
from cashback.tables import order_clears
from workers.db import transaction

FAILED_ORDERS = "celgate_cashback_failed_orders"


def _family() -> GaugeMetricFamily:
    return GaugeMetricFamily(
        FAILED_ORDERS, "Orders whose cashback charge failed (retries exhausted or a fatal "
        "error), by error code; each waits for an operator or a new register.",
        labels=["code"])


class FailedOrdersCollector(Collector):
    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Registration asks for the names only; without this it would query the database.
        yield _family()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = _family()
        code = order_clears.c.error["code"].astext
        with transaction() as tx:
            rows = tx.conn.execute(
                select(code, func.count())
                .where(order_clears.c.charge_status == ChargeStatus.FAILED.value)
                .group_by(code)
            ).all()
        for error_code, count in rows:
            family.add_metric([error_code or "unknown"], count)
        yield family


# Registered on import, as prometheus_client's own metrics are: once per process.
REGISTRY.register(FailedOrdersCollector())


# A worker-side counter: universal processing that ended without registering (rates or
# invoice never came, or what it computed was refused), by service and reason.
UNIVERSAL_GAVE_UP = Counter(
    "celgate_cashback_universal_gave_up_total",
    "Universal cashback processing runs that gave up without registering, by reason "
    "(no_rates, no_invoice, no_yandex_uid, or the code register refused with).",
    ["service", "reason"])


CASHBACK_OPERATIONS = Counter(
    "celgate_cashback_operations",
    "Cashback updates sent to transactions, by kind: update (an order version's first id), "
    "retry (after a failed invoice) or manual (an operator's retry).",
    ["service", "kind"])


def cashback_operation_sent(service: str, operation_id: str) -> None:
    kind = ("manual" if "/manual/" in operation_id
            else "retry" if "/retry/" in operation_id else "update")
    CASHBACK_OPERATIONS.labels(service, kind).inc()
