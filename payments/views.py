"""What the API shows of a payment: its state (CONTRACT.md) and its event history."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from payments.money import Money
from payments.processor import state_of
from workers.machines import Event, Machine


class MoneyView(BaseModel):
    amount: int
    currency: str

    @classmethod
    def of(cls, money: Money | None) -> MoneyView | None:
        return None if money is None else cls(amount=money.amount, currency=money.currency)


class FailureView(BaseModel):
    code: str
    reason: str | None


class PaymentView(BaseModel):
    invoice_id: str
    payment_id: str
    status: Literal["pending", "processed", "captured", "cancelled", "failed"]
    activity: str
    cost: MoneyView
    captured_cost: MoneyView | None
    # Why the payment failed (`{code, reason}`), when `status` is `failed`.
    failure: FailureView | None = None
    updated_at: datetime
    machine_status: Literal["working", "failed"]
    # Why the machine stopped, when `machine_status` is `failed`: code, message, attempts.
    error: dict[str, Any] | None = None


class EventView(BaseModel):
    id: int
    occurred_at: datetime
    change: dict[str, Any]


def payment_view(machine: Machine) -> PaymentView:
    state = state_of(machine)
    payment = state.started
    return PaymentView(
        invoice_id=payment.invoice_id,
        payment_id=payment.payment_id,
        status=state.status.status,
        activity=state.activity,
        cost=MoneyView.of(state.cost),
        captured_cost=MoneyView.of(state.captured_cost),
        failure=None if state.status.failure is None else FailureView(
            code=state.status.failure.code, reason=state.status.failure.reason),
        updated_at=machine.history[-1].occurred_at,
        machine_status="failed" if machine.status == "failed" else "working",
        error=machine.error if machine.status == "failed" else None,
    )


def event_views(history: Iterable[Event]) -> list[EventView]:
    return [EventView(id=e.id, occurred_at=e.occurred_at, change=e.body) for e in history]
