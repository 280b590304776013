"""The Celery tasks of cashback, by their CONTRACT.md names; each is an STQ queue.

`cashback.cashback_charge_processing` and `cashback.universal_cashback_processing` take
`{order_id, service}` (one pending task per order and service); `wallet.balance_changed` takes
the billing callback body (one task per wallet and version). Another service may enqueue any
of them by name with `send_task`.
"""

from __future__ import annotations

from cashback import balance, charge_job, universal
from cashback.queues import CHARGE_QUEUE, UNIVERSAL_QUEUE, OrderKwargs, task_id_of
from workers import stq

cashback_charge_processing = stq.register_task(CHARGE_QUEUE, OrderKwargs, task_id_of,
                                               charge_job.run)
universal_cashback_processing = stq.register_task(UNIVERSAL_QUEUE, OrderKwargs, task_id_of,
                                                  universal.run)
balance_changed = stq.register_task(balance.BALANCE_QUEUE, balance.BalanceChangedKwargs,
                                    balance.task_id_of, balance.run)
