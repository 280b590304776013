"""Shared fixtures: the test database, Redis, sandbox peers, a real worker, the API client."""

from __future__ import annotations

from tests.support import env

env.apply()  # before anything reads settings

import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import redis  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import settings  # noqa: E402

from celgate.api import create_app  # noqa: E402
from sandbox.processes import ROOT, ManagedProcess  # noqa: E402
from sandbox.processes import worker as worker_process  # noqa: E402
from tests.support.broker import TestBroker, open_broker  # noqa: E402
from workers.settings import get_settings  # noqa: E402

pytest_plugins = ["tests.fixtures.sandbox"]

# Property and fuzz tests: a short run in `make test`, a long one in `make fuzz`
# (HYPOTHESIS_PROFILE=fuzz). No deadline: the machines running the suite are shared and slow.
settings.register_profile("ci", max_examples=25, deadline=None, print_blob=True)
settings.register_profile("fuzz", max_examples=1000, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `broker` every test whose outcome goes through the broker: it runs a worker or
    publishes through the API. `make test-rabbitmq` runs these again on RabbitMQ."""
    for item in items:
        if {"worker", "api"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.broker)


@pytest.fixture(scope="session")
def database() -> str:
    """A freshly migrated test database."""
    url = get_settings().database_url
    subprocess.run([sys.executable, "-m", "celgate.cli", "migrate", "--fresh"], cwd=ROOT,
                   check=True, capture_output=True)
    return url


@pytest.fixture(scope="session", autouse=True)
def broker() -> Iterator[TestBroker]:
    """The run's broker (Redis or RabbitMQ, tests/support/env.py), empty at the start.

    Autouse: on RabbitMQ the run's virtual host must exist before anything publishes.
    """
    redis.Redis.from_url(get_settings().redis_url).flushdb()
    opened = open_broker()
    yield opened
    opened.close()


@pytest.fixture(scope="session")
def worker(database: str, broker: TestBroker, tmp_path_factory) -> Iterator[ManagedProcess]:
    process = worker_process(Path(tmp_path_factory.mktemp("worker")) / "worker.log",
                             name="test")
    process.start()
    yield process
    process.stop()


@pytest.fixture
def running_worker(worker: ManagedProcess) -> ManagedProcess:
    """The shared worker, restarted if an earlier test stopped or killed it."""
    if not worker.alive:
        worker.start()
    return worker


@pytest.fixture
def api(database: str) -> Iterator[TestClient]:
    """The whole HTTP app in this process, with the test bearer token."""
    with TestClient(create_app(), headers={"Authorization": "Bearer test-token"}) as client:
        yield client
