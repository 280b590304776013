"""Payment commands: register, start_hold, capture, cancel, repair, and the two reads.

Each command validates what it can before touching the machine (shape and values of the body:
typed 400s), then goes through the machine runner, which decides against the current state
under the machine's lock (wrong state: 409). Register and hold are idempotent by the payment's
ids: the same body again changes nothing, a different body for the same ids is a conflict.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from payments.errors import InvalidPaging, PaymentConflict, PaymentNotFound
from payments.model import check_id
from payments.processor import NAME, NAMESPACE, machine_id, state_of
from payments.schemas import (
    CancelBody,
    CaptureBody,
    HoldBody,
    RegisterBody,
    RepairBody,
    check_text,
)
from payments.views import EventView, PaymentView, event_views, payment_view
from workers import machines
from workers.logs import bind
from workers.machines import Machine, MachineAlreadyExists, MachineNotFound

log = logging.getLogger(__name__)

MAX_EVENTS_PAGE = 1000
_MAX_EVENT_ID = 2**63 - 1


def register(body: RegisterBody) -> bool:
    """A payment the provider already processed: it goes on to capture by itself.

    True when this command created it; False when the same command was seen before and
    changed nothing.
    """
    return _start(body)


def start_hold(body: HoldBody) -> bool:
    """A held payment: its limits and cash flow get held, then it waits for capture or cancel.

    True when this command created it; False for a repeat of the same command.
    """
    return _start(body)


def capture(invoice_id: str, payment_id: str, body: CaptureBody) -> str:
    """Start capturing the payment; the activity it moved to."""
    check_text(body)
    body.to_domain()  # the values are checked before the machine is locked
    return _call(invoice_id, payment_id, {"capture": body.model_dump(mode="json")})


def cancel(invoice_id: str, payment_id: str, body: CancelBody) -> str:
    """Start cancelling the payment; the activity it moved to."""
    check_text(body)
    return _call(invoice_id, payment_id, {"cancel": body.model_dump(mode="json")})


def repair(invoice_id: str, payment_id: str, body: RepairBody) -> PaymentView:
    """Repair a machine marked failed (409 when it is not, or the action does not fit); the
    repair is recorded with who and why, and the current step runs again at once."""
    check_text(body)
    with _payment(invoice_id, payment_id) as key:
        machines.repair_with(NAMESPACE, key, body.model_dump(mode="json"))
    return get(invoice_id, payment_id)


def get(invoice_id: str, payment_id: str) -> PaymentView:
    return payment_view(_machine(invoice_id, payment_id))


def events(invoice_id: str, payment_id: str, after: int = 0,
           limit: int = MAX_EVENTS_PAGE) -> list[EventView]:
    """The events with ids above `after`, oldest first, at most `limit` (1..1000)."""
    if not 1 <= limit <= MAX_EVENTS_PAGE:
        raise InvalidPaging(f"limit must be 1..{MAX_EVENTS_PAGE}, got {limit}")
    if not 0 <= after <= _MAX_EVENT_ID:
        raise InvalidPaging(f"after must be an event id (0..{_MAX_EVENT_ID}), got {after}")
    with _payment(invoice_id, payment_id) as key:
        return event_views(machines.history_page(NAME, key, after, limit))


def _start(body: RegisterBody) -> bool:
    # The caller reads the payment afterwards only if it shows it (the API does, a task
    # does not), so no view is built here.
    check_text(body)
    request = body.to_domain()
    key = machine_id(request.invoice_id, request.payment_id)
    with bind(invoice_id=request.invoice_id, payment_id=request.payment_id):
        try:
            machines.start(NAMESPACE, key, body.model_dump(mode="json"))
            return True
        except MachineAlreadyExists:
            pass
        if state_of(machines.get(NAME, key)).request() != request:
            raise PaymentConflict(f"payment {request.invoice_id}/{request.payment_id} "
                                  "exists with a different body")
        log.info("repeated payment command, nothing changed")
        return False


def _call(invoice_id: str, payment_id: str, args: dict) -> str:
    with _payment(invoice_id, payment_id) as key:
        return machines.call(NAMESPACE, key, args)


def _machine(invoice_id: str, payment_id: str) -> Machine:
    with _payment(invoice_id, payment_id) as key:
        return machines.get(NAME, key)


@contextmanager
def _payment(invoice_id: str, payment_id: str) -> Iterator[str]:
    """The payment's machine id, its ids on every log line inside; no machine: no payment."""
    key = _machine_id(invoice_id, payment_id)
    with bind(invoice_id=invoice_id, payment_id=payment_id):
        try:
            yield key
        except MachineNotFound:
            raise PaymentNotFound(f"no payment {invoice_id}/{payment_id}") from None


def _machine_id(invoice_id: str, payment_id: str) -> str:
    return machine_id(check_id("invoice_id", invoice_id), check_id("payment_id", payment_id))
