"""Celery tasks of payments: the public command tasks and the machine's timer task.

Other services enqueue the command tasks by name (docs/contract.md): `payments.register`,
`payments.start_hold`, `payments.capture`, `payments.cancel`. Kwargs are validated into the same
bodies the HTTP API takes; a typed error (malformed kwargs, unknown payment, wrong state) is
logged and acked by `TypedTask`. A machine that is busy with a long step, or a database that
is briefly unreachable, is worth another try: the message is re-sent with a countdown.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import Task
from sqlalchemy.exc import OperationalError

from payments import commands
from payments.processor import NAMESPACE
from payments.schemas import CancelTaskKwargs, CaptureTaskKwargs, HoldBody, RegisterBody
from workers.celery_app import app
from workers.machines import MachineBusy, register_timeout_task
from workers.messages import TypedTask, parse

_RETRY_COUNTDOWN_S = 1.0
_MAX_RETRIES = 20

machine_timeout = register_timeout_task(NAMESPACE)


def _retrying(task: Task, command: Callable[[], Any]) -> Any:
    try:
        return command()
    except (MachineBusy, OperationalError) as exc:
        raise task.retry(exc=exc, countdown=_RETRY_COUNTDOWN_S, max_retries=_MAX_RETRIES)


@app.task(name="payments.register", base=TypedTask, bind=True)
def register(self: Task, **kwargs: Any) -> str:
    body = parse(RegisterBody, kwargs)
    created = _retrying(self, lambda: commands.register(body))
    return "created" if created else "repeated"


@app.task(name="payments.start_hold", base=TypedTask, bind=True)
def start_hold(self: Task, **kwargs: Any) -> str:
    body = parse(HoldBody, kwargs)
    created = _retrying(self, lambda: commands.start_hold(body))
    return "created" if created else "repeated"


@app.task(name="payments.capture", base=TypedTask, bind=True)
def capture(self: Task, **kwargs: Any) -> str:
    message = parse(CaptureTaskKwargs, kwargs)
    invoice_id, payment_id = message.checked()
    body = message.body()
    return _retrying(self, lambda: commands.capture(invoice_id, payment_id, body))


@app.task(name="payments.cancel", base=TypedTask, bind=True)
def cancel(self: Task, **kwargs: Any) -> str:
    message = parse(CancelTaskKwargs, kwargs)
    invoice_id, payment_id = message.checked()
    body = message.body()
    return _retrying(self, lambda: commands.cancel(invoice_id, payment_id, body))
