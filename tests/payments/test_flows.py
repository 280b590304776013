"""The capture chain end to end: API -> machine steps in the worker -> sandbox peers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.payments.conftest import (
    balances,
    events,
    new_ids,
    new_limit,
    own_amounts,
    payment,
    payment_body,
    wait_payment,
)

FAR = datetime.now(UTC) + timedelta(days=1)


def plan(peers, invoice_id, payment_id):
    return peers.state("accounter")["plans"][f"{invoice_id}.{payment_id}.1"]


def limit_operation(peers, invoice_id, payment_id):
    operation = f"limiter.batch-request.7.42.{invoice_id}.{payment_id}.1"
    return peers.state("limiter")["operations"][operation]


def test_a_registered_payment_is_captured(running_worker, peers, api, ledger):
    limit = new_limit(peers)
    invoice_id, payment_id = new_ids()
    body = payment_body(ledger, invoice_id, payment_id, 1000, limits=[limit])

    response = api.post("/v1/payments/register", json=body)
    assert response.status_code == 202, response.text
    assert response.json()["activity"] == "processing_capture"

    state = wait_payment(api, invoice_id, payment_id, status="captured")
    assert state["activity"] == "idle"
    assert state["captured_cost"] == state["cost"] == {"amount": 1000, "currency": "RUB"}
    assert state["machine_status"] == "working" and state["error"] is None

    accounter = peers.state("accounter")
    assert list(accounter["plans"]) == [f"{invoice_id}.{payment_id}.1"]
    held = plan(peers, invoice_id, payment_id)
    assert held["state"] == "COMMIT"
    assert [b["id"] for b in held["batches"]] == [1]
    assert [(p["amount"], p["description"]) for p in held["batches"][0]["postings"]] == [
        (1000, "payment amount"), (30, "system fee"), (15, "acquiring fee")]
    assert accounter["calls"]["Hold"] == 1 and accounter["calls"]["CommitPlan"] == 1
    assert own_amounts(peers, ledger.ids) == ledger.expected_balances(1000)

    limiter = peers.state("limiter")
    assert limit_operation(peers, invoice_id, payment_id) == {
        limit: {"state": "COMMIT", "held": 1000, "committed": 1000}}
    assert limiter["limits"][limit]["committed"] == 1000
    assert limiter["limits"][limit]["held"] == 0
    assert peers.state("provider")["sessions"] == {}, "a registered payment runs no session"

    changes = [e["change"]["type"] for e in events(api, invoice_id, payment_id)]
    assert changes == [
        "payment_started", "route_changed", "cash_flow_changed", "status_changed",
        "capture_started", "limits_held", "plan_batch_held", "session_started",
        "session_finished", "limits_committed", "plan_committed", "status_changed"]


def test_registering_twice_is_idempotent_and_a_different_body_conflicts(
        running_worker, peers, api, ledger):
    invoice_id, payment_id = new_ids()
    body = payment_body(ledger, invoice_id, payment_id, 500)
    assert api.post("/v1/payments/register", json=body).status_code == 202
    wait_payment(api, invoice_id, payment_id, status="captured")
    history = events(api, invoice_id, payment_id)

    again = api.post("/v1/payments/register", json=body)
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "captured"

    conflict = api.post("/v1/payments/register",
                        json={**body, "cost": {"amount": 501, "currency": "RUB"}})
    assert conflict.status_code == 409
    assert conflict.json()["code"] == "payment_conflict"
    as_hold = api.post("/v1/payments", json={**body, "flow": {
        "on_hold_expiration": "cancel", "held_until": FAR.isoformat()}})
    assert as_hold.status_code == 409
    assert events(api, invoice_id, payment_id) == history
    assert peers.state("accounter")["calls"]["Hold"] == 1


def test_a_partial_capture_reverts_batch_1_and_holds_the_new_cash_flow(
        running_worker, peers, api, ledger):
    limit = new_limit(peers)
    invoice_id, payment_id = new_ids()
    body = payment_body(ledger, invoice_id, payment_id, 1000, limits=[limit],
                        hold=("cancel", FAR))
    response = api.post("/v1/payments", json=body)
    assert response.status_code == 202, response.text
    wait_payment(api, invoice_id, payment_id, activity="flow_waiting")
    assert balances(peers, (ledger.provider,))[ledger.provider]["min_available_amount"] == -1000
    assert peers.state("limiter")["limits"][limit]["held"] == 1000

    response = api.post(f"/v1/payments/{invoice_id}/{payment_id}/capture", json={
        "reason": "shipped 3 of 5", "cost": {"amount": 600, "currency": "RUB"},
        "cart": {"lines": [{"product": "tea", "quantity": 3,
                            "price": {"amount": 200, "currency": "RUB"}}]}})
    assert response.status_code == 202, response.text
    assert response.json()["activity"] == "updating_accounter"

    state = wait_payment(api, invoice_id, payment_id, status="captured")
    assert state["cost"] == {"amount": 1000, "currency": "RUB"}
    assert state["captured_cost"] == {"amount": 600, "currency": "RUB"}

    held = plan(peers, invoice_id, payment_id)
    assert held["state"] == "COMMIT"
    batches = {b["id"]: b["postings"] for b in held["batches"]}
    assert sorted(batches) == [1, 2, 3]
    flow = [(p["from_id"], p["to_id"], p["amount"], p["description"]) for p in batches[1]]
    assert [(p["from_id"], p["to_id"], p["amount"], p["description"]) for p in batches[2]] == [
        (to, frm, amount, f"revert({details})") for frm, to, amount, details in flow]
    assert [(p["amount"], p["description"]) for p in batches[3]] == [
        (600, "payment amount"), (18, "system fee"), (15, "acquiring fee")]
    assert own_amounts(peers, ledger.ids) == ledger.expected_balances(600)
    assert all(b["min_available_amount"] == b["max_available_amount"] == b["own_amount"]
               for b in balances(peers, ledger.ids).values()), "nothing left on hold"

    assert limit_operation(peers, invoice_id, payment_id) == {
        limit: {"state": "COMMIT", "held": 1000, "committed": 600}}
    assert peers.state("limiter")["limits"][limit]["committed"] == 600
    session = peers.state("provider")["sessions"][f"{invoice_id}.{payment_id}.1.captured"]
    assert session["last_body"]["cost"] == {"amount": 600, "currency": "RUB"}
    assert session["answers"] == ["succeeded"]


def test_a_total_capture_commits_batch_1_only(running_worker, peers, api, ledger):
    invoice_id, payment_id = new_ids()
    api.post("/v1/payments", json=payment_body(ledger, invoice_id, payment_id, 700,
                                               hold=("cancel", FAR)))
    wait_payment(api, invoice_id, payment_id, activity="flow_waiting")
    response = api.post(f"/v1/payments/{invoice_id}/{payment_id}/capture",
                        json={"reason": "all", "cost": {"amount": 700, "currency": "RUB"}})
    assert response.status_code == 202 and response.json()["activity"] == "finalizing_session"
    state = wait_payment(api, invoice_id, payment_id, status="captured")
    assert state["captured_cost"] == {"amount": 700, "currency": "RUB"}
    assert [b["id"] for b in plan(peers, invoice_id, payment_id)["batches"]] == [1]
    assert own_amounts(peers, ledger.ids) == ledger.expected_balances(700)


def test_cancel_rolls_limits_and_plan_back(running_worker, peers, api, ledger):
    limit = new_limit(peers)
    invoice_id, payment_id = new_ids()
    before = balances(peers, ledger.ids)
    api.post("/v1/payments", json=payment_body(ledger, invoice_id, payment_id, 1000,
                                               limits=[limit], hold=("capture", FAR)))
    wait_payment(api, invoice_id, payment_id, activity="flow_waiting")
    assert balances(peers, ledger.ids) != before, "the hold shows in the available amounts"

    response = api.post(f"/v1/payments/{invoice_id}/{payment_id}/cancel",
                        json={"reason": "customer left"})
    assert response.status_code == 202, response.text
    state = wait_payment(api, invoice_id, payment_id, status="cancelled")
    assert state["activity"] == "idle" and state["captured_cost"] is None

    assert plan(peers, invoice_id, payment_id)["state"] == "ROLLBACK"
    assert limit_operation(peers, invoice_id, payment_id) == {
        limit: {"state": "ROLLBACK", "held": 1000, "committed": 0}}
    assert peers.state("limiter")["limits"][limit]["amount"] == 0
    assert balances(peers, ledger.ids) == before
    session = peers.state("provider")["sessions"][f"{invoice_id}.{payment_id}.1.cancelled"]
    assert session["last_body"]["target"] == "cancelled"


def test_hold_expiry_captures_or_cancels_as_the_flow_says(running_worker, peers, api, ledger):
    soon = datetime.now(UTC) + timedelta(seconds=1.5)
    to_capture, to_cancel = new_ids(), new_ids()
    api.post("/v1/payments", json=payment_body(ledger, *to_capture, 400, hold=("capture", soon)))
    api.post("/v1/payments", json=payment_body(ledger, *to_cancel, 300, hold=("cancel", soon)))
    assert payment(api, *to_capture)["status"] in ("pending", "processed")

    captured = wait_payment(api, *to_capture, status="captured")
    cancelled = wait_payment(api, *to_cancel, status="cancelled")
    assert datetime.fromisoformat(captured["updated_at"]) >= soon
    assert datetime.fromisoformat(cancelled["updated_at"]) >= soon
    assert captured["captured_cost"] == {"amount": 400, "currency": "RUB"}
    capture_started = next(e["change"] for e in events(api, *to_capture)
                           if e["change"]["type"] == "capture_started")
    assert capture_started["data"]["reason"] == "Timeout"
    assert own_amounts(peers, ledger.ids) == ledger.expected_balances(400)


def test_a_session_in_progress_is_polled_on_a_timer(running_worker, peers, api, ledger):
    invoice_id, payment_id = new_ids()
    peers.control("provider", "scenarios", {"invoice_id": invoice_id, "answers": [
        {"status": "processing", "poll_in_s": 1}, {"status": "processing", "poll_in_s": 1},
        {"status": "succeeded", "trx_id": "trx-77"}]})
    api.post("/v1/payments", json=payment_body(ledger, invoice_id, payment_id, 250,
                                               hold=("cancel", FAR)))
    wait_payment(api, invoice_id, payment_id, activity="flow_waiting")
    api.post(f"/v1/payments/{invoice_id}/{payment_id}/capture", json={"reason": "go"})

    wait_payment(api, invoice_id, payment_id, status="captured")
    session = peers.state("provider")["sessions"][f"{invoice_id}.{payment_id}.1.captured"]
    assert session["answers"] == ["processing", "processing", "succeeded"]
    history = events(api, invoice_id, payment_id)
    started = next(e for e in history if e["change"]["type"] == "session_started")
    finished = next(e for e in history if e["change"]["type"] == "session_finished")
    waited = (datetime.fromisoformat(finished["occurred_at"])
              - datetime.fromisoformat(started["occurred_at"]))
    assert waited >= timedelta(seconds=2), "two polls, each after poll_in_s"
    assert finished["change"]["trx_id"] == "trx-77"
