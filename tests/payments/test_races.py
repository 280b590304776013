"""Two commands on one payment at the same moment: exactly one wins, the history stays valid.

The runner locks the machine row and then folds its history. Under READ COMMITTED a statement
that waited for the lock sees the fresh row but a history from before its wait, so the loser
of the race once decided against a stale state and both commands committed. These trials
release two commands together with a barrier, over the HTTP API and over `send_task`.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from celgate.api import create_app
from payments.processor import state_of
from tests.payments.conftest import events, new_ids, payment, payment_body, wait_payment
from workers import machines
from workers.celery_app import app as celery_app

FAR = datetime.now(UTC) + timedelta(days=1)
TRIALS = 12
HEADERS = {"Authorization": "Bearer test-token"}


def _waiting_payment(api, ledger) -> tuple[str, str]:
    invoice_id, payment_id = new_ids()
    response = api.post("/v1/payments", json=payment_body(ledger, invoice_id, payment_id, 1000,
                                                          hold=("cancel", FAR)))
    assert response.status_code == 202, response.text
    wait_payment(api, invoice_id, payment_id, activity="flow_waiting")
    return invoice_id, payment_id


def _together(*actions):
    """Run the actions on their own threads, released at the same moment; their results."""
    barrier = threading.Barrier(len(actions))
    results: list = [None] * len(actions)

    def run(i, action):
        barrier.wait()
        results[i] = action()

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(actions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def _plan_settlements(peers) -> int:
    calls = peers.state("accounter")["calls"]
    return calls.get("CommitPlan", 0) + calls.get("RollbackPlan", 0)


def _sessions_started(history: list[dict]) -> int:
    return sum(1 for e in history if e["change"]["type"] == "session_started")


def _assert_valid(api, invoice_id, payment_id) -> dict:
    state = wait_payment(api, invoice_id, payment_id, activity="idle", timeout=30)
    assert state["machine_status"] == "working", state
    assert state["status"] in ("captured", "cancelled"), state
    machine = machines.get("payments", f"{invoice_id}.{payment_id}")
    state_of(machine)  # raises on a history the allowed transitions refuse
    assert _sessions_started(events(api, invoice_id, payment_id)) == 1
    return state


COMMANDS = {
    "capture": ("capture", {"reason": "race", "cost": {"amount": 400, "currency": "RUB"}}),
    "capture-full": ("capture", {"reason": "race"}),
    "cancel": ("cancel", {"reason": "race"}),
}


@pytest.mark.parametrize("pair", [("capture", "cancel"), ("capture", "capture-full")])
def test_two_api_commands_at_once_have_one_winner(running_worker, peers, api, ledger, pair):
    clients = [TestClient(create_app(), headers=HEADERS) for _ in pair]
    for client in clients:
        client.__enter__()
    try:
        for _ in range(TRIALS):
            invoice_id, payment_id = _waiting_payment(api, ledger)
            settled_before = _plan_settlements(peers)

            def send(client, name):
                verb, body = COMMANDS[name]
                return lambda: client.post(f"/v1/payments/{invoice_id}/{payment_id}/{verb}",
                                           json=body)

            responses = _together(*(send(c, name) for c, name in zip(clients, pair)))
            statuses = sorted(r.status_code for r in responses)
            assert statuses == [202, 409], [r.text for r in responses]
            _assert_valid(api, invoice_id, payment_id)
            assert _plan_settlements(peers) - settled_before == 1
    finally:
        for client in clients:
            client.__exit__(None, None, None)


def test_two_task_commands_at_once_have_one_winner(running_worker, peers, api, ledger):
    for _ in range(TRIALS):
        invoice_id, payment_id = _waiting_payment(api, ledger)
        settled_before = _plan_settlements(peers)
        ids = {"invoice_id": invoice_id, "payment_id": payment_id}
        _together(
            lambda: celery_app.send_task("payments.capture", kwargs={**ids, "reason": "race"}),
            lambda: celery_app.send_task("payments.cancel", kwargs={**ids, "reason": "race"}),
        )
        _assert_valid(api, invoice_id, payment_id)
        assert _plan_settlements(peers) - settled_before == 1
        assert payment(api, invoice_id, payment_id)["error"] is None
