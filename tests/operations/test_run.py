"""After a short run: Flower lists the tasks, both metrics endpoints carry every contract metric,
and every log line of the run names its task and its business object.

One run for the module, on workers of its own (the shared test worker is stopped meanwhile so
every task of the run passes through them): payments that go straight through, one whose
capture step fails once (Accounter answers 503 until the client gives up) and is retried,
a charged cashback order, an order that fails (no invoice), and a sweep that finds work.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from celgate.api import create_app
from sandbox.control_client import Sandbox
from sandbox.processes import ROOT, ManagedProcess
from sandbox.processes import worker as worker_process
from tests.cashback.conftest import register_body
from tests.fixtures.sandbox import Transactions
from tests.operations.conftest import free_port
from tests.payments.conftest import (
    Ledger,
    new_account,
    new_ids,
    new_limit,
    payment_body,
    wait_payment,
)
from tests.support.waiting import wait_for
from workers.celery_app import app as celery_app
from workers.db import transaction

AUTH = {"Authorization": "Bearer test-token"}
FLOWER_AUTH = ("operator", f"pw-{uuid.uuid4().hex[:8]}")
OVERDUE_NS = "operate-overdue"


@dataclass
class Run:
    worker_log: Path
    metrics_url: str
    flower_url: str
    api: TestClient
    invoices: list[str] = field(default_factory=list)
    retried_invoice: str = ""
    orders: list[str] = field(default_factory=list)


def _flower(log: Path, port: int) -> ManagedProcess:
    env = {**os.environ, "FLOWER_BASIC_AUTH": ":".join(FLOWER_AUTH)}
    env.pop("CELGATE_LOCAL_DEMO", None)
    return ManagedProcess(
        [sys.executable, "-m", "celery", "-A", "workers", "flower", "--address=127.0.0.1",
         f"--port={port}"], log, b"Visit me at", env)


@pytest.fixture(scope="module")
def run(worker: ManagedProcess, sandbox: Sandbox, tmp_path_factory) -> Iterator[Run]:
    worker.stop()  # `running_worker` starts it again for later tests
    tmp = tmp_path_factory.mktemp("operate-run")
    flower_port, metrics_port = free_port(), free_port()
    flower = _flower(tmp / "flower.log", flower_port)
    flower.start()
    ours = worker_process(tmp / "worker.log", concurrency=2, name="operate", env={
        **os.environ, "WORKER_METRICS_PORT": str(metrics_port), "LOG_FORMAT": "json"})
    ours.start()
    api = TestClient(create_app(), headers=AUTH)
    try:
        yield _short_run(Run(tmp / "worker.log", f"http://127.0.0.1:{metrics_port}/metrics",
                             f"http://127.0.0.1:{flower_port}", api), sandbox)
    finally:
        sandbox.clear_faults()
        ours.stop()
        flower.stop()
        with transaction() as tx:
            tx.conn.execute(text("DELETE FROM machines WHERE namespace = :ns"), {"ns": OVERDUE_NS})
            tx.conn.execute(text("DELETE FROM stq_tasks WHERE task_id LIKE 'operate-%'"))


def _short_run(run: Run, sandbox: Sandbox) -> Run:
    sandbox.reset()
    ledger = Ledger(*(new_account(sandbox) for _ in range(4)))
    invoice_id, payment_id = new_ids()
    assert run.api.post("/v1/payments/register", json=payment_body(
        ledger, invoice_id, payment_id, 1000, limits=[new_limit(sandbox)])).status_code == 202
    wait_payment(run.api, invoice_id, payment_id, status="captured", timeout=30)
    run.invoices.append(invoice_id)

    # A hold and its capture: the capture chain calls the provider too.
    invoice_id, payment_id = new_ids()
    held_until = (datetime.now(UTC) + timedelta(days=1))
    assert run.api.post("/v1/payments", json=payment_body(
        ledger, invoice_id, payment_id, 2500, hold=("cancel", held_until))).status_code == 202
    wait_payment(run.api, invoice_id, payment_id, activity="flow_waiting", timeout=30)
    assert run.api.post(f"/v1/payments/{invoice_id}/{payment_id}/capture",
                        json={"reason": "done"}).status_code == 202
    wait_payment(run.api, invoice_id, payment_id, status="captured", timeout=30)
    run.invoices.append(invoice_id)

    # Accounter fails three times in a row: the client gives up, the step attempt fails and
    # the machine retries it on a timer.
    sandbox.faults("accounter", {"once": ["503", "503", "503"]})
    invoice_id, payment_id = new_ids()
    run.api.post("/v1/payments/register", json=payment_body(ledger, invoice_id, payment_id, 700))
    wait_payment(run.api, invoice_id, payment_id, status="captured", timeout=40)
    assert sandbox.state("accounter")["faults"]["injected"] == {"503": 3}
    run.invoices.append(invoice_id)
    run.retried_invoice = invoice_id

    transactions = Transactions(sandbox)
    charged, missing = (f"order-{uuid.uuid4().hex[:12]}" for _ in range(2))
    transactions.seed(charged)
    for order_id in (charged, missing):
        assert run.api.post("/v1/cashback/register", json=register_body(
            order_id, {"user": "100"})).status_code == 200
        run.orders.append(order_id)
    wait_for(lambda: run.api.get(f"/v1/cashback/taxi/{charged}").json()["charge_status"]
             == "charged", what="the order charged")
    wait_for(lambda: run.api.get(f"/v1/cashback/taxi/{missing}").json()["charge_status"]
             == "failed", what="the order without an invoice failed")

    # A row whose message was lost: the sweeper publishes it again.
    with transaction() as tx:
        tx.conn.execute(text("""
            INSERT INTO stq_tasks (queue, task_id, kwargs, eta, token, publish_at)
            VALUES ('cashback.cashback_charge_processing', 'operate-lost',
                    CAST(:kwargs AS jsonb), now() - interval '1 second', 'lost',
                    now() - interval '1 second')
        """), {"kwargs": json.dumps({"order_id": "operate-lost", "service": "taxi"})})
    celery_app.send_task("workers.sweep")
    wait_for(lambda: _stq_sent("operate-lost"), what="the sweeper to publish the lost row")
    return run


def _stq_sent(task_id: str) -> bool:
    with transaction() as tx:
        row = tx.conn.execute(text("SELECT sent_at FROM stq_tasks WHERE task_id = :id"),
                              {"id": task_id}).first()
    return row is None or row.sent_at is not None


# --- Flower -------------------------------------------------------------------------------------


def _flower_tasks(run: Run) -> dict[str, dict]:
    response = requests.get(f"{run.flower_url}/api/tasks", auth=FLOWER_AUTH, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def test_flower_refuses_requests_without_its_password(run):
    assert requests.get(f"{run.flower_url}/api/tasks", timeout=10).status_code == 401
    assert requests.get(f"{run.flower_url}/api/tasks", auth=("operator", "wrong"),
                        timeout=10).status_code == 401


def test_flower_lists_the_tasks_of_the_run_by_name(run):
    def names() -> set[str]:
        return {task["name"] for task in _flower_tasks(run).values()}

    # The API runs payment commands itself; steps, charges and sweeps are Celery tasks.
    expected = {"cashback.cashback_charge_processing", "workers.sweep"}
    seen = wait_for(lambda: (n := names()) >= expected and n, timeout=15,
                    what="the run's tasks in Flower")
    # Each payment step is its own task, named after its activity.
    assert {"payments.processing_accounter", "payments.processing_capture",
            "payments.finalizing_session", "payments.finalizing_accounter"} <= seen, seen
    by_id = _flower_tasks(run)
    assert any(run.invoices[0] in (task.get("kwargs") or "") for task in by_id.values()), \
        "task arguments show the business ids"
    assert all(task.get("state") for task in by_id.values())


def test_flower_does_not_show_a_failed_step_attempt_as_a_success(run):
    tasks = [t for t in _flower_tasks(run).values()
             if run.retried_invoice in (t.get("kwargs") or "")]
    failed = [t for t in tasks if t["state"] in ("FAILURE", "RETRY")]
    assert failed, [(t["name"], t["state"]) for t in tasks]
    # Accounter failed the registered payment's first step; its retry then succeeded.
    assert {t["name"] for t in failed} == {"payments.processing_capture"}
    assert any(t["name"] == "payments.processing_capture" and t["state"] == "SUCCESS"
               for t in tasks)


def test_flower_does_not_start_without_a_password(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("FLOWER_") and k != "CELGATE_LOCAL_DEMO"}
    result = subprocess.run([sys.executable, "-m", "celery", "-A", "workers", "flower",
                             f"--port={free_port()}"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode != 0
    assert "FLOWER_BASIC_AUTH" in result.stderr


# --- metrics ------------------------------------------------------------------------------------


def _samples(exposition: str) -> dict[str, list]:
    found: dict[str, list] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            found.setdefault(sample.name, []).append(sample)
    return found


def _nonzero(samples: dict[str, list], name: str, **labels: str) -> list:
    matching = [s for s in samples.get(name, ())
                if s.value > 0 and all(s.labels.get(k) == v for k, v in labels.items())]
    assert matching, f"no non-zero {name}{labels or ''}; have {sorted(samples)}"
    return matching


def test_the_worker_serves_every_runtime_metric_with_samples(run):
    samples = _samples(requests.get(run.metrics_url, timeout=10).text)
    _nonzero(samples, "celgate_step_duration_seconds_count", namespace="payments", outcome="ok")
    _nonzero(samples, "celgate_step_duration_seconds_count", namespace="payments",
             outcome="error")
    _nonzero(samples, "celgate_step_duration_seconds_bucket", namespace="payments")
    for peer in ("accounter", "limiter", "provider", "transactions"):
        _nonzero(samples, "celgate_peer_request_duration_seconds_count", peer=peer,
                 outcome="ok")
    _nonzero(samples, "celgate_peer_request_duration_seconds_count", peer="accounter",
             outcome="resource_unavailable")
    _nonzero(samples, "celgate_timer_lag_seconds_count", namespace="payments")
    _nonzero(samples, "celgate_sweeper_published_total", kind="stq")
    _nonzero(samples, "celgate_cashback_operations_total", service="taxi", kind="update")


def test_the_worker_adds_up_the_samples_of_every_pool_process(run):
    """Two pool processes ran the steps; the count served is the count of steps that ran,
    as the worker's own log lines tell it, not the share of one process."""
    lines = [json.loads(line) for line in run.worker_log.read_text().splitlines()
             if line.startswith("{")]
    succeeded = [line for line in lines if line["msg"].startswith("Task payments.")
                 and "succeeded" in line["msg"] and "'processed'" in line["msg"]]
    processes = {line["msg"].split("[")[0] for line in succeeded}
    samples = _samples(requests.get(run.metrics_url, timeout=10).text)
    served = sum(s.value for s in samples["celgate_step_duration_seconds_count"]
                 if s.labels["namespace"] == "payments" and s.labels["outcome"] == "ok")
    assert served == len(succeeded) > 0, processes


