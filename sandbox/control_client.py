"""The one client of the sandbox peers' control API (`/_sandbox/...`, `sandbox.control`).

Tests, the demo and the benchmarks seed, inspect, reset and fault the sandbox peers through
it: `control` calls one route of the peer at a URL, `Sandbox` names the peers and adds the
routes every peer serves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests

from sandbox import peers as registry

CONTROL_TIMEOUT_S = 10


class SandboxControlError(AssertionError):
    """A control call that failed or that the sandbox refused; the message says which.

    An AssertionError: in a test, a sandbox that refuses its setup is a failed expectation.
    """


def control(peer_url: str, path: str, body: Any = None, method: str = "POST", *,
            timeout_s: float = CONTROL_TIMEOUT_S) -> Any:
    """Call `{peer_url}/_sandbox/<path>`; the decoded JSON answer (None when empty)."""
    url = f"{peer_url.rstrip('/')}/_sandbox/{path.lstrip('/')}"
    try:
        response = requests.request(method, url, json=body, timeout=timeout_s)
    except requests.RequestException as exc:
        raise SandboxControlError(f"{method} {url}: {type(exc).__name__}: {exc}") from exc
    if not response.ok:
        raise SandboxControlError(f"{method} {url}: HTTP {response.status_code}: "
                                  f"{response.text}")
    return response.json() if response.content else None


class Sandbox:
    """Sandbox peers by name (peer name -> URL of the peer) and their control API."""

    def __init__(self, urls: Mapping[str, str]) -> None:
        self._urls = {name: url.rstrip("/") for name, url in urls.items()}

    @classmethod
    def of_settings(cls, settings: Any) -> Sandbox:
        """The peers where `settings` (the Settings, or anything with its `*_url` fields)
        point the clients."""
        return cls({peer.name: getattr(settings, peer.url_setting)
                    for server in registry.SERVERS for peer in server.peers})

    def url(self, peer: str) -> str:
        if peer in self._urls:
            return self._urls[peer]
        raise LookupError(f"unknown sandbox peer {peer!r}; known: {sorted(self._urls)}")

    def control(self, peer: str, path: str, body: Any = None, method: str = "POST") -> Any:
        return control(self.url(peer), path, body, method)

    def reset(self) -> None:
        """Every peer's state, call counts and faults back to the start."""
        for peer in self._urls:
            self.control(peer, "reset")

    def state(self, peer: str) -> dict[str, Any]:
        return self.control(peer, "state", method="GET")

    def faults(self, peer: str, spec: dict[str, Any]) -> dict[str, Any]:
        return self.control(peer, "faults", spec)

    def clear_faults(self, peer: str | None = None) -> None:
        for name in (peer,) if peer is not None else self._urls:
            self.control(name, "faults", method="DELETE")
