"""`cashback.cashback_charge_processing`: bring an order's invoice to the order's target cashback.

One run: lock the order, read the invoice, let `charge.decide` pick the step and do it; what
the calls come to, a call that raised included, is one decision (`charge.after_error`), which
`_settle` alone turns into the order's charge status and a finish or reschedule. The job runs inside the STQ task's
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
    RetryJob,
    Sent,
    Update,
    Wait,
    after_error,
    decide,
    operations_of,
)
from cashback.metrics import cashback_operation_sent
from cashback.orders import ChargeStatus, Order
from cashback.queues import OrderKwargs
from cashback.settings import get_settings
from clients.transactions import Invoice, TransactionsClient
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
    target = ChargeTarget(order.order_id, order.version, order.cashback_by_source,
                          manual=order.manual_retries)
    decision, invoice = _decide(tx, order, target, polls, policy)
    return _settle(tx, order, target, decision, invoice)


def _decide(tx: Tx, order: Order, target: ChargeTarget, polls: int,
            policy: ChargePolicy) -> tuple[Decision, Invoice | None]:
    """Read the invoice, and send the update when that is the decision: every outcome, a
    call that raised included, comes out as one decision (and the invoice, when read)."""
    client = peers.transactions()
    try:
        invoice = client.retrieve_invoice(order.order_id)
    except Exception as exc:  # noqa: BLE001 - after_error sorts it; the rest re-raises
        return after_error("retrieve_invoice", exc, order.order_id, polls, policy), None
    decision = decide(target, invoice, stq.now(), policy, polls=polls)
    if isinstance(decision, Update):
        decision = _send(tx, client, order, invoice, decision, polls, policy)
    return decision, invoice


def _send(tx: Tx, client: TransactionsClient, order: Order, invoice: Invoice, update: Update,
          polls: int, policy: ChargePolicy) -> Decision:
    assert invoice.user_ip is not None  # decide() fails an invoice without one
    try:
        wallet_id = wallets.wallet_for(tx, order, invoice.user_ip)
    except Exception as exc:  # noqa: BLE001
        return after_error("wallet", exc, order.order_id, polls, policy)
    try:
        client.update_cashback(
            invoice_id=order.order_id, operation_id=update.operation_id,
            version=update.invoice_version, yandex_uid=order.yandex_uid,
            user_ip=invoice.user_ip, wallet_account=wallet_id, reward=update.reward,
            billing_service=_billing_service(order), extra_payload=order.payload,
        )
    except Exception as exc:  # noqa: BLE001
        return after_error("update_cashback", exc, order.order_id, polls, policy)
    log.info("cashback update sent", extra={
        "operation_id": update.operation_id, "invoice_version": update.invoice_version,
        "reward": {source: format(amount, "f") for source, amount in update.reward.items()}})
    return Sent(update.operation_id, policy.poll_initial_s)


def _billing_service(order: Order) -> str | None:
    """The one register gave, else the service's from CASHBACK_BILLING_SERVICES."""
    return (order.billing_service
            or get_settings().cashback_billing_service_by_service.get(order.service))


def _settle(tx: Tx, order: Order, target: ChargeTarget, decision: Decision,
            invoice: Invoice | None) -> stq.JobResult:
    """The one place a decision becomes the order's charge status and the task's next run."""
    match decision:
        case Done():
            orders.record_charge(tx, order, ChargeStatus.CHARGED)
            log.info("cashback charged", extra={"version": order.version})
            return stq.Finish()
        case Fail(reason=reason, message=message):
            orders.record_charge(tx, order, ChargeStatus.FAILED,
                                 error={"code": reason, "message": message})
            log.error("cashback charge failed", extra={"code": reason, "error": message})
            return stq.Finish()
        case Sent(operation_id=operation_id, delay_s=delay_s):
            cashback_operation_sent(order.service, operation_id)
            orders.record_charge(tx, order, ChargeStatus.CHARGING,
                                 last_operation_id=operation_id)
            return stq.Reschedule(delay_s)
        case Wait(delay_s=delay_s, record=False, why=why):
            if why:
                log.info(why)
            return stq.Reschedule(delay_s)
        case Wait(delay_s=delay_s):
            sent = invoice is not None and bool(
                operations_of(target, invoice.cashback.operations))
            orders.record_charge(tx, order,
                                 ChargeStatus.CHARGING if sent else ChargeStatus.PENDING)
            return stq.Reschedule(delay_s)
        case RetryJob(error=error):
            raise error
    raise TypeError(f"not a charge decision: {decision!r}")  # Update is sent, never settled
