"""Each payment step runs as its own Celery task, and a failed attempt is no success.

Operators read Celery's task list (Flower, the worker log): every step used to show as
`payments.machine_timeout`, and an attempt that failed and was scheduled again showed as a
success.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from tests.payments.conftest import new_ids, payment_body, wait_payment

FAR = datetime.now(UTC) + timedelta(days=1)


def _task_lines(worker, machine_id: str) -> list[dict]:
    """Celery's own lines about tasks whose kwargs name the machine: (task name, event)."""
    found = []
    for line in worker.log_path.read_text(errors="replace").splitlines():
        if machine_id not in line or not line.startswith("{"):
            continue
        record = json.loads(line)
        if record.get("logger") in ("celery.worker.strategy", "celery.app.trace"):
            found.append({"name": record.get("task"), "msg": record["msg"],
                          "level": record["level"]})
    return found


def test_each_step_is_a_task_named_after_its_activity(running_worker, peers, api, ledger):
    invoice_id, payment_id = new_ids()
    api.post("/v1/payments", json=payment_body(ledger, invoice_id, payment_id, 1000,
                                               hold=("cancel", FAR)))
    wait_payment(api, invoice_id, payment_id, activity="flow_waiting")
    api.post(f"/v1/payments/{invoice_id}/{payment_id}/capture",
             json={"reason": "part", "cost": {"amount": 600, "currency": "RUB"}})
    wait_payment(api, invoice_id, payment_id, status="captured")

    names = {line["name"] for line in _task_lines(running_worker, f"{invoice_id}.{payment_id}")}
    assert {"payments.processing_accounter", "payments.updating_accounter",
            "payments.finalizing_session", "payments.finalizing_accounter"} <= names, names
    assert "payments.machine_timeout" not in names


def test_a_failed_attempt_is_reported_as_failed(running_worker, peers, api, ledger):
    invoice_id, payment_id = new_ids()
    # Three 503s exhaust the client's in-call attempts: the step attempt fails once.
    peers.faults("accounter", {"once": ["503", "503", "503"]})
    api.post("/v1/payments/register", json=payment_body(ledger, invoice_id, payment_id, 1000))
    wait_payment(api, invoice_id, payment_id, status="captured")

    lines = _task_lines(running_worker, f"{invoice_id}.{payment_id}")
    failed = [line for line in lines if line["name"] == "payments.processing_capture"
              and line["level"] == "error"]
    succeeded = [line for line in lines if line["name"] == "payments.processing_capture"
                 and "succeeded" in line["msg"]]
    assert len(failed) == 1, lines
    assert "StepAttemptFailed" in failed[0]["msg"]
    assert len(succeeded) == 1, "the retried attempt succeeded once"
