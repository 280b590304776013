"""The peers a payment step calls: Accounter, Limiter and the provider adapter.

Clients keep HTTP connections open, so each process builds its set once (`per_process`). A
step gets them bound to a fresh woody trace context: every woody call of one step carries
the step's trace id, parent span and deadline without the step passing them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from clients.accounter import AccounterClient
from clients.limiter import LimiterClient
from clients.provider import ProviderClient
from clients.settings import get_settings as peer_settings
from clients.woody_wire import WoodyContext
from payments.settings import get_settings
from workers.per_process import per_process


@dataclass(frozen=True)
class Peers:
    accounter: AccounterClient
    limiter: LimiterClient
    provider: ProviderClient
    woody: WoodyContext  # the context the woody clients are bound to
    # Commit/rollback a plan the Accounter does not know under its `<invoice>.<payment>` name.
    legacy_plan_ids: bool = False

    def for_step(self) -> Peers:
        """The same clients bound to a new trace: one trace per step."""
        woody = WoodyContext.new()
        return replace(self, accounter=self.accounter.with_context(woody),
                       limiter=self.limiter.with_context(woody), woody=woody)


def _build() -> Peers:
    settings = peer_settings()
    timeout = settings.peer_timeout_s
    return Peers(
        accounter=AccounterClient(settings.accounter_url, timeout_s=timeout),
        limiter=LimiterClient(settings.limiter_url, timeout_s=timeout),
        provider=ProviderClient(settings.provider_url, timeout_s=timeout),
        woody=WoodyContext.new(),
        legacy_plan_ids=get_settings().legacy_plan_id_fallback,
    )


_peers = per_process(_build)


def get_peers() -> Peers:
    """This process's peer clients, bound to a new trace for one step."""
    return _peers().for_step()
