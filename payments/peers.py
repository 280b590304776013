"""The peers a payment step calls: Accounter, Limiter and the provider adapter.

Clients keep HTTP connections open, so each process builds its own set once (a forked worker
child must not share its parent's sockets). A step gets them together with a fresh woody trace
context, so every call of one step shares one trace id.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from clients.accounter import AccounterClient
from clients.limiter import LimiterClient
from clients.provider import ProviderClient
from clients.woody_wire import WoodyContext
from workers.settings import get_settings


@dataclass(frozen=True)
class Peers:
    accounter: AccounterClient
    limiter: LimiterClient
    provider: ProviderClient
    woody: WoodyContext
    # Commit/rollback a plan the Accounter does not know under its `<invoice>.<payment>` name.
    legacy_plan_ids: bool = False

    def for_step(self) -> Peers:
        """The same clients with a new trace: one trace per step."""
        return replace(self, woody=WoodyContext.new())


_peers: Peers | None = None
_peers_pid: int | None = None


def get_peers() -> Peers:
    global _peers, _peers_pid
    if _peers is None or _peers_pid != os.getpid():
        settings = get_settings()
        timeout = settings.peer_timeout_s
        _peers = Peers(
            accounter=AccounterClient(settings.accounter_url, timeout_s=timeout),
            limiter=LimiterClient(settings.limiter_url, timeout_s=timeout),
            provider=ProviderClient(settings.provider_url, timeout_s=timeout),
            woody=WoodyContext.new(),
            legacy_plan_ids=settings.legacy_plan_id_fallback,
        )
        _peers_pid = os.getpid()
    return _peers.for_step()
