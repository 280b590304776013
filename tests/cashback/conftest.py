"""Cashback end to end: the HTTP API in this process, the worker process, sandbox transactions.

`api` is a client of the whole HTTP app (bearer token set); `transactions` drives the sandbox
transactions service of the `peers` fixture; `new_order_id` gives each test its own orders.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from celgate.api import create_app
from tests.fixtures.sandbox import Sandbox
from tests.support.waiting import wait_for

SERVICE = "taxi"
CURRENCY = "RUB"
YANDEX_UID = "uid-1"


@pytest.fixture
def api(database: str) -> Iterator[TestClient]:
    with TestClient(create_app(), headers={"Authorization": "Bearer test-token"}) as client:
        yield client


@pytest.fixture
def new_order_id() -> str:
    return f"order-{uuid.uuid4().hex[:12]}"


class Transactions:
    """The sandbox transactions service: seed invoices, set outcomes, count updates."""

    def __init__(self, peers: Sandbox) -> None:
        self._peers = peers

    def control(self, path: str, body: Any = None, method: str = "POST") -> Any:
        return self._peers.control("transactions", path, body, method)

    def seed(self, invoice_id: str, **fields: Any) -> dict[str, Any]:
        body = {"id": invoice_id, "currency": CURRENCY, "user_ip": "127.0.0.1",
                "yandex_uid": YANDEX_UID, **fields}
        return self.control("invoices", body)

    def settings(self, **settings: Any) -> None:
        self.control("settings", settings)

    def invoice(self, invoice_id: str) -> dict[str, Any]:
        return self._peers.state("transactions")["invoices"][invoice_id]

    def updates(self, invoice_id: str, outcome: str | None = "accepted") -> list[dict[str, Any]]:
        """Update calls for the invoice (those with `outcome`; every one when None)."""
        return [u for u in self._peers.state("transactions")["updates"]
                if u.get("invoice_id") == invoice_id
                and (outcome is None or u["outcome"] == outcome)]

    def operations(self, invoice_id: str) -> list[dict[str, Any]]:
        return self.invoice(invoice_id)["cashback"]["operations"]


@pytest.fixture
def transactions(peers: Sandbox) -> Transactions:
    return Transactions(peers)


def register_body(order_id: str, values: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {"order_id": order_id, "service": SERVICE, "currency": CURRENCY,
            "yandex_uid": YANDEX_UID, "wallet_id": "w/given",
            "cashback_by_source": [{"source": s, "value": v} for s, v in values.items()],
            **extra}


def register(api: TestClient, order_id: str, values: dict[str, str], **extra: Any
             ) -> dict[str, Any]:
    response = api.post("/v1/cashback/register", json=register_body(order_id, values, **extra))
    assert response.status_code == 200, response.text
    return response.json()


def view(api: TestClient, order_id: str) -> dict[str, Any]:
    response = api.get(f"/v1/cashback/{SERVICE}/{order_id}")
    assert response.status_code == 200, response.text
    return response.json()


def wait_status(api: TestClient, order_id: str, status: str, timeout: float = 15
                ) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        response = api.get(f"/v1/cashback/{SERVICE}/{order_id}")
        if response.status_code == 404:
            return None  # not registered yet
        assert response.status_code == 200, response.text
        order = response.json()
        return order if order["charge_status"] == status else None

    return wait_for(probe, timeout=timeout, what=f"order {order_id} to be {status}")


def rewards(entry: dict[str, Any]) -> dict[str, str]:
    """source -> amount of an update call as it was sent."""
    return {r["source"]: r["amount"] for r in entry["body"]["reward"]}
