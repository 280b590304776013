"""Payments end to end: the HTTP API in this process, the worker process, the sandbox peers.

`ledger` creates the accounts of one test's cash flow in the sandbox Accounter; `payment_body`
builds a register or hold body over them; `api` is a client of the payments routes.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sandbox.control_client import Sandbox
from tests.support.waiting import wait_for

CURRENCY = "RUB"


@dataclass(frozen=True)
class Ledger:
    """One test's accounts: money moves provider -> merchant -> system -> external."""

    provider: int
    merchant: int
    system: int
    external: int

    def cash_flow(self) -> list[dict[str, Any]]:
        return [
            _posting(self.provider, "provider.settlement", self.merchant, "merchant.settlement",
                     {"share": {"p": 1, "q": 1, "rounding": "round_half_towards_zero"}},
                     "payment amount"),
            _posting(self.merchant, "merchant.settlement", self.system, "system.settlement",
                     {"share": {"p": 3, "q": 100, "rounding": "round_half_towards_zero"}},
                     "system fee"),
            _posting(self.system, "system.settlement", self.external, "external.outcome",
                     {"fixed": {"amount": 15, "currency": CURRENCY}}, "acquiring fee"),
        ]

    def expected_balances(self, cost: int) -> dict[int, int]:
        """Own amounts after a committed capture of `cost` (3 % fee rounded half to zero)."""
        fee = (3 * cost + 49) // 100  # round half towards zero, for positive costs
        return {self.provider: -cost, self.merchant: cost - fee, self.system: fee - 15,
                self.external: 15}

    @property
    def ids(self) -> tuple[int, ...]:
        return (self.provider, self.merchant, self.system, self.external)


def _posting(source: int, source_type: str, destination: int, destination_type: str,
             volume: dict[str, Any], details: str) -> dict[str, Any]:
    return {"source": {"account_id": source, "type": source_type},
            "destination": {"account_id": destination, "type": destination_type},
            "volume": volume, "details": details}


@pytest.fixture
def ledger(peers: Sandbox) -> Ledger:
    return Ledger(*(new_account(peers) for _ in range(4)))


def new_account(peers: Sandbox, account_id: int | None = None) -> int:
    body = {"currency": CURRENCY} if account_id is None else {"currency": CURRENCY,
                                                               "id": account_id}
    return peers.control("accounter", "accounts", body)["id"]


def new_limit(peers: Sandbox, limit_id: str | None = None) -> str:
    limit_id = limit_id or f"limit-{uuid.uuid4().hex[:8]}"
    peers.control("limiter", "limits", {"id": limit_id, "currency": CURRENCY})
    return limit_id


def new_ids() -> tuple[str, str]:
    return f"inv-{uuid.uuid4().hex[:12]}", "1"


def payment_body(ledger: Ledger, invoice_id: str, payment_id: str, cost: int, *,
                 limits: Sequence[str] = (), hold: tuple[str, datetime] | None = None,
                 ) -> dict[str, Any]:
    body: dict[str, Any] = {
        "invoice_id": invoice_id, "payment_id": payment_id,
        "party_id": "party-1", "shop_id": "shop-1",
        "cost": {"amount": cost, "currency": CURRENCY},
        "route": {"provider_id": 7, "terminal_id": 42},
        "cash_flow": ledger.cash_flow(),
        "turnover_limits": [{"id": limit_id, "version": 1} for limit_id in limits],
    }
    if hold is not None:
        body["flow"] = {"on_hold_expiration": hold[0], "held_until": hold[1].isoformat()}
    return body


def payment(api: TestClient, invoice_id: str, payment_id: str) -> dict[str, Any]:
    response = api.get(f"/v1/payments/{invoice_id}/{payment_id}")
    assert response.status_code == 200, response.text
    return response.json()


def events(api: TestClient, invoice_id: str, payment_id: str) -> list[dict[str, Any]]:
    response = api.get(f"/v1/payments/{invoice_id}/{payment_id}/events")
    assert response.status_code == 200, response.text
    return response.json()


def wait_payment(api: TestClient, invoice_id: str, payment_id: str, *, timeout: float = 20,
                 **expected: Any) -> dict[str, Any]:
    """The payment once it exists and every `expected` field has the given value."""
    def probe() -> dict[str, Any] | None:
        response = api.get(f"/v1/payments/{invoice_id}/{payment_id}")
        if response.status_code == 404:  # a command task has not run yet
            return None
        assert response.status_code == 200, response.text
        state = response.json()
        return state if all(state[k] == v for k, v in expected.items()) else None
    return wait_for(probe, timeout=timeout, interval=0.05,
                    what=f"payment {invoice_id}/{payment_id} with {expected}")


def balances(peers: Sandbox, account_ids: tuple[int, ...]) -> dict[int, dict[str, int]]:
    accounts = peers.state("accounter")["accounts"]
    return {i: {k: accounts[str(i)][k] for k in ("own_amount", "min_available_amount",
                                                 "max_available_amount")}
            for i in account_ids}


def own_amounts(peers: Sandbox, account_ids: tuple[int, ...]) -> dict[int, int]:
    return {i: b["own_amount"] for i, b in balances(peers, account_ids).items()}
