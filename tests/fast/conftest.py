"""The fast layer: steps, the payment processor and the charge job against in-memory peers.

Nothing here needs PostgreSQL, Redis, a worker or the sandbox servers. `make test-fast` runs
these files with `--confcutdir tests/fast`, so the suite's top-level conftest (which claims a
test slot and empties the broker) is not loaded at all; under `make test` it is, and the
`broker` fixture below keeps its autouse Redis flush away from these tests.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from clients.woody_wire import WoodyContext
from payments.peers import Peers
from tests.fast.fakes import FakeAccounter, FakeLimiter, FakeProvider


@pytest.fixture(scope="session")
def broker() -> None:
    """No broker: overrides the suite's autouse fixture of that name for this directory."""


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A connection opened by the test fails it: a fast test talks to no service. Other
    threads of the process (under `make test`, those of session fixtures) are left alone."""
    test_thread = threading.get_ident()
    originals = {name: getattr(socket.socket, name) for name in ("connect", "connect_ex")}

    def guarded(name: str):
        def connect(self: socket.socket, address: object) -> object:
            if threading.get_ident() == test_thread:
                raise AssertionError(f"a fast test tried to connect to {address!r}")
            return originals[name](self, address)
        return connect

    for name in originals:
        monkeypatch.setattr(socket.socket, name, guarded(name))
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
