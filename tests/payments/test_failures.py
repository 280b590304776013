"""A hold that is refused or overflows its limit fails the payment: what it held is rolled back
(Limiter and Accounter show nothing left held, balances unchanged), once, even across a crash
in the middle of the rollback."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from tests.payments.conftest import (
    balances,
    events,
    new_ids,
    new_limit,
    payment_body,
    wait_payment,
)
from tests.support.waiting import wait_for
from workers.tasks import sweep

FAR = datetime.now(UTC) + timedelta(days=1)


def _operation(invoice_id: str, payment_id: str) -> str:
    return f"limiter.batch-request.7.42.{invoice_id}.{payment_id}.1"


def _types(api, invoice_id, payment_id) -> list[str]:
    return [e["change"]["type"] for e in events(api, invoice_id, payment_id)]


def _assert_failed(state: dict, code: str) -> None:
    assert state["status"] == "failed" and state["activity"] == "idle"
    assert state["machine_status"] == "working" and state["error"] is None
    assert state["failure"]["code"] == code and state["failure"]["reason"]


def test_a_hold_over_its_upper_boundary_fails_with_limit_overflow(running_worker, peers, api,
                                                                   ledger):
    limit = new_limit(peers)
    before = balances(peers, ledger.ids)
    invoice_id, payment_id = new_ids()
    body = payment_body(ledger, invoice_id, payment_id, 1000, limits=[limit],
                        hold=("capture", FAR))
    body["turnover_limits"][0]["upper_boundary"] = 999
    assert api.post("/v1/payments", json=body).status_code == 202

    state = wait_payment(api, invoice_id, payment_id, status="failed")
    _assert_failed(state, "limit_overflow")
    assert "1000 > 999" in state["failure"]["reason"]
    limiter = peers.state("limiter")
    assert limiter["limits"][limit]["held"] == 0 and limiter["limits"][limit]["committed"] == 0
    assert limiter["operations"][_operation(invoice_id, payment_id)][limit]["state"] == "ROLLBACK"
    assert limiter["calls"]["GetBatch"] == 1, "the hold's values are read back once"
    assert peers.state("accounter")["plans"] == {}, "an overflowing hold holds no cash flow"
    assert balances(peers, ledger.ids) == before
    assert _types(api, invoice_id, payment_id)[-4:] == [
        "limits_held", "rollback_started", "limits_rolled_back", "status_changed"]


def test_a_hold_at_its_upper_boundary_is_not_an_overflow(running_worker, peers, api, ledger):
    limit = new_limit(peers)
    invoice_id, payment_id = new_ids()
    body = payment_body(ledger, invoice_id, payment_id, 1000, limits=[limit],
                        hold=("cancel", FAR))
    body["turnover_limits"][0]["upper_boundary"] = 1000  # overflow is strictly greater
    api.post("/v1/payments", json=body)
    state = wait_payment(api, invoice_id, payment_id, activity="flow_waiting")
    assert state["status"] == "processed" and state["failure"] is None


def test_a_hold_the_accounter_refuses_fails_and_releases_the_limits(running_worker, peers, api,
                                                                     ledger):
    limit = new_limit(peers)
    invoice_id, payment_id = new_ids()
    body = payment_body(ledger, invoice_id, payment_id, 900, limits=[limit],
                        hold=("cancel", FAR))
    absent = ledger.external + 1000  # no such account
    body["cash_flow"][2]["destination"]["account_id"] = absent
    before = balances(peers, ledger.ids)
    api.post("/v1/payments", json=body)

    state = wait_payment(api, invoice_id, payment_id, status="failed")
    _assert_failed(state, "invalid_posting_params")
    limiter = peers.state("limiter")
    assert limiter["limits"][limit]["held"] == 0 and limiter["limits"][limit]["committed"] == 0
    assert limiter["operations"][_operation(invoice_id, payment_id)][limit]["state"] == "ROLLBACK"
    accounter = peers.state("accounter")
    assert accounter["calls"].get("RollbackPlan", 0) == 0, "no batch was held to roll back"
    assert balances(peers, ledger.ids) == before
    assert "plan_batch_held" not in _types(api, invoice_id, payment_id)


def test_a_hold_the_limiter_refuses_fails_without_holding_anything(running_worker, peers, api,
                                                                    ledger):
    invoice_id, payment_id = new_ids()
    body = payment_body(ledger, invoice_id, payment_id, 700, limits=["no-such-limit"],
                        hold=("cancel", FAR))
    api.post("/v1/payments", json=body)
    state = wait_payment(api, invoice_id, payment_id, status="failed")
    _assert_failed(state, "limit_not_found")
    assert peers.state("accounter")["plans"] == {}
    assert peers.state("limiter")["calls"].get("RollbackBatch", 0) == 0
    assert _types(api, invoice_id, payment_id)[-2:] == ["rollback_started", "status_changed"]


def test_a_registered_payment_refused_by_a_peer_still_fails_the_machine(running_worker, peers,
                                                                         api, ledger):
    """Outside a hold, a business error is for an operator: the payment is not failed."""
    invoice_id, payment_id = new_ids()
    api.post("/v1/payments/register",
             json=payment_body(ledger, invoice_id, payment_id, 800, limits=["no-such-limit"]))
    state = wait_payment(api, invoice_id, payment_id, machine_status="failed")
    assert state["status"] == "processed" and state["failure"] is None
    assert state["error"]["code"] == "limit_not_found"


def test_a_worker_killed_in_the_middle_of_the_rollback_still_fails_the_payment_once(
        running_worker, peers, api, ledger):
    """The Limiter applies the rollback, then the worker dies before the step commits: the
    step runs again after the sweep, repeats the rollback (the Limiter answers as before) and
    fails the payment exactly once."""
    limit = new_limit(peers)
    invoice_id, payment_id = new_ids()
    operation = _operation(invoice_id, payment_id)
    body = payment_body(ledger, invoice_id, payment_id, 1000, limits=[limit],
                        hold=("capture", FAR))
    body["turnover_limits"][0]["upper_boundary"] = 10
    peers.faults("limiter", {"once": ["timeout_after"], "timeout_ms": 20000,
                             "match": "RollbackBatch"})
    api.post("/v1/payments", json=body)

    def rolled_back() -> bool:
        changes = peers.state("limiter")["operations"].get(operation, {})
        return changes.get(limit, {}).get("state") == "ROLLBACK"

    wait_for(rolled_back, timeout=20, what="the Limiter to apply the rollback")
    running_worker.kill()  # SIGKILL while the worker waits for the rollback's answer
    assert "rollback_started" in _types(api, invoice_id, payment_id)
    assert "status_changed" not in _types(api, invoice_id, payment_id), "not failed yet"
    running_worker.start()

    def failed() -> dict | None:
        sweep()  # as beat does: the step's message died with the worker
        time.sleep(0.2)
        state = api.get(f"/v1/payments/{invoice_id}/{payment_id}").json()
        return state if state["status"] == "failed" else None

    state = wait_for(failed, timeout=30, what="the payment to fail after the restart")
    _assert_failed(state, "limit_overflow")
    types = _types(api, invoice_id, payment_id)
    assert types.count("limits_rolled_back") == 1 and types.count("rollback_started") == 1
    assert types.count("status_changed") == 1, "failed once"
    limiter = peers.state("limiter")
    assert limiter["calls"]["RollbackBatch"] >= 2, "the rollback was repeated after the crash"
    assert limiter["limits"][limit]["held"] == 0 and limiter["limits"][limit]["committed"] == 0


def _card(token: str) -> dict:
    return {"payment_tool": {"bank_card": {"token": token, "bin": "424242",
                                           "last_digits": "4242"}},
            "email": f"{token}@example.com"}


def test_a_limit_scoped_by_card_counts_each_card_on_its_own(running_worker, peers, api, ledger):
    """The payer travels in the Limiter context: a per-card limit overflows for the card that
    spent too much, not for another card."""
    limit = f"per-card-{new_ids()[0]}"
    peers.control("limiter", "limits", {"id": limit, "currency": "RUB",
                                        "scopes": ["payment_tool"]})
    runs = [("tok-a", "flow_waiting"), ("tok-a", "idle"), ("tok-b", "flow_waiting")]
    made = []
    for token, activity in runs:
        ids = new_ids()
        body = payment_body(ledger, *ids, 1000, limits=[limit], hold=("cancel", FAR))
        body["turnover_limits"][0]["upper_boundary"] = 1500
        body["payer"] = _card(token)
        assert api.post("/v1/payments", json=body).status_code == 202
        made.append(ids)
        wait_payment(api, *ids, activity=activity)  # one at a time: the order decides who overflows
    states = [wait_payment(api, *ids) for ids in made]
    assert [s["status"] for s in states] == ["processed", "failed", "processed"]
    assert states[1]["failure"]["code"] == "limit_overflow"
    buckets = peers.state("limiter")["limits"][limit]["buckets"]
    assert buckets == {"payment_tool=tok-a": {"committed": 0, "held": 1000},
                       "payment_tool=tok-b": {"committed": 0, "held": 1000}}


def test_a_card_scoped_limit_refuses_a_payment_without_a_card(running_worker, peers, api,
                                                              ledger):
    limit = f"per-card-{new_ids()[0]}"
    peers.control("limiter", "limits", {"id": limit, "currency": "RUB",
                                        "scopes": ["payment_tool"]})
    ids = new_ids()
    api.post("/v1/payments", json=payment_body(ledger, *ids, 100, limits=[limit],
                                               hold=("cancel", FAR)))
    state = wait_payment(api, *ids, status="failed")
    assert state["failure"]["code"] == "payment_tool_not_supported"


def test_limits_without_a_boundary_are_not_read_back(running_worker, peers, api, ledger):
    limit = new_limit(peers)
    ids = new_ids()
    api.post("/v1/payments", json=payment_body(ledger, *ids, 100, limits=[limit],
                                               hold=("cancel", FAR)))
    wait_payment(api, *ids, activity="flow_waiting")
    assert peers.state("limiter")["calls"].get("GetBatch", 0) == 0
