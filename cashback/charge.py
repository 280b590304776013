"""What `cashback_charge_processing` does next for an order, given the invoice: a pure decision.

transactions takes the TARGET cashback per source and works asynchronously, so each run
compares the order's target with the invoice and answers one of:

- `Update`: send the full target (every source; a source the invoice has but the order never
  named is sent as 0) under a deterministic operation id, then poll;
- `Wait`: ask again later (invoice in progress, or a failed invoice's retry is not due yet);
- `Done`: the invoice is terminal and equals the target;
- `Fail`: stop and show why on the order (retries exhausted, no user ip, invoice missing...).

What the calls to transactions and the wallet come to is a decision too (`after_error`,
`Sent`): a rate limit or a version conflict waits without touching the order, a refusal fails
it, and anything else (transactions unreachable, an answer we do not understand) is `RetryJob`:
the job raises it and the STQ runner runs it again after a backoff.

Operation ids (docs/contract.md): `<order_id>/v<version>` for the order_clears version,
`<that id>/retry/<n>` for the n-th retry after the invoice failed it, and `<that id>/manual/<n>`
for the n-th operator retry of a failed order (sent once, whatever the invoice's state, with
one more operation allowed past the retry limit), so a run repeated after a crash sends the
same id and transactions answers as it did the first time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Literal
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from cashback.settings import get_settings
from clients.transactions import (
    Invoice,
    InvoiceNotFound,
    Operation,
    RateLimited,
    TransactionsRejected,
    VersionConflict,
)
from clients.wallet import WalletRejected

ZERO = Decimal(0)
_MAX_GROWTH_STEPS = 32  # beyond this every delay is at its cap anyway


def hashed_jitter(operation_id: str) -> float:
    """A factor in [0.5, 1.5) drawn from the operation id: uniform across orders, yet the same
    on every run, so a retry's due time does not move each time the job looks at it."""
    digest = hashlib.sha256(operation_id.encode()).digest()
    return 0.5 + int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True)
class ChargePolicy:
    max_operations: int  # a failed invoice with this many operations is not retried
    retry_min_delay_s: float
    retry_max_delay_s: float
    poll_initial_s: float  # first poll of an invoice in progress
    poll_max_s: float
    missing_invoice_limit: int  # reschedules while transactions does not know the invoice

    @classmethod
    def from_settings(cls) -> ChargePolicy:
        settings = get_settings()
        return cls(
            max_operations=settings.cashback_retry_max_operations,
            retry_min_delay_s=settings.cashback_retry_min_delay_s,
            retry_max_delay_s=settings.cashback_retry_max_delay_s,
            poll_initial_s=settings.cashback_poll_initial_s,
            poll_max_s=settings.cashback_poll_max_s,
            missing_invoice_limit=settings.cashback_missing_invoice_limit,
        )

    def poll_delay(self, polls: int) -> float:
        """Grows by half with every poll already made, capped."""
        return min(self.poll_max_s, self.poll_initial_s * 1.5 ** min(polls, _MAX_GROWTH_STEPS))

    def retry_delay(self, retry: int, retry_id: str) -> float:
        """min(max, min * 2^(n-1)) * U(0.5, 1.5), never below min (docs/contract.md)."""
        base = min(self.retry_max_delay_s,
                   self.retry_min_delay_s * 2 ** min(retry - 1, _MAX_GROWTH_STEPS))
        return max(self.retry_min_delay_s, base * hashed_jitter(retry_id))


@dataclass(frozen=True)
class ChargeTarget:
    """The order as the decision needs it."""

    order_id: str
    version: int
    target: Mapping[str, Decimal]
    manual: int = 0  # operator retries of this version

    @property
    def operation_id(self) -> str:
        return f"{self.order_id}/v{self.version}"

    @property
    def manual_id(self) -> str | None:
        return f"{self.operation_id}/manual/{self.manual}" if self.manual else None


@dataclass(frozen=True)
class Update:
    operation_id: str
    invoice_version: int
    reward: dict[str, Decimal]


@dataclass(frozen=True)
class Wait:
    delay_s: float
    # False: the run learned nothing about the invoice (rate limited, raced), so the order's
    # charge status stays as it is.
    record: bool = True
    why: str = ""


@dataclass(frozen=True)
class Done:
    pass


@dataclass(frozen=True)
class Fail:
    reason: str
    message: str


@dataclass(frozen=True)
class Sent:
    """transactions took the update: the order is charging under `operation_id`; poll."""

    operation_id: str
    delay_s: float


@dataclass(frozen=True)
class RetryJob:
    """Nothing to decide from this failure: the job raises it for the STQ runner's retry."""

    error: Exception


Decision = Update | Wait | Done | Fail | Sent | RetryJob
Call = Literal["retrieve_invoice", "wallet", "update_cashback"]


