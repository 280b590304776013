"""`cashback.universal_cashback_processing`: compute an order's target cashback, register it.

The base is the invoice's cleared sum over the payment types that earn cashback (the setting
CASHBACK_PAYMENT_TYPE_BLACKLIST names those that do not, e.g. paid from the wallet itself).
Each source gets its rate times the base, capped by its max value, rounded DOWN to the
currency's precision. With no rates for the order yet the task asks again later; they are
written when the order is priced.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from decimal import Decimal

from pydantic import ValidationError
from sqlalchemy import select

from cashback import currencies, peers
from cashback.charge import ChargePolicy
from cashback.queues import OrderKwargs
from cashback.register import RegisterRequest, SourceValue, register_in
from cashback.tables import order_rates
from clients.transactions import Invoice, InvoiceNotFound, RateLimited
from workers import stq
from workers.db import Tx
from workers.errors import TypedError
from workers.logs import bind
from workers.settings import get_settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rate:
    rate: Decimal  # a fraction of the base: 0.1 is 10 %
    max_value: Decimal | None  # a cap in the order currency; None: uncapped


def eligible_base(invoice: Invoice, blacklist: Collection[str]) -> Decimal:
    """The cleared sum over payment types that earn cashback (never below zero)."""
    total = sum((item.amount for payment in invoice.cleared
                 if payment.payment_type not in blacklist for item in payment.items),
                Decimal(0))
    return max(total, Decimal(0))


def cashback_by_source(base: Decimal, rates: Mapping[str, Rate], currency: str
                       ) -> dict[str, Decimal]:
    values = {}
    for source, rate in rates.items():
        value = rate.rate * base
        if rate.max_value is not None:
            value = min(value, rate.max_value)
        values[source] = currencies.round_down(value, currency)
    return values


def load_rates(tx: Tx, order_id: str, service: str) -> dict[str, Rate]:
    rows = tx.conn.execute(
        select(order_rates).where(order_rates.c.order_id == order_id,
                                  order_rates.c.service == service)
    ).all()
    return {row.source: Rate(row.rate, row.max_value) for row in rows}


def run(tx: Tx, task: stq.Task, kwargs: OrderKwargs) -> stq.JobResult:
    with bind(order_id=kwargs.order_id, service=kwargs.service):
        wait = stq.Reschedule(ChargePolicy.from_settings().poll_delay(task.reschedule_counter))
        rates = load_rates(tx, kwargs.order_id, kwargs.service)
        if not rates:
            log.info("no cashback rates for the order yet")
            return wait
        try:
            invoice = peers.transactions().retrieve_invoice(kwargs.order_id)
        except (InvoiceNotFound, RateLimited) as exc:
            log.info("invoice not readable yet", extra={"error": str(exc)})
            return wait
        if not invoice.yandex_uid:
            log.error("invoice has no yandex_uid: cashback cannot be registered")
            return stq.Finish()
        base = eligible_base(invoice, get_settings().cashback_blacklisted_payment_types)
        values = cashback_by_source(base, rates, invoice.currency)
        try:
            request = RegisterRequest(
                order_id=kwargs.order_id, service=kwargs.service, currency=invoice.currency,
                yandex_uid=invoice.yandex_uid,
                cashback_by_source=[SourceValue(source=source, value=format(value, "f"))
                                    for source, value in sorted(values.items())],
            )
            result = register_in(tx, request)
        except (TypedError, ValidationError) as exc:
            # The invoice or the order disagree with what register accepts: no retry fixes it.
            log.error("computed cashback refused by register", extra={"error": str(exc)})
            return stq.Finish()
        log.info("cashback computed and registered", extra={
            "base": format(base, "f"), "version": result.version,
            "cashback": {s: format(v, "f") for s, v in values.items()}})
        return stq.Finish()
