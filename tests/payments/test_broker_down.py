"""A committed command answers as a success while the broker is down; the sweeper delivers it.

Before, the after-commit publish raised into the request: the client saw a 500 for a capture
that was applied, retried it and got 409.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.payments.conftest import new_ids, payment, payment_body, wait_payment
from tests.support.private_servers import free_port, pointed_at
from tests.support.waiting import wait_for
from workers.tasks import sweep

FAR = datetime.now(UTC) + timedelta(days=1)


def _swept_until(api, invoice_id, payment_id, **expected):
    def probe():
        sweep()
        state = payment(api, invoice_id, payment_id)
        return state if all(state[k] == v for k, v in expected.items()) else None
    return wait_for(probe, timeout=30, interval=0.5, what=f"payment with {expected}")


def test_commands_answer_normally_with_the_broker_down(running_worker, peers, api, ledger):
    held_id = new_ids()
    api.post("/v1/payments", json=payment_body(ledger, *held_id, 1000, hold=("cancel", FAR)))
    wait_payment(api, *held_id, activity="flow_waiting")
    registered_id = new_ids()

    with pointed_at(broker_url=f"redis://127.0.0.1:{free_port()}/0"):  # nothing listens there
        captured = api.post(f"/v1/payments/{held_id[0]}/{held_id[1]}/capture",
                            json={"reason": "broker down"})
        registered = api.post("/v1/payments/register",
                              json=payment_body(ledger, *registered_id, 700))

    assert captured.status_code == 202, captured.text
    assert captured.json()["activity"] == "finalizing_session"
    assert registered.status_code == 202, registered.text
    # The broker is back: the sweeper delivers what the commands committed.
    _swept_until(api, *held_id, status="captured", activity="idle")
    _swept_until(api, *registered_id, status="captured", activity="idle")
