"""The operator CLI as operators run it: a subprocess against the test database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

from sqlalchemy import create_engine, text

from tests.payments.conftest import Ledger, new_account, new_ids, payment_body, wait_payment
from tests.runtime.helpers import new_counter, row
from tests.support import toys
from tests.support.waiting import wait_for
from workers.db import transaction


def celgate(*args: str) -> subprocess.CompletedProcess:
    # A wide terminal, so tables are not folded and lines can be searched.
    return subprocess.run([sys.executable, "-m", "celgate.cli", *args], capture_output=True,
                          text=True, env={**os.environ, "COLUMNS": "250"}, timeout=60)


def _failed_counter() -> tuple[str, str]:
    outage = f"outage-{uuid.uuid4().hex}"
    toys._redis().set(outage, 1)
    machine_id = new_counter(target=1, fail_while_key=outage)
    wait_for(lambda: row(machine_id).status == "failed", what="machine failed")
    return machine_id, outage


def test_version():
    result = celgate("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("celgate ")


def test_migrate_says_there_is_nothing_to_apply_on_a_current_database(database):
    result = celgate("migrate")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("nothing to apply: already at ")
    assert celgate("migrate", "--check").returncode == 0


def test_migrate_names_what_it_applied_on_an_empty_database(database):
    name = f"celgate_cli_{uuid.uuid4().hex[:8]}"
    url = os.environ["DATABASE_URL"].rsplit("/", 1)[0] + "/" + name
    env = {**os.environ, "DATABASE_URL": url, "COLUMNS": "250"}
    try:
        result = subprocess.run([sys.executable, "-m", "celgate.cli", "migrate", "--create"],
                                capture_output=True, text=True, env=env, timeout=120)
        assert result.returncode == 0, result.stderr
        assert f"created database {name}" in result.stdout
        applied = result.stdout.splitlines()[-1]
        assert applied.startswith("applied "), result.stdout
        assert applied.split(": ", 1)[1].split(", ")[:2] == ["0001_runtime", "0002_cashback"]
        again = subprocess.run([sys.executable, "-m", "celgate.cli", "migrate"],
                               capture_output=True, text=True, env=env, timeout=120)
        assert again.stdout.startswith("nothing to apply")
    finally:
        admin = create_engine(os.environ["DATABASE_URL"], isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_machines_list_shows_failed_machines_only_when_asked(running_worker):
    machine_id, _ = _failed_counter()
    healthy = new_counter(target=1)
    result = celgate("machines", "list", "--namespace", toys.NAME, "--status", "failed",
                     "--json", "--limit", "1000")
    assert result.returncode == 0, result.stderr
    listed = {m["id"]: m for m in json.loads(result.stdout)}
    assert machine_id in listed and healthy not in listed
    assert listed[machine_id]["error"]["message"] == "peer is down"
    table = celgate("machines", "list", "--status", "failed")
    assert machine_id in table.stdout and "peer is down" in table.stdout


def test_repair_says_the_machine_failed_again_while_the_cause_remains(running_worker):
    machine_id, outage = _failed_counter()
    result = celgate("repair", toys.NAME, machine_id, "--wait", "15")
    assert result.returncode == 1, result.stdout
    assert "failed again" in result.stdout and "peer is down" in result.stdout
    toys._redis().delete(outage)
    result = celgate("repair", toys.NAME, machine_id, "--wait", "15")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "working, at rest; 1 new event(s)" in result.stdout
    assert json.loads(celgate("show", toys.NAME, machine_id, "--json").stdout)[
        "timer_due_at"] is None, "a machine at rest has no timer"


def test_repair_refuses_a_payment_action_outside_payments(database):
    machine_id = new_counter(target=0)
    result = celgate("repair", toys.NAME, machine_id, "--action", "fail-session")
    assert result.returncode == 2
    assert result.stderr.startswith("unsupported_action:")


def test_show_summarises_a_captured_payment(running_worker, api, peers):
    ledger = Ledger(*(new_account(peers) for _ in range(4)))
    invoice_id, payment_id = new_ids()
    api.post("/v1/payments/register", json=payment_body(ledger, invoice_id, payment_id, 12345))
    wait_payment(api, invoice_id, payment_id, status="captured")
    result = celgate("show", "payments", f"{invoice_id}.{payment_id}")
    assert result.returncode == 0, result.stderr
    lines = {line.split(None, 1)[0]: line.split(None, 1)[-1].strip()
             for line in result.stdout.splitlines() if line.strip()}
    assert lines["status"] == "captured"
    assert lines["activity"] == "idle"
    assert lines["cost"] == "123.45 RUB"
    assert "events (" in result.stdout
    assert len(result.stdout.splitlines()) < 60, "a summary, not the raw history"


def test_stq_list_shows_waiting_rows_with_their_state(database):
    task_id = f"cli-{uuid.uuid4().hex[:8]}"
    with transaction() as tx:
        tx.conn.execute(text("""
            INSERT INTO stq_tasks (queue, task_id, kwargs, eta, token, exec_tries, last_error)
            VALUES ('operate.cli', :id, '{}', now() + interval '1 hour', 't', 2, 'boom')
        """), {"id": task_id})
    try:
        result = celgate("stq", "list", "--queue", "operate.cli", "--json")
        [listed] = json.loads(result.stdout)
        assert (listed["task_id"], listed["state"], listed["exec_tries"]) == (task_id,
                                                                              "retrying", 2)
        table = celgate("stq", "list", "--queue", "operate.cli").stdout
        assert task_id in table and "retrying" in table and "boom" in table
    finally:
        with transaction() as tx:
            tx.conn.execute(text("DELETE FROM stq_tasks WHERE task_id = :id"), {"id": task_id})


def test_stq_list_shows_a_failed_row_as_failed(database):
    task_id = f"cli-{uuid.uuid4().hex[:8]}"
    with transaction() as tx:
        tx.conn.execute(text("""
            INSERT INTO stq_tasks (queue, task_id, kwargs, eta, token, exec_tries, last_error,
                                   failed_at, publish_at)
            VALUES ('operate.cli', :id, '{}', now() - interval '1 hour', 't', 10, 'boom', now(),
                    NULL)
        """), {"id": task_id})
    try:
        result = celgate("stq", "list", "--queue", "operate.cli", "--json")
        [listed] = [row for row in json.loads(result.stdout) if row["task_id"] == task_id]
        assert (listed["state"], listed["exec_tries"]) == ("failed", 10)
        assert "failed" in celgate("stq", "list", "--queue", "operate.cli").stdout
    finally:
        with transaction() as tx:
            tx.conn.execute(text("DELETE FROM stq_tasks WHERE task_id = :id"), {"id": task_id})
