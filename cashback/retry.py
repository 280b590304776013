"""An operator's retry of a failed order (`POST /v1/cashback/{service}/{order_id}/retry`).

The order goes back to `pending` and its charge runs again as for a new change, allowed one
operation more than CASHBACK_RETRY_MAX_OPERATIONS per retry, under the operation id
`<order_id>/v<version>/manual/<n>` for the n-th retry of that version: an id transactions has
never seen, so the invoice takes it even after its own retries were used up, and a run repeated
after a crash sends the same id again.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from cashback import orders
from cashback.orders import ChargeStatus, Order, OrderNotFound
from cashback.queues import queue_charge
from foundation.errors import TypedError
from workers.db import transaction
from workers.logs import bind

log = logging.getLogger(__name__)


class OrderNotFailed(TypedError):
    code = "order_not_failed"
    http_status = 409


def retry(order_id: str, service: str) -> Order:
    with bind(order_id=order_id, service=service), transaction() as tx:
        order = orders.lock(tx, order_id, service)
        if order is None:
            raise OrderNotFound(f"no cashback registered for order {order_id} of {service}")
        if order.charge_status is not ChargeStatus.FAILED:
            raise OrderNotFailed(f"the order's charge is {order.charge_status.value}, not "
                                 "failed; only a failed order is retried")
        updated = replace(order, charge_status=ChargeStatus.PENDING, error=None,
                          manual_retries=order.manual_retries + 1)
        orders.save(tx, updated)
        queue_charge(tx, order_id, service)
        log.info("operator retry of a failed cashback charge", extra={
            "version": order.version, "manual_retry": updated.manual_retries,
            "failure": order.error})
        return updated
