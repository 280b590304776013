"""The registry of sandbox peers: who they are, which app serves them, where they listen.

A *peer* is one service a client talks to ("accounter", "provider", ...). A *server* is one
sandbox app on one port; it serves one peer, or several at different path prefixes (the woody
server serves Accounter at `/accounter` and Limiter at `/v1/limiter`). The test fixture and the
`celgate-sandbox` command both start servers from this registry, and `peer_env` points the
settings of a process at servers started on shifted ports.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.types import ASGIApp

AppFactory = Callable[[], ASGIApp]


@dataclass(frozen=True)
class Peer:
    name: str
    path: str  # where the peer lives on its server ("" for the server root)
    url_setting: str  # the field of clients.settings.Settings holding this peer's URL


@dataclass(frozen=True)
class Server:
    name: str
    factory: str  # "module:function" returning the ASGI app
    default_port: int
    peers: tuple[Peer, ...]


SERVERS: tuple[Server, ...] = (
    Server("woody_peers", "sandbox.woody_peers:create_app", 8022, (
        Peer("accounter", "/accounter", "accounter_url"),
        Peer("limiter", "/v1/limiter", "limiter_url"),
    )),
    Server("transactions", "sandbox.transactions:create_app", 8024,
           (Peer("transactions", "", "transactions_url"),)),
    Server("provider", "sandbox.provider:create_app", 8025,
           (Peer("provider", "", "provider_url"),)),
    Server("push", "sandbox.push:create_app", 8026,
           (Peer("push", "", "push_url"),)),
    Server("wallet", "sandbox.wallet:create_app", 8027,
           (Peer("wallet", "", "plus_wallet_url"),)),
)

PEER_NAMES: tuple[str, ...] = tuple(peer.name for server in SERVERS for peer in server.peers)


def peer_env(port_offset: int = 0, host: str = "127.0.0.1") -> dict[str, str]:
    """The `*_URL` environment variables that point the settings at the sandbox peers served
    on their default ports plus `port_offset` (`celgate-sandbox --port-offset`)."""
    return {peer.url_setting.upper():
            f"http://{host}:{server.default_port + port_offset}{peer.path}"
            for server in SERVERS for peer in server.peers}


class UnknownPeer(ValueError):
    """A name that is neither a peer nor a server of the registry."""


def select(names: Iterable[str] | None = None) -> list[Server]:
    """The servers that serve any of `names` (peer or server names), in registry order;
    every server when `names` is None."""
    if names is None:
        return list(SERVERS)
    wanted = set(names)
    known = {server.name for server in SERVERS} | set(PEER_NAMES)
    unknown = wanted - known
    if unknown:
        raise UnknownPeer(f"unknown sandbox peers {sorted(unknown)}; known: {sorted(known)}")
    return [server for server in SERVERS
            if server.name in wanted or any(peer.name in wanted for peer in server.peers)]


def load_factory(server: Server) -> AppFactory:
    """The server's app factory (imported only when the server is started)."""
    module_name, _, function = server.factory.partition(":")
    return getattr(importlib.import_module(module_name), function)


def address_of(server: Server, urls: dict[str, str]) -> tuple[str, int]:
    """(host, port) a server must listen on so that every peer URL in `urls` (Settings field
    -> URL) reaches it; the peers of one server must agree."""
    addresses = set()
    for peer in server.peers:
        parts = urlsplit(urls[peer.url_setting])
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"{peer.url_setting} must name a host and a port: "
                             f"{urls[peer.url_setting]!r}")
        addresses.add((parts.hostname, parts.port))
    if len(addresses) != 1:
        raise ValueError(f"the peers of the {server.name} sandbox must share one address, "
                         f"got {sorted(addresses)}")
    return addresses.pop()
