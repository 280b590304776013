"""What the fuzz tests share: the app, one ledger of sandbox accounts, a held payment."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from hypothesis import settings

from celgate.api import create_app
from sandbox.control_client import Sandbox
from sandbox.processes import ManagedProcess
from tests.payments.conftest import Ledger, new_account, payment_body, wait_payment

FAR = datetime.now(UTC) + timedelta(days=1)
# The `make fuzz` profile (HYPOTHESIS_PROFILE=fuzz): more examples, and more kinds of junk.
LONG = settings().max_examples >= 100


@pytest.fixture(scope="module")
def client(database: str) -> Iterator[TestClient]:
    # Server exceptions stay in the app: an unhandled one is answered 500 as in production.
    with TestClient(create_app(), headers={"Authorization": "Bearer test-token"},
                    raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def ledger(sandbox: Sandbox) -> Ledger:
    return Ledger(*(new_account(sandbox) for _ in range(4)))


@pytest.fixture
def live_worker(worker: ManagedProcess) -> ManagedProcess:
    if not worker.alive:
        worker.start()
    return worker


def new_held(client: TestClient, ledger: Ledger) -> tuple[str, str]:
    """A hold payment waiting in flow_waiting for its capture or cancel (needs a worker)."""
    ids = (f"inv-held-{uuid.uuid4().hex[:8]}", "1")
    response = client.post("/v1/payments", json=payment_body(ledger, *ids, 1000,
                                                              hold=("cancel", FAR)))
    assert response.status_code == 202, response.text
    wait_payment(client, *ids, activity="flow_waiting")
    return ids


@pytest.fixture(scope="module")
def held(worker: ManagedProcess, sandbox: Sandbox, client: TestClient, ledger: Ledger
         ) -> tuple[str, str]:
    if not worker.alive:
        worker.start()
    return new_held(client, ledger)
