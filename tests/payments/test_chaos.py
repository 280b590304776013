"""Long fault-injection run of the capture chain (`make chaos`).

Registered and partially captured payments run while the worker is SIGKILLed mid-step and the
broker is flushed, with a sweeper bringing lost messages back. Every payment must be captured,
every plan committed once, and the sandbox balances and limits exact to the minor unit.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.payments.conftest import new_ids, new_limit, own_amounts, payment_body, wait_payment
from tests.support.chaos import kills_and_flushes

pytestmark = pytest.mark.chaos

FAR = datetime.now(UTC) + timedelta(days=1)
REGISTERED = 15
HELD = 15


def test_kills_and_flushes_lose_and_double_no_payment(running_worker, broker, peers, api,
                                                       ledger):
    limit = new_limit(peers)
    registered = [new_ids() for _ in range(REGISTERED)]
    held = [new_ids() for _ in range(HELD)]
    for ids in held:
        api.post("/v1/payments", json=payment_body(ledger, *ids, 1000, limits=[limit],
                                                   hold=("cancel", FAR)))
    with kills_and_flushes(running_worker, broker, seed=5):
        for ids in registered:
            api.post("/v1/payments/register",
                     json=payment_body(ledger, *ids, 1000, limits=[limit]))
        for ids in held:
            wait_payment(api, *ids, activity="flow_waiting", timeout=60)
            api.post(f"/v1/payments/{ids[0]}/{ids[1]}/capture",
                     json={"reason": "part", "cost": {"amount": 600, "currency": "RUB"}})
        for ids in registered + held:
            wait_payment(api, *ids, status="captured", activity="idle", timeout=90)

    full, partial = ledger.expected_balances(1000), ledger.expected_balances(600)
    assert own_amounts(peers, ledger.ids) == {
        account: REGISTERED * full[account] + HELD * partial[account] for account in full}
    accounter = peers.state("accounter")
    assert len(accounter["plans"]) == REGISTERED + HELD
    assert {plan["state"] for plan in accounter["plans"].values()} == {"COMMIT"}
    limits = peers.state("limiter")["limits"][limit]
    assert limits["committed"] == REGISTERED * 1000 + HELD * 600
    assert limits["held"] == 0
