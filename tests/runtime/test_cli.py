"""The operator CLI as operators run it: a subprocess against the test database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

from tests.runtime.helpers import finished, new_counter, row
from tests.support import toys
from tests.support.waiting import wait_for


def celgate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "celgate.cli", *args], capture_output=True,
                          text=True, env=os.environ.copy(), timeout=60)


def test_show_prints_a_machine_with_its_events(database):
    machine_id = new_counter(target=2)
    result = celgate("show", toys.NAME, machine_id, "--json")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["id"] == machine_id and shown["status"] == "working"
    assert shown["events"][0]["body"] == {"started": {"target": 2}}


def test_repair_resumes_a_failed_machine_and_refuses_a_working_one(running_worker):
    outage = f"outage-{uuid.uuid4().hex}"
    toys._redis().set(outage, 1)
    machine_id = new_counter(target=1, fail_while_key=outage)
    wait_for(lambda: row(machine_id).status == "failed", what="machine failed")
    toys._redis().delete(outage)

    result = celgate("repair", toys.NAME, machine_id)
    assert result.returncode == 0, result.stderr
    wait_for(lambda: finished(machine_id, 1), what="the repaired machine to finish")

    again = celgate("repair", toys.NAME, machine_id)
    assert again.returncode == 2
    assert again.stderr.startswith("machine_not_failed:")


def test_unknown_ids_are_typed_errors(database):
    result = celgate("show", toys.NAME, "no-such-machine")
    assert result.returncode == 2 and result.stderr.startswith("machine_not_found:")
    result = celgate("repair", "no-such-namespace", "x")
    assert result.returncode == 2 and result.stderr.startswith("machine_not_found:")
