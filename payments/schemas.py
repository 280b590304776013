"""Request bodies of the payment commands, shared by the HTTP API and the Celery tasks.

The models check shape and enumerations (field names, JSON types, `on_hold_expiration`, an
aware `held_until`: a mismatch is a 422). Values are checked when a body becomes domain objects
(`to_domain`), which raises typed 400 errors: a negative or fractional amount, an unknown
currency or account type, a malformed id.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_validator,
)

from payments.cashflow import (
    CashFlowAccount,
    FixedVolume,
    PostingTemplate,
    Share,
    ShareVolume,
)
from payments.decisions import CaptureCommand
from payments.errors import InvalidAmount
from payments.model import (
    Cart,
    CartLine,
    HoldFlow,
    PaymentRequest,
    Route,
    TransactionInfo,
    TurnoverLimit,
    check_id,
)
from payments.money import Money


def _text() -> Any:
    return Field(min_length=1, max_length=1000)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# A JSON number written with a fraction or an exponent arrives as a float; from 2**53 on a
# float no longer holds every whole number, so such an amount may have lost its last digits.
_EXACT_FLOAT_LIMIT = 2**53


class MoneyBody(_Body):
    # A fractional JSON number passes the schema and is refused as a value (400).
    amount: StrictInt | StrictFloat
    currency: StrictStr = Field(max_length=8)

    def to_domain(self) -> Money:
        amount = self.amount
        if isinstance(amount, float):
            if abs(amount) >= _EXACT_FLOAT_LIMIT:
                raise InvalidAmount(f"amount {amount!r} is not exact as a JSON number with a "
                                    "fraction or exponent: send whole minor units as an integer")
            return Money.of(Decimal(str(amount)), self.currency)
        return Money.of(amount, self.currency)


class AccountBody(_Body):
    account_id: StrictInt
    type: StrictStr = Field(max_length=64)

    def to_domain(self) -> CashFlowAccount:
        return CashFlowAccount(self.account_id, self.type)


class ShareBody(_Body):
    p: StrictInt
    q: StrictInt
    rounding: StrictStr = "round_half_towards_zero"


class VolumeBody(_Body):
    """Exactly one of `fixed` (an amount) and `share` (p/q of the operation amount)."""

    fixed: MoneyBody | None = None
    share: ShareBody | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> VolumeBody:
        if (self.fixed is None) == (self.share is None):
            raise ValueError("a volume is either {'fixed': Money} or {'share': {p, q, rounding}}")
        return self

    def to_domain(self) -> FixedVolume | ShareVolume:
        if self.fixed is not None:
            return FixedVolume(self.fixed.to_domain())
        assert self.share is not None
        return ShareVolume(Share(self.share.p, self.share.q, self.share.rounding))


class PostingBody(_Body):
    source: AccountBody
    destination: AccountBody
    volume: VolumeBody
    details: StrictStr | None = Field(None, max_length=1000)

    def to_domain(self) -> PostingTemplate:
        return PostingTemplate(self.source.to_domain(), self.destination.to_domain(),
                               self.volume.to_domain(), self.details)


class RouteBody(_Body):
    provider_id: StrictInt
    terminal_id: StrictInt


class TurnoverLimitBody(_Body):
    id: StrictStr = Field(max_length=256)
    version: StrictInt | None = None


class TransactionInfoBody(_Body):
    id: StrictStr = Field(min_length=1, max_length=256)
    extra: dict[str, StrictStr] = Field(default_factory=dict)


class RegisterBody(_Body):
    """`POST /v1/payments/register` and the `payments.register` task."""

    invoice_id: StrictStr
    payment_id: StrictStr
    party_id: StrictStr = _text()
    shop_id: StrictStr = _text()
    cost: MoneyBody
    route: RouteBody
    cash_flow: list[PostingBody] = Field(max_length=100)
    turnover_limits: list[TurnoverLimitBody] = Field(default_factory=list, max_length=100)
    transaction_info: TransactionInfoBody | None = None

    def to_domain(self) -> PaymentRequest:
        return PaymentRequest(
            invoice_id=self.invoice_id,
            payment_id=self.payment_id,
            party_id=self.party_id,
            shop_id=self.shop_id,
            cost=self.cost.to_domain(),
            route=Route(self.route.provider_id, self.route.terminal_id),
            cash_flow=tuple(posting.to_domain() for posting in self.cash_flow),
            turnover_limits=tuple(TurnoverLimit(limit.id, limit.version)
                                  for limit in self.turnover_limits),
            transaction_info=(None if self.transaction_info is None else TransactionInfo(
                self.transaction_info.id, dict(self.transaction_info.extra))),
            flow=None,
        )


class FlowBody(_Body):
    on_hold_expiration: Literal["capture", "cancel"]
    held_until: AwareDatetime


class HoldBody(RegisterBody):
    """`POST /v1/payments` and the `payments.start_hold` task: a register body plus the flow."""

    flow: FlowBody

    def to_domain(self) -> PaymentRequest:
        flow = HoldFlow(self.flow.on_hold_expiration, self.flow.held_until)
        return replace(super().to_domain(), flow=flow)


class CartLineBody(_Body):
    product: StrictStr = _text()
    quantity: StrictInt
    price: MoneyBody


class CartBody(_Body):
    lines: list[CartLineBody] = Field(max_length=1000)

    def to_domain(self) -> Cart:
        return Cart(tuple(CartLine(line.product, line.quantity, line.price.to_domain())
                          for line in self.lines))


class CaptureBody(_Body):
    """`POST .../capture`: no `cost` means the whole payment cost."""

    reason: StrictStr = _text()
    cost: MoneyBody | None = None
    cart: CartBody | None = None

    def to_domain(self) -> CaptureCommand:
        return CaptureCommand(
            self.reason,
            None if self.cost is None else self.cost.to_domain(),
            None if self.cart is None else self.cart.to_domain(),
        )


class CancelBody(_Body):
    reason: StrictStr = _text()


class RepairBody(_Body):
    action: Literal["resume"]


class PaymentIds(_Body):
    invoice_id: StrictStr
    payment_id: StrictStr

    def checked(self) -> tuple[str, str]:
        return check_id("invoice_id", self.invoice_id), check_id("payment_id", self.payment_id)


class CaptureTaskKwargs(CaptureBody, PaymentIds):
    """`payments.capture` kwargs: the payment's ids plus the capture body."""

    def body(self) -> CaptureBody:
        return CaptureBody(reason=self.reason, cost=self.cost, cart=self.cart)


class CancelTaskKwargs(CancelBody, PaymentIds):
    """`payments.cancel` kwargs: the payment's ids plus the cancel body."""

    def body(self) -> CancelBody:
        return CancelBody(reason=self.reason)
