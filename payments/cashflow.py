"""Cash flows: the posting template of a payment and the final cash flow computed from it.

A template posting moves a volume between two accounts: a `fixed` amount, a `share` p/q of the
operation amount, or a `product` (`min_of`, `max_of`, `sum_of`) over other volumes, as the
processing core's cash flows do. `compute` turns the template into final postings for a given
cost with integer arithmetic only (a share is rounded half away from zero or half towards
zero, exactly). `revert` undoes a final cash flow, and `to_batch` renders one as an Accounter
posting batch.
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
HALF_AWAY, HALF_TOWARDS = "round_half_away_from_zero", "round_half_towards_zero"
ROUNDING_METHODS = frozenset({HALF_AWAY, HALF_TOWARDS})
# The core's default when a share names no rounding method.
DEFAULT_ROUNDING = HALF_AWAY
PRODUCT_FUNCTIONS = frozenset({"min_of", "max_of", "sum_of"})
# How deep products may nest: enough for any real tariff, bounded so a hostile body cannot
# make the computation (or the stored event) arbitrarily deep.
MAX_VOLUME_DEPTH = 4
_MAX_I64 = 2**63 - 1
_MAX_ACCOUNT_ID = _MAX_I64


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
    rounding: str = DEFAULT_ROUNDING

    def __post_init__(self) -> None:
        if self.q <= 0 or self.p < 0:
            raise InvalidShare(f"a share needs p >= 0 and q > 0, got {self.p}/{self.q}")
        if self.p > _MAX_I64 or self.q > _MAX_I64:
            raise InvalidShare(f"a share's p and q are 64-bit integers, got {self.p}/{self.q}")
        if self.rounding not in ROUNDING_METHODS:
            raise InvalidShare(
                f"unknown rounding {self.rounding!r}; known: {sorted(ROUNDING_METHODS)}")

    def of(self, amount: int) -> int:
        if self.rounding == HALF_AWAY:
            return divide_round_half_away_from_zero(amount * self.p, self.q)
        return divide_round_half_towards_zero(amount * self.p, self.q)


@dataclass(frozen=True)
class FixedVolume:
    fixed: Money


@dataclass(frozen=True)
class ShareVolume:
    share: Share


@dataclass(frozen=True)
class Product:
    """`function` over the computed amounts of `volumes` (all in the operation's currency).

    The contract lists the volumes, so `sum_of` counts a volume listed twice twice (the core's
    IDL holds a set, where the same volume cannot appear twice at all).
    """

    function: str
    volumes: tuple[Volume, ...]

    def __post_init__(self) -> None:
        if self.function not in PRODUCT_FUNCTIONS:
            raise InvalidCashFlow(
                f"unknown product {self.function!r}; known: {sorted(PRODUCT_FUNCTIONS)}")
        if not self.volumes:
            raise InvalidCashFlow(f"a {self.function} product needs at least one volume")
        if _depth(self) > MAX_VOLUME_DEPTH:
            raise InvalidCashFlow(f"products nest at most {MAX_VOLUME_DEPTH} deep")


@dataclass(frozen=True)
class ProductVolume:
    product: Product


Volume = FixedVolume | ShareVolume | ProductVolume


def _depth(volume: Product | Volume) -> int:
    if isinstance(volume, ProductVolume):
        volume = volume.product
    if isinstance(volume, Product):
        return 1 + max(_depth(inner) for inner in volume.volumes)
    return 0


@dataclass(frozen=True)
class PostingTemplate:
    source: CashFlowAccount
    destination: CashFlowAccount
    volume: Volume
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
        for fixed in _fixed_amounts(posting.volume):
            if fixed.currency != currency:
                raise InvalidCashFlow(
                    f"posting {posting.details!r} is fixed in {fixed.currency}, "
                    f"the payment is in {currency}")


def _fixed_amounts(volume: Volume) -> list[Money]:
    if isinstance(volume, FixedVolume):
        return [volume.fixed]
    if isinstance(volume, ProductVolume):
        return [m for inner in volume.product.volumes for m in _fixed_amounts(inner)]
    return []


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


def _volume(volume: Volume, cost: Money) -> Money:
    """The volume's amount for an operation of `cost` (Money refuses a sum past 64 bits)."""
    return cost.with_amount(_amount(volume, cost.amount))


def _amount(volume: Volume, amount: int) -> int:
    if isinstance(volume, FixedVolume):
        return volume.fixed.amount
    if isinstance(volume, ShareVolume):
        return volume.share.of(amount)
    amounts = [_amount(inner, amount) for inner in volume.product.volumes]
    function = volume.product.function
    if function == "min_of":
        return min(amounts)
    if function == "max_of":
        return max(amounts)
    return sum(amounts)


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


def divide_round_half_away_from_zero(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded to the nearest integer, a tie away from zero; exact."""
    if denominator == 0:
        raise ZeroDivisionError("division by zero")
    negative = (numerator < 0) != (denominator < 0)
    quotient, remainder = divmod(abs(numerator), abs(denominator))
    if 2 * remainder >= abs(denominator):
        quotient += 1
    return -quotient if negative else quotient


def divide_round_half_towards_zero(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded to the nearest integer, a tie towards zero; exact."""
    if denominator == 0:
        raise ZeroDivisionError("division by zero")
    negative = (numerator < 0) != (denominator < 0)
    quotient, remainder = divmod(abs(numerator), abs(denominator))
    if 2 * remainder > abs(denominator):
        quotient += 1
    return -quotient if negative else quotient
