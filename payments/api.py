"""HTTP routes of the payment commands and reads (CONTRACT.md, "Payments").

The app (celgate.api) adds bearer auth and maps typed errors to `{code, message}` bodies.
"""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from payments import commands
from payments.schemas import CancelBody, CaptureBody, HoldBody, RegisterBody, RepairBody
from payments.views import EventView, PaymentView

router = APIRouter(prefix="/v1/payments", tags=["payments"])

_ONE = "/{invoice_id}/{payment_id}"


def _started(created: bool, body: RegisterBody, response: Response) -> PaymentView:
    # 202: accepted, the machine goes on by itself; 200: the same command again, no change.
    response.status_code = status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK
    return commands.get(body.invoice_id, body.payment_id)


@router.post("/register", response_model=PaymentView, status_code=202)
def register(body: RegisterBody, response: Response) -> PaymentView:
    """A payment the provider already processed: it is captured without a command."""
    return _started(commands.register(body), body, response)


@router.post("", response_model=PaymentView, status_code=202)
def start_hold(body: HoldBody, response: Response) -> PaymentView:
    """A held payment: limits and cash flow are held, then it waits for capture or cancel."""
    return _started(commands.start_hold(body), body, response)


@router.post(_ONE + "/capture", response_model=PaymentView, status_code=202)
def capture(invoice_id: str, payment_id: str, body: CaptureBody) -> PaymentView:
    """Capture a held payment, in full or (with a lower `cost`) partially."""
    commands.capture(invoice_id, payment_id, body)
    return commands.get(invoice_id, payment_id)


@router.post(_ONE + "/cancel", response_model=PaymentView, status_code=202)
def cancel(invoice_id: str, payment_id: str, body: CancelBody) -> PaymentView:
    commands.cancel(invoice_id, payment_id, body)
    return commands.get(invoice_id, payment_id)


@router.get(_ONE, response_model=PaymentView)
def get_payment(invoice_id: str, payment_id: str) -> PaymentView:
    return commands.get(invoice_id, payment_id)


@router.get(_ONE + "/events", response_model=list[EventView])
def get_events(invoice_id: str, payment_id: str, after: int = 0,
               limit: int = commands.MAX_EVENTS_PAGE) -> list[EventView]:
    """The payment's changes with ids above `after`, oldest first, at most `limit` (1..1000)."""
    return commands.events(invoice_id, payment_id, after, limit)


@router.post(_ONE + "/repair", response_model=PaymentView, status_code=202)
def repair(invoice_id: str, payment_id: str, body: RepairBody) -> PaymentView:
    """Repair a payment whose machine is failed: `resume` its step, or settle its provider
    session with `fulfill_session` / `fail_session` (409 when the machine is not failed or the
    action does not fit its activity)."""
    return commands.repair(invoice_id, payment_id, body)
