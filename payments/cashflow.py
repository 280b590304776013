"""Cash flows: the posting template of a payment and the final cash flow computed from it.

A template posting moves either a `fixed` amount or a `share` p/q of the operation amount
between two accounts. `compute` turns the template into final postings for a given cost with
integer arithmetic only (a share is rounded half towards zero, exactly). `revert` undoes a
final cash flow, and `to_batch` renders one as an Accounter posting batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from clients.accounter import Batch, Posting
from payments.errors import InvalidCashFlow, InvalidShare, UnknownAccountType
from payments.money import Money

ACCOUNT_TYPES = frozenset({
    "merchant.settlement", "merchant.guarantee", "merchant.payout", "provider.settlement",
    "system.settlement", "system.subagent", "external.income", "external.outcome",
})
ROUNDING_METHODS = frozenset({"round_half_towards_zero"})
_MAX_ACCOUNT_ID = 2**63 - 1


@dataclass(frozen=True)
class CashFlowAccount:
    account_id: int
    type: str

    def __post_init__(self) -> None:
        if self.type not in ACCOUNT_TYPES:
            raise UnknownAccountType(
                f"unknown account type {self.type!r}; known: {sorted(ACCOUNT_TYPES)}")
        if not -_MAX_ACCOUNT_ID - 1 <= self.account_id <= _MAX_ACCOUNT_ID:
            raise InvalidCashFlow(f"account id {self.account_id} does not fit in 64 bits")


@dataclass(frozen=True)
class Share:
    """p/q of the operation amount."""

    p: int
    q: int
    rounding: str = "round_half_towards_zero"

    def __post_init__(self) -> None:
        if self.q <= 0 or self.p < 0:
            raise InvalidShare(f"a share needs p >= 0 and q > 0, got {self.p}/{self.q}")
        if self.rounding not in ROUNDING_METHODS:
            raise InvalidShare(
                f"unknown rounding {self.rounding!r}; known: {sorted(ROUNDING_METHODS)}")

    def of(self, amount: int) -> int:
        return divide_round_half_towards_zero(amount * self.p, self.q)


@dataclass(frozen=True)
class FixedVolume:
    fixed: Money


@dataclass(frozen=True)
class ShareVolume:
    share: Share


@dataclass(frozen=True)
class PostingTemplate:
    source: CashFlowAccount
    destination: CashFlowAccount
    volume: FixedVolume | ShareVolume
    details: str | None = None

    def __post_init__(self) -> None:
        if self.source.account_id == self.destination.account_id:
            raise InvalidCashFlow(
                f"posting {self.details!r} moves money from account {self.source.account_id} "
                "to itself")


@dataclass(frozen=True)
class FinalPosting:
    source: CashFlowAccount
    destination: CashFlowAccount
    volume: Money
    details: str | None = None


CashFlowTemplate = tuple[PostingTemplate, ...]
FinalCashFlow = tuple[FinalPosting, ...]


def check_template(template: Sequence[PostingTemplate], currency: str) -> None:
    """A template usable for an operation in `currency`: not empty, one currency throughout."""
    if not template:
        raise InvalidCashFlow("a cash flow needs at least one posting")
    for posting in template:
        if isinstance(posting.volume, FixedVolume) and posting.volume.fixed.currency != currency:
            raise InvalidCashFlow(
                f"posting {posting.details!r} is fixed in {posting.volume.fixed.currency}, "
                f"the payment is in {currency}")


def compute(template: Sequence[PostingTemplate], cost: Money) -> FinalCashFlow:
    """The final cash flow of an operation of `cost`."""
    return tuple(
        FinalPosting(
            source=posting.source,
            destination=posting.destination,
            volume=_volume(posting.volume, cost),
            details=posting.details,
        )
        for posting in template
    )


def _volume(volume: FixedVolume | ShareVolume, cost: Money) -> Money:
    if isinstance(volume, FixedVolume):
        return volume.fixed
    return cost.with_amount(volume.share.of(cost.amount))


def revert(cash_flow: Sequence[FinalPosting]) -> FinalCashFlow:
    """The postings that undo `cash_flow`: accounts swapped, details as `revert(<details>)`."""
    return tuple(
        FinalPosting(
            source=posting.destination,
            destination=posting.source,
            volume=posting.volume,
            details=None if posting.details is None else f"revert({posting.details})",
        )
        for posting in cash_flow
    )


def to_batch(batch_id: int, cash_flow: Sequence[FinalPosting]) -> Batch:
    return Batch(
        id=batch_id,
        postings=tuple(
            Posting(
                from_id=posting.source.account_id,
                to_id=posting.destination.account_id,
                amount=posting.volume.amount,
                currency=posting.volume.currency,
                description=posting.details or "",
            )
            for posting in cash_flow
        ),
    )


def divide_round_half_towards_zero(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded to the nearest integer, a tie towards zero; exact."""
    if denominator == 0:
        raise ZeroDivisionError("division by zero")
    negative = (numerator < 0) != (denominator < 0)
    quotient, remainder = divmod(abs(numerator), abs(denominator))
    if 2 * remainder > abs(denominator):
        quotient += 1
    return -quotient if negative else quotient
