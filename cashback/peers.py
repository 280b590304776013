"""The peer clients cashback uses, one of each per process, built from settings.

A client holds a keep-alive HTTP session; a Celery prefork child must not share its parent's
sockets, so the cache is keyed by process id.
"""

from __future__ import annotations

import os
from functools import lru_cache

from clients.push import PushClient
from clients.settings import get_settings
from clients.transactions import TransactionsClient
from clients.wallet import WalletClient


def transactions() -> TransactionsClient:
    return _transactions(os.getpid())


def wallet() -> WalletClient:
    return _wallet(os.getpid())


def push() -> PushClient:
    return _push(os.getpid())


@lru_cache(maxsize=1)
def _transactions(pid: int) -> TransactionsClient:
    settings = get_settings()
    return TransactionsClient(settings.transactions_url, timeout_s=settings.peer_timeout_s)


@lru_cache(maxsize=1)
def _wallet(pid: int) -> WalletClient:
    settings = get_settings()
    return WalletClient(settings.plus_wallet_url, timeout_s=settings.peer_timeout_s)


@lru_cache(maxsize=1)
def _push(pid: int) -> PushClient:
    settings = get_settings()
    return PushClient(settings.push_url, timeout_s=settings.peer_timeout_s)
