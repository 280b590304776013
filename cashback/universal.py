"""`cashback.universal_cashback_processing`: compute an order's target cashback, register it.

From the invoice's `cleared` sums (plus `held` when CASHBACK_INSTANT_ENABLED) over the payment
types that earn cashback (CASHBACK_PAYMENT_TYPE_BLACKLIST names those that do not, e.g. the
wallet itself):
- the `service` source is `rates.calc` of the base: every item but `tips` (the driver's) and
  `cashback` (what the user pays with Plus points, which earns nothing);
- the `user` source is the sum of the `cashback` items: the points the user spent on the order.
Both are registered as the order's target; the charge follows.

Rates are written when the order is priced, the invoice when it is paid: without either the
task runs again later, and after CASHBACK_RATES_WAIT_LIMIT runs it gives up visibly (an error
log with the order id, and `celgate_cashback_universal_gave_up_total`).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from decimal import Decimal

from pydantic import ValidationError

from cashback import currencies, peers, rates
from cashback.charge import ChargePolicy
from cashback.metrics import UNIVERSAL_GAVE_UP
from cashback.queues import OrderKwargs
from cashback.register import RegisterRequest, SourceValue, register_in
from cashback.settings import get_settings
from clients.transactions import Invoice, InvoiceNotFound, PaymentItems, RateLimited
from foundation.errors import TypedError
from workers import stq
from workers.db import Tx
from workers.logs import bind

log = logging.getLogger(__name__)

TIPS, CASHBACK = "tips", "cashback"


@dataclass(frozen=True)
class Sums:
    """An invoice's sums as universal processing counts them."""

    cleared_base: Decimal  # what earns cashback, cleared
    held_base: Decimal  # what earns cashback, held
    user: Decimal  # the `cashback` items counted (cleared, plus held when instant)


def sums_of(invoice: Invoice, blacklist: Collection[str], *, instant: bool) -> Sums:
    cleared_base, cleared_user = _split(invoice.cleared, blacklist)
    held_base, held_user = _split(invoice.held, blacklist)
    return Sums(cleared_base, held_base, cleared_user + (held_user if instant else 0))


def _split(payments: Iterable[PaymentItems], blacklist: Collection[str]
           ) -> tuple[Decimal, Decimal]:
    """(base, cashback items) of the payment types not blacklisted, neither below zero."""
    base = user = Decimal(0)
    for payment in payments:
        if payment.payment_type in blacklist:
            continue
        for item in payment.items:
            if item.item_id == CASHBACK:
                user += item.amount
            elif item.item_id != TIPS:
                base += item.amount
    return max(base, Decimal(0)), max(user, Decimal(0))


def target_of(invoice: Invoice, order_rates: rates.OrderRates, *, blacklist: Collection[str],
              instant: bool) -> dict[str, Decimal]:
    """{"service": calc(base), "user": the cashback items}, at the cashback precision."""
    sums = sums_of(invoice, blacklist, instant=instant)
    precision = currencies.cashback_precision(invoice.currency)
    service = rates.calc(order_rates, cleared=sums.cleared_base, held=sums.held_base,
                         instant=instant, precision=precision)
    return {"service": service, "user": currencies.round_down_cashback(sums.user,
                                                                        invoice.currency)}


def run(tx: Tx, task: stq.Task, kwargs: OrderKwargs) -> stq.JobResult:
    with bind(order_id=kwargs.order_id, service=kwargs.service):
        settings = get_settings()
        order_rates = rates.load(tx, kwargs.order_id, kwargs.service)
        if order_rates is None:
            return _wait(task, kwargs, "no_rates", "no cashback rates for the order")
        try:
            invoice = peers.transactions().retrieve_invoice(kwargs.order_id)
        except InvoiceNotFound:
            return _wait(task, kwargs, "no_invoice", "transactions has no invoice for the order")
        except RateLimited:
            return stq.Reschedule(ChargePolicy.from_settings().poll_delay(task.reschedule_counter))
        if not invoice.yandex_uid:
            log.error("invoice has no yandex_uid: cashback cannot be registered")
            UNIVERSAL_GAVE_UP.labels(service=kwargs.service, reason="no_yandex_uid").inc()
            return stq.Finish()
        try:
            values = target_of(invoice, order_rates, instant=settings.cashback_instant_enabled,
                               blacklist=settings.cashback_blacklisted_payment_types)
            request = RegisterRequest(
                order_id=kwargs.order_id, service=kwargs.service, currency=invoice.currency,
                yandex_uid=invoice.yandex_uid,
                cashback_by_source=[SourceValue(source=source, value=format(value, "f"))
                                    for source, value in sorted(values.items())],
            )
            result = register_in(tx, request)
        except (TypedError, ValidationError) as exc:
            if isinstance(exc, TypedError) and not exc.is_answer:
                raise
            # The invoice or the order disagree with what register accepts: no retry fixes it.
            code = exc.code if isinstance(exc, TypedError) else "invalid_request"
            log.error("computed cashback refused by register",
                      extra={"code": code, "error": str(exc)})
            UNIVERSAL_GAVE_UP.labels(service=kwargs.service, reason=code).inc()
            return stq.Finish()
        log.info("cashback computed and registered", extra={
            "version": result.version, "tariff_class": order_rates.tariff_class,
            "cashback": {s: format(v, "f") for s, v in values.items()}})
        return stq.Finish()


def _wait(task: stq.Task, kwargs: OrderKwargs, reason: str, message: str) -> stq.JobResult:
    """Run again later, unless this is the CASHBACK_RATES_WAIT_LIMIT-th run that waits."""
    runs = task.reschedule_counter + 1
    limit = get_settings().cashback_rates_wait_limit
    if runs >= limit:
        log.error(f"{message}: gave up after {runs} runs", extra={
            "code": reason, "runs": runs})
        UNIVERSAL_GAVE_UP.labels(service=kwargs.service, reason=reason).inc()
        return stq.Finish()
    log.info(f"{message} yet: runs again later", extra={"code": reason, "runs": runs})
    return stq.Reschedule(ChargePolicy.from_settings().poll_delay(task.reschedule_counter))
