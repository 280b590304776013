"""`cashback.cashback_charge_processing`: bring an order's invoice to the order's target cashback.

One run: lock the order, read the invoice, let `charge.decide` pick the step, do it, record the
order's charge status, and finish or reschedule. The job runs inside the STQ task's
transaction, so the status it records commits together with its reschedule; a run that crashes
after sending an update repeats it with the same operation id, which transactions takes as the
same operation.
"""

from __future__ import annotations

import logging

from cashback import orders, peers, wallets
from cashback.charge import (
    ChargePolicy,
    ChargeTarget,
    Decision,
    Done,
    Fail,
    Update,
    Wait,
    decide,
    on_missing_invoice,
    operations_of,
)
from cashback.metrics import cashback_operation_sent
from cashback.orders import ChargeStatus, Order
from cashback.queues import OrderKwargs
from cashback.settings import get_settings
from clients.transactions import (
    Invoice,
    InvoiceNotFound,
    RateLimited,
    TransactionsClient,
    TransactionsRejected,
    VersionConflict,
)
from clients.wallet import WalletRejected
from workers import stq, timers
from workers.db import Tx
from workers.logs import bind

log = logging.getLogger(__name__)


def run(tx: Tx, task: stq.Task, kwargs: OrderKwargs) -> stq.JobResult:
    with bind(order_id=kwargs.order_id, service=kwargs.service):
        order = orders.lock_unless_busy(tx, kwargs.order_id, kwargs.service)
        if order is None:
            log.warning("charge of an order never registered: nothing to do")
            return stq.Finish()
        if order is orders.BUSY:
            return stq.Reschedule(timers.busy_delay())
        if order.charge_status is ChargeStatus.FAILED:
            # Stays failed until it is registered again or an operator retries it (both make
            # it pending).
            return stq.Finish()
        return _charge(tx, order, task.reschedule_counter, ChargePolicy.from_settings())


def _charge(tx: Tx, order: Order, polls: int, policy: ChargePolicy) -> stq.JobResult:
    client = peers.transactions()
    target = ChargeTarget(order.order_id, order.version, order.cashback_by_source,
                          manual=order.manual_retries)
    try:
        invoice = client.retrieve_invoice(order.order_id)
    except InvoiceNotFound:
        return _settle(tx, order, target, on_missing_invoice(order.order_id, polls, policy),
                       None)
    except RateLimited:
        return stq.Reschedule(policy.poll_delay(polls))
    decision = decide(target, invoice, stq.now(), policy, polls=polls)
    if isinstance(decision, Update):
        return _send(tx, client, order, target, invoice, decision, polls, policy)
    return _settle(tx, order, target, decision, invoice)


def _send(tx: Tx, client: TransactionsClient, order: Order, target: ChargeTarget,
          invoice: Invoice, update: Update, polls: int, policy: ChargePolicy) -> stq.JobResult:
    assert invoice.user_ip is not None  # decide() fails an invoice without one
    try:
        wallet_id = wallets.wallet_for(tx, order, invoice.user_ip)
    except WalletRejected as exc:
        return _settle(tx, order, target, Fail("wallet_rejected", str(exc)), invoice)
    try:
        client.update_cashback(
            invoice_id=order.order_id, operation_id=update.operation_id,
            version=update.invoice_version, yandex_uid=order.yandex_uid,
            user_ip=invoice.user_ip, wallet_account=wallet_id, reward=update.reward,
            billing_service=_billing_service(order), extra_payload=order.payload,
        )
    except VersionConflict:
        log.info("invoice changed under the update; reading it again",
                 extra={"operation_id": update.operation_id})
        return stq.Reschedule(policy.poll_initial_s)
    except RateLimited:
        return stq.Reschedule(policy.poll_delay(polls))
    except InvoiceNotFound:
        return _settle(tx, order, target, on_missing_invoice(order.order_id, polls, policy),
                       None)
    except TransactionsRejected as exc:
        return _settle(tx, order, target, Fail("update_rejected", str(exc)), invoice)
    log.info("cashback update sent", extra={
        "operation_id": update.operation_id, "invoice_version": update.invoice_version,
        "reward": {source: format(amount, "f") for source, amount in update.reward.items()}})
    cashback_operation_sent(order.service, update.operation_id)
    orders.record_charge(tx, order, ChargeStatus.CHARGING,
                         last_operation_id=update.operation_id)
    return stq.Reschedule(policy.poll_initial_s)


def _billing_service(order: Order) -> str | None:
    """The one register gave, else the service's from CASHBACK_BILLING_SERVICES."""
    return (order.billing_service
            or get_settings().cashback_billing_service_by_service.get(order.service))


def _settle(tx: Tx, order: Order, target: ChargeTarget, decision: Decision,
            invoice: Invoice | None) -> stq.JobResult:
    """Record what a decision other than Update means for the order; finish or wait."""
    if isinstance(decision, Done):
        orders.record_charge(tx, order, ChargeStatus.CHARGED)
        log.info("cashback charged", extra={"version": order.version})
        return stq.Finish()
    if isinstance(decision, Fail):
        error = {"code": decision.reason, "message": decision.message}
        orders.record_charge(tx, order, ChargeStatus.FAILED, error=error)
        log.error("cashback charge failed", extra={"code": decision.reason,
                                                   "error": decision.message})
        return stq.Finish()
    assert isinstance(decision, Wait)
    sent = invoice is not None and bool(operations_of(target, invoice.cashback.operations))
    orders.record_charge(tx, order, ChargeStatus.CHARGING if sent else ChargeStatus.PENDING)
    return stq.Reschedule(decision.delay_s)
