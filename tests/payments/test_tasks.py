"""The public Celery tasks: other services enqueue payment commands by name."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.payments.conftest import events, new_ids, payment_body, wait_payment
from tests.runtime.helpers import messages_with, rejections
from tests.support.waiting import wait_for
from workers.celery_app import app

FAR = datetime.now(UTC) + timedelta(days=1)


def test_register_task_captures_a_payment_once_even_if_sent_twice(running_worker, peers, api,
                                                                   ledger):
    invoice_id, payment_id = new_ids()
    body = payment_body(ledger, invoice_id, payment_id, 300)
    app.send_task("payments.register", kwargs=body)
    app.send_task("payments.register", kwargs=body)
    wait_payment(api, invoice_id, payment_id, status="captured")
    starts = [e for e in events(api, invoice_id, payment_id)
              if e["change"]["type"] == "payment_started"]
    assert len(starts) == 1
    assert peers.state("accounter")["calls"]["CommitPlan"] == 1


def test_hold_capture_and_cancel_tasks(running_worker, peers, api, ledger):
    captured, cancelled = new_ids(), new_ids()
    for ids in (captured, cancelled):
        app.send_task("payments.start_hold",
                      kwargs=payment_body(ledger, *ids, 1000, hold=("capture", FAR)))
    for ids in (captured, cancelled):
        wait_payment(api, *ids, activity="flow_waiting")
    app.send_task("payments.capture", kwargs={
        "invoice_id": captured[0], "payment_id": captured[1], "reason": "shipped",
        "cost": {"amount": 400, "currency": "RUB"}})
    app.send_task("payments.cancel", kwargs={
        "invoice_id": cancelled[0], "payment_id": cancelled[1], "reason": "gone"})
    state = wait_payment(api, *captured, status="captured")
    assert state["captured_cost"] == {"amount": 400, "currency": "RUB"}
    wait_payment(api, *cancelled, status="cancelled")


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"invoice_id": 5, "payment_id": "1"}, "malformed_task_kwargs"),
        ({"payment_id": "1"}, "malformed_task_kwargs"),
        ({"invoice_id": "inv-x", "payment_id": "1",
          "cost": {"amount": "a lot", "currency": "RUB"}}, "malformed_task_kwargs"),
        ({"invoice_id": "no-such-invoice", "payment_id": "1"}, "payment_not_found"),
    ],
)
def test_bad_capture_messages_are_rejected_and_acked(running_worker, broker, kwargs, code):
    marker = f"reason-{uuid.uuid4().hex[:12]}"  # the reason finds the message and its log line
    app.send_task("payments.capture", kwargs={**kwargs, "reason": marker})
    log = running_worker.log_path
    wait_for(lambda: rejections(log, code, marker), what=f"a logged {code} rejection")
    wait_for(lambda: not messages_with(broker, marker), what="the message to be acked")
    assert len(rejections(log, code, marker)) == 1, "rejected once, not retried"