def test_the_api_serves_the_database_gauges_with_samples(run):
    with transaction() as tx:
        tx.conn.execute(text("""
            INSERT INTO machines (namespace, id, timer_due_at, timer_token, timer_sent_at)
            VALUES (:ns, 'late', now() - interval '1 hour', 'late', now())
        """), {"ns": OVERDUE_NS})
        tx.conn.execute(text("""
            INSERT INTO stq_tasks (queue, task_id, kwargs, eta, token)
            VALUES ('cashback.cashback_charge_processing', 'operate-later', '{}',
                    now() + interval '1 day', 'later')
        """))
    response = run.api.get("/metrics")
    assert response.status_code == 200
    samples = _samples(response.text)
    working = _nonzero(samples, "celgate_machines", namespace="payments", status="working")
    assert working[0].value >= len(run.invoices)
    _nonzero(samples, "celgate_machines", namespace=OVERDUE_NS, status="working")
    _nonzero(samples, "celgate_stq_tasks", queue="cashback.cashback_charge_processing",
             state="pending")
    assert [s.value for s in samples["celgate_timers_overdue"]
            if s.labels["namespace"] == OVERDUE_NS] == [1]
    _nonzero(samples, "celgate_cashback_failed_orders", code="invoice_not_found")


def test_the_machine_gauge_follows_status_changes(run):
    def count(status: str) -> float:
        samples = _samples(run.api.get("/metrics").text)
        return sum(s.value for s in samples.get("celgate_machines", ())
                   if s.labels == {"namespace": OVERDUE_NS, "status": status})

    with transaction() as tx:
        tx.conn.execute(text("INSERT INTO machines (namespace, id) VALUES (:ns, 'flip')"),
                        {"ns": OVERDUE_NS})
    working = count("working")
    with transaction() as tx:
        tx.conn.execute(text("UPDATE machines SET status = 'failed' WHERE namespace = :ns "
                             "AND id = 'flip'"), {"ns": OVERDUE_NS})
    assert (count("working"), count("failed")) == (working - 1, 1)
    with transaction() as tx:
        tx.conn.execute(text("DELETE FROM machines WHERE namespace = :ns AND id = 'flip'"),
                        {"ns": OVERDUE_NS})
    assert (count("working"), count("failed")) == (working - 1, 0)


