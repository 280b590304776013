"""What payments brings to a worker (workers/components.py); named in pyproject.toml under the
`celgate.components` entry points."""

from __future__ import annotations

from clients import settings as peers
from payments import settings
from workers.components import Component

COMPONENT = Component(
    "payments",
    queues=("payments",),
    task_modules=("payments.tasks",),
    settings=(settings.get_settings, peers.get_settings),
    log_ids=("invoice_id", "payment_id"),
)
