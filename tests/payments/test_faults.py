"""Peer faults delay a payment but never double an effect; business errors outside a hold
stop the machine until an operator repairs it (a refused hold fails the payment: see
test_failures)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.payments.conftest import (
    new_ids,
    new_limit,
    own_amounts,
    payment,
    payment_body,
    wait_payment,
)

FAR = datetime.now(UTC) + timedelta(days=1)
# Three failures in a row exhaust a client's in-call attempts, so the step itself fails and the
# machine retries it on a timer; the fault after them hits the retried step.
STEP_FAILS = ["503", "503", "503"]


def _injected(peers, peer) -> dict[str, int]:
    return peers.state(peer)["faults"]["injected"]


def test_faults_on_every_peer_delay_a_partial_capture_but_never_double_it(
        running_worker, peers, api, ledger):
    """Each step meets faults that fail it once or twice (the retry limit in tests is 4), some
    after the peer applied the call ("timeout_after", "reset"), so the retried step repeats
    calls that already took effect."""
    limit = new_limit(peers)
    invoice_id, payment_id = new_ids()
    peers.faults("limiter", {"once": ["timeout_after", "503", "503"], "timeout_ms": 900})
    peers.faults("accounter", {"once": STEP_FAILS})
    api.post("/v1/payments", json=payment_body(ledger, invoice_id, payment_id, 1000,
                                               limits=[limit], hold=("cancel", FAR)))
    wait_payment(api, invoice_id, payment_id, activity="flow_waiting")
    assert _injected(peers, "limiter") == {"timeout_after": 1, "503": 2}
    assert _injected(peers, "accounter") == {"503": 3}

    peers.faults("accounter", {"once": ["timeout_after", "504", "503"], "timeout_ms": 900})
    peers.faults("provider", {"once": [*STEP_FAILS, "reset"]})
    peers.faults("limiter", {"once": [*STEP_FAILS, "timeout_after"], "timeout_ms": 900})
    api.post(f"/v1/payments/{invoice_id}/{payment_id}/capture",
             json={"reason": "part", "cost": {"amount": 600, "currency": "RUB"}})
    state = wait_payment(api, invoice_id, payment_id, status="captured", timeout=40)
    assert state["machine_status"] == "working"

    for peer in ("accounter", "limiter", "provider"):
        assert peers.state(peer)["faults"]["once"] == [], f"every {peer} fault was injected"
    assert own_amounts(peers, ledger.ids) == ledger.expected_balances(600)
    accounter = peers.state("accounter")
    assert list(accounter["plans"]) == [f"{invoice_id}.{payment_id}.1"]
    assert [b["id"] for b in accounter["plans"][f"{invoice_id}.{payment_id}.1"]["batches"]] == [
        1, 2, 3]
    assert peers.state("limiter")["limits"][limit]["committed"] == 600
    assert peers.state("limiter")["limits"][limit]["held"] == 0
    sessions = peers.state("provider")["sessions"]
    assert list(sessions) == [f"{invoice_id}.{payment_id}.1.captured"]
    assert sessions[f"{invoice_id}.{payment_id}.1.captured"]["final"] == "succeeded"


def test_random_faults_across_many_payments_leave_exact_totals(running_worker, peers, api,
                                                                 ledger):
    limit = new_limit(peers)
    spec = {"rates": {"503": 0.2, "timeout_after": 0.05}, "seed": 11, "timeout_ms": 800}
    for peer in ("accounter", "limiter"):
        peers.faults(peer, spec)
    peers.faults("provider", {"rates": {"503": 0.2, "reset": 0.05}, "seed": 12})

    registered = [new_ids() for _ in range(3)]
    held = [new_ids() for _ in range(3)]
    for ids in registered:
        api.post("/v1/payments/register",
                 json=payment_body(ledger, *ids, 1000, limits=[limit]))
    for ids in held:
        api.post("/v1/payments", json=payment_body(ledger, *ids, 1000, limits=[limit],
                                                   hold=("cancel", FAR)))
    for ids in held:
        wait_payment(api, *ids, activity="flow_waiting", timeout=40)
        api.post(f"/v1/payments/{ids[0]}/{ids[1]}/capture",
                 json={"reason": "part", "cost": {"amount": 500, "currency": "RUB"}})
    for ids in registered + held:
        wait_payment(api, *ids, status="captured", timeout=40)

    injected = sum(sum(_injected(peers, p).values())
                   for p in ("accounter", "limiter", "provider"))
    assert injected > 10, "the faults did happen"
    expected = ledger.expected_balances(1000)
    expected_partial = ledger.expected_balances(500)
    assert own_amounts(peers, ledger.ids) == {
        account: 3 * expected[account] + 3 * expected_partial[account] for account in expected}
    limiter = peers.state("limiter")
    assert limiter["limits"][limit]["committed"] == 3 * 1000 + 3 * 500
    assert limiter["limits"][limit]["held"] == 0
    assert len(peers.state("accounter")["plans"]) == 6


def test_a_business_error_fails_the_machine_and_repair_resumes_it(running_worker, peers, api,
                                                                   ledger):
    invoice_id, payment_id = new_ids()
    missing_limit = f"limit-of-{invoice_id}"  # not configured in the limiter yet
    api.post("/v1/payments/register",
             json=payment_body(ledger, invoice_id, payment_id, 800, limits=[missing_limit]))

    failed = wait_payment(api, invoice_id, payment_id, machine_status="failed")
    assert failed["activity"] == "processing_capture"
    assert failed["error"]["code"] == "limit_not_found"
    assert failed["error"]["attempts"] == 1, "a business error is not retried"
    assert peers.state("accounter")["plans"] == {}, "the step stopped before the accounter"
    refused = api.post(f"/v1/payments/{invoice_id}/{payment_id}/cancel", json={"reason": "x"})
    assert (refused.status_code, refused.json()["code"]) == (409, "machine_failed")

    new_limit(peers, missing_limit)
    repaired = api.post(f"/v1/payments/{invoice_id}/{payment_id}/repair",
                        json={"action": "resume"})
    assert repaired.status_code == 202, repaired.text
    state = wait_payment(api, invoice_id, payment_id, status="captured")
    assert state["machine_status"] == "working" and state["error"] is None
    assert peers.state("limiter")["limits"][missing_limit]["committed"] == 800

    again = api.post(f"/v1/payments/{invoice_id}/{payment_id}/repair", json={"action": "resume"})
    assert (again.status_code, again.json()["code"]) == (409, "machine_not_failed")


def test_provider_failures_transient_retried_fatal_fail_the_machine(running_worker, peers, api,
                                                                     ledger):
    retried, fatal = new_ids(), new_ids()
    peers.control("provider", "scenarios", {"invoice_id": retried[0], "answers": [
        {"status": "failed", "failure": {"code": "temporarily_unavailable", "transient": True}},
        {"status": "succeeded"}]})
    peers.control("provider", "scenarios", {"invoice_id": fatal[0], "answers": [
        {"status": "failed", "failure": {"code": "rejected_by_issuer", "transient": False}}]})
    for ids in (retried, fatal):
        api.post("/v1/payments", json=payment_body(ledger, *ids, 100, hold=("capture", FAR)))
    for ids in (retried, fatal):
        wait_payment(api, *ids, activity="flow_waiting")
        api.post(f"/v1/payments/{ids[0]}/{ids[1]}/cancel", json={"reason": "no"})

    wait_payment(api, *retried, status="cancelled")
    failed = wait_payment(api, *fatal, machine_status="failed")
    assert failed["activity"] == "finalizing_session" and failed["status"] == "processed"
    assert failed["error"]["code"] == "provider_session_failed"
    assert "rejected_by_issuer" in failed["error"]["message"]
    assert payment(api, *fatal)["machine_status"] == "failed"
