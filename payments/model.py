"""Domain values of a payment other than money and cash flows: ids, route, flow, capture data,
session targets, statuses, and the request a payment was created from."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from clients.limiter import Payer  # the limiter's view of the payer is the payment's
from payments.cashflow import CashFlowTemplate, check_template
from payments.errors import (
    InvalidCart,
    InvalidFlow,
    InvalidId,
    InvalidLimit,
    InvalidRoute,
    InvalidValue,
)
from payments.money import Money

# Integer ranges of the peers' IDL: route refs are i32, limit versions and boundaries i64.
_I32 = (-(2**31), 2**31 - 1)
_I64 = (-(2**63), 2**63 - 1)

# Ids become segments of dotted complex ids (machine, plan, session, limiter operation) and
# URL path segments, so the separator and slashes are refused rather than escaped.
_ID = re.compile(r"[A-Za-z0-9_:-]{1,100}")

TIMEOUT_REASON = "Timeout"


def check_id(what: str, value: str) -> str:
    if not _ID.fullmatch(value):
        raise InvalidId(
            f"{what} {value!r}: 1-100 characters of letters, digits, '_', '-', ':' expected")
    return value


def _within(value: int, bounds: tuple[int, int]) -> bool:
    return bounds[0] <= value <= bounds[1]


@dataclass(frozen=True)
class Route:
    provider_id: int
    terminal_id: int

    def __post_init__(self) -> None:
        for what, value in (("provider_id", self.provider_id), ("terminal_id", self.terminal_id)):
            if not _within(value, _I32):
                raise InvalidRoute(f"route {what} {value} does not fit a 32-bit integer")


@dataclass(frozen=True)
class TurnoverLimit:
    """A limit of the route; the payment fails when the limit's value after the hold exceeds
    `upper_boundary` (minor units of the payment currency)."""

    id: str
    version: int | None = None
    upper_boundary: int | None = None

    def __post_init__(self) -> None:
        if not self.id:
            raise InvalidValue("a turnover limit needs a non-empty id")
        for what, value in (("version", self.version), ("upper_boundary", self.upper_boundary)):
            if value is not None and not _within(value, _I64):
                raise InvalidLimit(f"limit {self.id!r}: {what} {value} does not fit 64 bits")


@dataclass(frozen=True)
class Failure:
    """Why a payment failed: a machine-readable code and a text for people."""

    code: str
    reason: str | None = None


@dataclass(frozen=True)
class HoldFlow:
    on_hold_expiration: str
    held_until: datetime

    def __post_init__(self) -> None:
        if self.on_hold_expiration not in ("capture", "cancel"):
            raise InvalidFlow(
                f"on_hold_expiration must be capture or cancel, got {self.on_hold_expiration!r}")
        if self.held_until.tzinfo is None:
            raise InvalidFlow("held_until needs a time zone offset (RFC 3339)")


@dataclass(frozen=True)
class TransactionInfo:
    id: str
    extra: dict[str, str]


@dataclass(frozen=True)
class CartLine:
    product: str
    quantity: int
    price: Money

    def __post_init__(self) -> None:
        if not _within(self.quantity, _I32):
            raise InvalidCart(f"line {self.product!r}: quantity does not fit a 32-bit integer")


@dataclass(frozen=True)
class Cart:
    lines: tuple[CartLine, ...]

    def total(self) -> int:
        return sum(line.quantity * line.price.amount for line in self.lines)

    def check_total(self, cost: Money) -> None:
        """A cart must add up to the amount it describes, in its currency."""
        if not self.lines:
            raise InvalidCart("a cart needs at least one line")
        for line in self.lines:
            if line.quantity <= 0:
                raise InvalidCart(f"line {line.product!r}: quantity must be positive")
            if line.price.currency != cost.currency:
                raise InvalidCart(f"line {line.product!r} is priced in {line.price.currency}, "
                                  f"the amount in {cost.currency}")
        total = self.total()
        if total != cost.amount:
            raise InvalidCart(f"the cart adds up to {total}, the amount is {cost.amount}")


@dataclass(frozen=True)
class CaptureData:
    reason: str
    cost: Money
    cart: Cart | None = None


@dataclass(frozen=True)
class Target:
    """What a provider session drives the payment to: `captured(reason, cost, cart)` or
    `cancelled(reason)`."""

    status: Literal["captured", "cancelled"]
    reason: str
    cost: Money | None = None
    cart: Cart | None = None

    @classmethod
    def captured(cls, data: CaptureData) -> Target:
        return cls("captured", data.reason, data.cost, data.cart)

    @classmethod
    def cancelled(cls, reason: str) -> Target:
        return cls("cancelled", reason)


@dataclass(frozen=True)
class Status:
    """pending | processed | captured(reason, cost, cart) | cancelled(reason) | failed(failure)

    A payment fails when its hold is refused or overflows a limit, or when an operator fails
    its provider session; the rest of the capture chain stops the machine for an operator.
    """

    status: Literal["pending", "processed", "captured", "cancelled", "failed"]
    reason: str | None = None
    cost: Money | None = None
    cart: Cart | None = None
    failure: Failure | None = None

    @classmethod
    def of_target(cls, target: Target) -> Status:
        return cls(target.status, target.reason, target.cost, target.cart)

    @classmethod
    def failed(cls, failure: Failure) -> Status:
        return cls("failed", failure=failure)


PENDING = Status("pending")
PROCESSED = Status("processed")


@dataclass(frozen=True)
class PaymentRequest:
    """A payment as the register / hold command described it (flow None: registered)."""

    invoice_id: str
    payment_id: str
    party_id: str
    shop_id: str
    cost: Money
    route: Route
    cash_flow: CashFlowTemplate
    turnover_limits: tuple[TurnoverLimit, ...] = ()
    transaction_info: TransactionInfo | None = None
    flow: HoldFlow | None = None
    payer: Payer | None = None
    domain_revision: int | None = None  # of the domain config the payment was made under

    def __post_init__(self) -> None:
        check_id("invoice_id", self.invoice_id)
        check_id("payment_id", self.payment_id)
        check_template(self.cash_flow, self.cost.currency)
        if self.domain_revision is not None and not _within(self.domain_revision, _I64):
            raise InvalidValue(f"domain_revision {self.domain_revision} does not fit 64 bits")