def decide(order: ChargeTarget, invoice: Invoice, now: datetime, policy: ChargePolicy, *,
           polls: int = 0) -> Decision:
    """The next step for `order`; `polls` is how many times its task was rescheduled."""
    cashback = invoice.cashback
    if cashback.status == "in-progress":
        return Wait(policy.poll_delay(polls))
    rewarded = {reward.source: reward.amount for reward in cashback.rewarded}
    reward = {source: order.target.get(source, ZERO)
              for source in order.target.keys() | rewarded.keys()}
    if cashback.status == "failed":
        return _after_failure(order, invoice, now, policy, reward)
    if all(reward[source] == rewarded.get(source, ZERO) for source in reward):
        return Done()
    if _manual_due(order, cashback.operations):
        return _update(invoice, order.manual_id, reward)
    if operations_of(order, cashback.operations):
        # The invoice took this version and still differs: the same id again would change
        # nothing, and a new id is not ours to invent.
        return Fail("target_not_reached",
                    f"invoice is {cashback.status} after {order.operation_id} but its cashback "
                    f"{_show(rewarded)} differs from the target {_show(reward)}")
    return _update(invoice, order.operation_id, reward)


def on_missing_invoice(order_id: str, polls: int, policy: ChargePolicy) -> Wait | Fail:
    """transactions does not know the invoice (yet): wait a bounded number of times."""
    if polls >= policy.missing_invoice_limit:
        return Fail("invoice_not_found",
                    f"transactions has no invoice {order_id} after {polls} attempts")
    return Wait(policy.poll_delay(polls))


def after_error(call: Call, error: Exception, order_id: str, polls: int,
                policy: ChargePolicy) -> Decision:
    """What a call that raised means for the charge. The checks go from the narrowest class
    to the widest: InvoiceNotFound and VersionConflict are also TransactionsRejected."""
    if isinstance(error, RateLimited):
        return Wait(policy.poll_delay(polls), record=False, why="transactions rate limited")
    if call == "update_cashback" and isinstance(error, VersionConflict):
        return Wait(policy.poll_initial_s, record=False,
                    why="invoice changed under the update; reading it again")
    if call != "wallet" and isinstance(error, InvoiceNotFound):
        return on_missing_invoice(order_id, polls, policy)
    if call == "wallet" and isinstance(error, WalletRejected):
        return Fail("wallet_rejected", str(error))
    if call == "update_cashback" and isinstance(error, TransactionsRejected):
        return Fail("update_rejected", str(error))
    return RetryJob(error)


def _after_failure(order: ChargeTarget, invoice: Invoice, now: datetime, policy: ChargePolicy,
                   reward: dict[str, Decimal]) -> Decision:
    operations = invoice.cashback.operations
    limit = policy.max_operations + order.manual  # each operator retry allows one more
    if len(operations) >= limit:
        return Fail("retries_exhausted",
                    f"invoice cashback failed with {len(operations)} operations "
                    f"(limit {limit})")
    if _manual_due(order, operations):
        return _update(invoice, order.manual_id, reward)
    ours = operations_of(order, operations)
    if not ours:
        # This version was never sent (the failure belongs to an older one): not a retry.
        return _update(invoice, order.operation_id, reward)
    retry = _last_retry(order, ours) + 1
    retry_id = f"{order.operation_id}/retry/{retry}"
    last_created = max(op.created for op in operations)
    due = last_created + timedelta(seconds=policy.retry_delay(retry, retry_id))
    if now < due:
        return Wait((due - now).total_seconds())
    return _update(invoice, retry_id, reward)


def operations_of(order: ChargeTarget, operations: list[Operation]) -> list[Operation]:
    """The operations sent for the order's current version: its base id, its retries and its
    operator retries."""
    base = order.operation_id
    derived = (base + "/retry/", base + "/manual/")
    return [op for op in operations
            if op.operation_id == base or op.operation_id.startswith(derived)]


def _last_retry(order: ChargeTarget, ours: list[Operation]) -> int:
    """The highest retry number the invoice has for this version (0: none). The next retry
    takes the one after it, so an id the invoice holds is never chosen again, gaps or not."""
    prefix = order.operation_id + "/retry/"
    numbers = [op.operation_id.removeprefix(prefix) for op in ours
               if op.operation_id.startswith(prefix)]
    return max((int(n) for n in numbers if n.isascii() and n.isdigit()), default=0)


def _manual_due(order: ChargeTarget, operations: list[Operation]) -> bool:
    """An operator asked for one more try of this version and it was not sent yet."""
    return order.manual_id is not None and all(op.operation_id != order.manual_id
                                               for op in operations)


def _update(invoice: Invoice, operation_id: str, reward: dict[str, Decimal]) -> Update | Fail:
    if not invoice.user_ip:
        return Fail("no_user_ip", f"invoice {invoice.id} has no user_ip; transactions needs one")
    return Update(operation_id, invoice.cashback.version, reward)


def _show(amounts: Mapping[str, Decimal]) -> str:
    return "{" + ", ".join(f"{s}: {format(v, 'f')}" for s, v in sorted(amounts.items())) + "}"
