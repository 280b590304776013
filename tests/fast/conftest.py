"""The fast layer: steps, the payment processor and the charge job against in-memory peers.

Nothing here needs PostgreSQL, Redis, a worker or the sandbox servers. `make test-fast` runs
these files with `--confcutdir tests/fast`, so the suite's top-level conftest (which claims a
test slot and empties the broker) is not loaded at all; under `make test` it is, and the
`broker` fixture below keeps its autouse Redis flush away from these tests.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from clients.woody import WoodyContext
from payments.peers import Peers
from tests.fast.fakes import FakeAccounter, FakeLimiter, FakeProvider


@pytest.fixture(scope="session")
def broker() -> None:
    """No broker: overrides the suite's autouse fixture of that name for this directory."""


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Any attempt to open a connection fails the test: a fast test talks to no service."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a fast test tried to open a connection: {args[1:]!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    yield


@pytest.fixture
def accounter() -> FakeAccounter:
    return FakeAccounter()


@pytest.fixture
def limiter() -> FakeLimiter:
    return FakeLimiter({"daily": 0, "monthly": 0})


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
def peers(accounter: FakeAccounter, limiter: FakeLimiter, provider: FakeProvider) -> Peers:
    return Peers(accounter=accounter, limiter=limiter, provider=provider,  # type: ignore[arg-type]
                 woody=WoodyContext.new())
