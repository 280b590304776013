"""The peer clients cashback uses, one of each per process (`per_process`), from settings."""

from __future__ import annotations

from clients.push import PushClient
from clients.settings import get_settings
from clients.transactions import TransactionsClient
from clients.wallet import WalletClient
from workers.per_process import per_process


def _transactions() -> TransactionsClient:
    settings = get_settings()
    return TransactionsClient(settings.transactions_url, timeout_s=settings.peer_timeout_s)


def _wallet() -> WalletClient:
    settings = get_settings()
    return WalletClient(settings.plus_wallet_url, timeout_s=settings.peer_timeout_s)


def _push() -> PushClient:
    settings = get_settings()
    return PushClient(settings.push_url, timeout_s=settings.peer_timeout_s)


transactions = per_process(_transactions)
wallet = per_process(_wallet)
push = per_process(_push)
