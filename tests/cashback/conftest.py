"""Cashback end to end: the HTTP API in this process, the worker process, sandbox transactions.

`api` (tests/conftest.py) is a client of the whole HTTP app; `transactions`
(tests/fixtures/sandbox.py) drives the sandbox transactions service; `new_order_id` gives each
test its own orders.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.waiting import wait_for

SERVICE = "taxi"
CURRENCY = "RUB"
YANDEX_UID = "uid-1"


@pytest.fixture
def new_order_id() -> str:
    return f"order-{uuid.uuid4().hex[:12]}"


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