# --- logs ---------------------------------------------------------------------------------------

# Lines about the worker itself (connection, remote control such as Flower enabling events),
# not written by a task.
_WORKER_LOGGERS = ("celery.worker.consumer", "celery.worker.control", "celery.apps.worker",
                   "celery.worker.pidbox", "workers.metrics", "workers.celery_app")


def test_every_line_a_task_writes_names_the_task_and_its_business_ids(run):
    text_ = run.worker_log.read_text()
    after_ready = text_.split(" ready.", 1)[1].splitlines()[1:]
    lines = [json.loads(line) for line in after_ready if line.startswith("{")]
    assert len(lines) > 20
    tasks = [line for line in lines if not line["logger"].startswith(_WORKER_LOGGERS)]
    for line in tasks:
        assert line.get("task_id") and line.get("task"), line
        if line["task"].startswith("payments."):
            assert any(invoice in json.dumps(line) for invoice in run.invoices), line
        if line["task"].startswith("cashback."):
            assert line.get("order_id"), line
    received = [line for line in tasks if line["msg"].endswith(" received")]
    succeeded = [line for line in tasks if " succeeded in " in line["msg"]]
    assert received and succeeded, "Celery's own task lines are among them"
    retried = [line for line in tasks if run.retried_invoice in json.dumps(line)
               and line["level"] == "warning"]
    assert retried, "the failed attempt is logged with its ids"
