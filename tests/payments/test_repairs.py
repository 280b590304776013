"""Operator repairs of a capture whose provider session failed for good: `fulfill_session`
ends captured with one commit, `fail_session` ends failed with one rollback; an action that
does not fit answers 409 and changes nothing. Each repair is recorded with who and why."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from sandbox.processes import ROOT
from tests.payments.conftest import (
    balances,
    events,
    new_ids,
    new_limit,
    own_amounts,
    payment_body,
    wait_payment,
)

FAR = datetime.now(UTC) + timedelta(days=1)
FATAL = {"status": "failed", "failure": {"code": "rejected_by_issuer", "transient": False}}


def _failed_in_session(api, peers, ledger, limit, *, capture: dict) -> tuple[str, str]:
    """A hold payment whose capture session the provider failed for good."""
    invoice_id, payment_id = new_ids()
    peers.control("provider", "scenarios", {"invoice_id": invoice_id, "answers": [FATAL]})
    api.post("/v1/payments", json=payment_body(ledger, invoice_id, payment_id, 1000,
                                               limits=[limit], hold=("cancel", FAR)))
    wait_payment(api, invoice_id, payment_id, activity="flow_waiting")
    assert api.post(f"/v1/payments/{invoice_id}/{payment_id}/capture",
                    json=capture).status_code == 202
    state = wait_payment(api, invoice_id, payment_id, machine_status="failed")
    assert state["activity"] == "finalizing_session"
    assert state["error"]["code"] == "provider_session_failed"
    return invoice_id, payment_id


def _repair(api, ids, body):
    return api.post(f"/v1/payments/{ids[0]}/{ids[1]}/repair", json=body)


def test_fulfill_session_ends_captured_with_one_commit(running_worker, peers, api, ledger):
    limit = new_limit(peers)
    ids = _failed_in_session(api, peers, ledger, limit,
                             capture={"reason": "part", "cost": {"amount": 600,
                                                                 "currency": "RUB"}})
    response = _repair(api, ids, {"action": "fulfill_session", "trx_id": "trx-by-hand",
                                  "operator": "alice", "reason": "bank confirmed by phone"})
    assert response.status_code == 202, response.text
    assert response.json()["machine_status"] == "working"

    state = wait_payment(api, *ids, status="captured")
    assert state["captured_cost"] == {"amount": 600, "currency": "RUB"}
    accounter = peers.state("accounter")
    assert accounter["calls"]["CommitPlan"] == 1
    assert accounter["calls"].get("RollbackPlan", 0) == 0
    assert own_amounts(peers, ledger.ids) == ledger.expected_balances(600)
    assert peers.state("limiter")["limits"][limit]["committed"] == 600
    history = [e["change"] for e in events(api, *ids)]
    repaired = [c for c in history if c["type"] == "repaired"]
    assert repaired == [{"type": "repaired", "v": 1, "action": "fulfill_session",
                         "operator": "alice", "reason": "bank confirmed by phone"}]
    finished = [c for c in history if c["type"] == "session_finished"]
    assert [(c["result"], c["trx_id"]) for c in finished] == [("succeeded", "trx-by-hand")]
    session = peers.state("provider")["sessions"][f"{ids[0]}.{ids[1]}.1.captured"]
    assert session["calls"] == 1, "the provider is not asked again once the operator settled it"


def test_fail_session_ends_failed_with_one_rollback(running_worker, peers, api, ledger):
    limit = new_limit(peers)
    before = balances(peers, ledger.ids)
    ids = _failed_in_session(api, peers, ledger, limit,
                             capture={"reason": "part", "cost": {"amount": 400,
                                                                 "currency": "RUB"}})
    response = _repair(api, ids, {"action": "fail_session", "operator": "bob",
                                  "failure": {"code": "rejected_by_issuer",
                                              "reason": "the issuer refused the capture"}})
    assert response.status_code == 202, response.text

    state = wait_payment(api, *ids, status="failed")
    assert state["activity"] == "idle" and state["machine_status"] == "working"
    assert state["failure"] == {"code": "rejected_by_issuer",
                                "reason": "the issuer refused the capture"}
    accounter = peers.state("accounter")
    assert accounter["calls"]["RollbackPlan"] == 1
    assert accounter["calls"].get("CommitPlan", 0) == 0
    plan = accounter["plans"][f"{ids[0]}.{ids[1]}.1"]
    assert plan["state"] == "ROLLBACK" and [b["id"] for b in plan["batches"]] == [1, 2, 3]
    assert balances(peers, ledger.ids) == before, "nothing held, nothing moved"
    limiter = peers.state("limiter")
    assert limiter["calls"]["RollbackBatch"] == 1
    assert limiter["limits"][limit]["held"] == 0 and limiter["limits"][limit]["committed"] == 0
    types = [e["change"]["type"] for e in events(api, *ids)]
    assert types[-6:] == ["repaired", "session_finished", "rollback_started",
                          "limits_rolled_back", "plan_rolled_back", "status_changed"]


@pytest.mark.parametrize("body", [
    {"action": "fulfill_session"},
    {"action": "fail_session", "failure": {"code": "x", "reason": "y"}},
])
def test_a_session_repair_of_a_machine_failed_elsewhere_is_409(running_worker, peers, api,
                                                                ledger, body):
    ids = new_ids()
    api.post("/v1/payments/register",
             json=payment_body(ledger, *ids, 800, limits=["missing-limit"]))
    wait_payment(api, *ids, machine_status="failed", activity="processing_capture")
    before = events(api, *ids)

    response = _repair(api, ids, body)
    assert (response.status_code, response.json()["code"]) == (409, "repair_not_applicable")
    assert events(api, *ids) == before
    state = wait_payment(api, *ids, machine_status="failed")
    assert state["error"]["code"] == "limit_not_found", "the machine is still failed as it was"


def test_repairs_of_a_working_machine_are_409_and_bad_bodies_422(running_worker, peers, api,
                                                                 ledger):
    ids = new_ids()
    api.post("/v1/payments", json=payment_body(ledger, *ids, 100, hold=("cancel", FAR)))
    wait_payment(api, *ids, activity="flow_waiting")
    for body in ({"action": "resume"}, {"action": "fulfill_session"}):
        response = _repair(api, ids, body)
        assert (response.status_code, response.json()["code"]) == (409, "machine_not_failed")
    for body in ({"action": "fail_session"}, {"action": "explode"},
                 {"action": "resume", "trx_id": "t"}, {}):
        response = _repair(api, ids, body)
        assert (response.status_code, response.json()["code"]) == (422, "invalid_request")


def test_the_cli_fulfils_a_session_and_the_machines_list_shows_the_failed_payment(
        running_worker, peers, api, ledger):
    limit = new_limit(peers)
    ids = _failed_in_session(api, peers, ledger, limit, capture={"reason": "all"})
    machine = f"{ids[0]}.{ids[1]}"
    listed = api.get("/v1/machines", params={"namespace": "payments", "status": "failed",
                                            "limit": 1000}).json()
    assert machine in [m["id"] for m in listed["machines"]]
    item = next(m for m in listed["machines"] if m["id"] == machine)
    assert item["status"] == "failed" and item["error"]["code"] == "provider_session_failed"

    done = subprocess.run(
        [sys.executable, "-m", "celgate.cli", "repair", "payments", machine,
         "--action", "fulfill_session", "--operator", "carol", "--reason", "checked"],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    wait_payment(api, *ids, status="captured")
    listed = api.get("/v1/machines", params={"namespace": "payments", "status": "failed",
                                            "limit": 1000}).json()
    assert machine not in [m["id"] for m in listed["machines"]]
    repaired = [e["change"] for e in events(api, *ids) if e["change"]["type"] == "repaired"]
    assert [(c["action"], c["operator"], c["reason"]) for c in repaired] == [
        ("fulfill_session", "carol", "checked")]
