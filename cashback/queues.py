"""The cashback STQ queues: names (the Celery task names of CONTRACT.md), kwargs, task ids.

One pending task per order and service and queue: the task id is built from both.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from cashback.text import SafeText
from workers import stq
from workers.db import Tx

CHARGE_QUEUE = "cashback.cashback_charge_processing"
UNIVERSAL_QUEUE = "cashback.universal_cashback_processing"

# An order id travels in URLs (`/v1/cashback/{service}/{order_id}`) and in operation ids
# (`<order_id>/v<version>`), so it may not contain "/".
ORDER_ID_PATTERN = r"^[^/\s]{1,128}$"
SERVICE_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"


class OrderKwargs(BaseModel):
    """The kwargs of both cashback tasks: `{"order_id": ..., "service": ...}`. Unknown keys
    are refused, as the payment tasks refuse them: a sender's typo shows up in the log."""

    model_config = ConfigDict(strict=True, extra="forbid")

    order_id: SafeText = Field(pattern=ORDER_ID_PATTERN)
    service: SafeText = Field(pattern=SERVICE_PATTERN)


def task_id_of(kwargs: OrderKwargs) -> str:
    # The service has no "/", so the split point is unambiguous.
    return f"{kwargs.service}/{kwargs.order_id}"


def queue_charge(tx: Tx, order_id: str, service: str) -> None:
    """Queue (or bring forward) the order's charge; the message follows the commit."""
    kwargs = OrderKwargs(order_id=order_id, service=service)
    stq.add(tx, CHARGE_QUEUE, task_id_of(kwargs), kwargs.model_dump())
