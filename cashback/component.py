"""What cashback brings to a worker (workers/components.py); named in pyproject.toml under the
`celgate.components` entry points. The billing balance callback's task runs on `wallet`."""

from __future__ import annotations

from cashback import settings
from clients import settings as peers
from workers.components import Component

COMPONENT = Component(
    "cashback",
    queues=("cashback", "wallet"),
    task_modules=("cashback.tasks",),
    settings=(settings.get_settings, peers.get_settings),
    log_ids=("order_id", "service", "yandex_uid", "wallet_id"),
)
