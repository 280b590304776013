"""The operator CLI's repair of a payment machine by its id (`<invoice_id>.<payment_id>`)."""

from __future__ import annotations

from pydantic import ValidationError

from payments import commands
from payments.errors import InvalidValue
from payments.schemas import RepairBody
from payments.views import PaymentView


def repair_machine(machine_id: str, *, action: str, trx_id: str | None = None,
                   failure_code: str | None = None, failure_reason: str = "",
                   operator: str | None = None, reason: str | None = None) -> PaymentView:
    invoice_id, _, payment_id = machine_id.partition(".")
    fields: dict = {"action": action, "trx_id": trx_id, "operator": operator, "reason": reason}
    if failure_code is not None:
        fields["failure"] = {"code": failure_code, "reason": failure_reason}
    try:
        body = RepairBody.model_validate({k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        raise InvalidValue(f"repair: {exc.errors()[0]['msg']}") from None
    return commands.repair(invoice_id, payment_id, body)
