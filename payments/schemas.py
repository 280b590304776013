"""Request bodies of the payment commands, shared by the HTTP API and the Celery tasks.

The models check shape and enumerations (field names, JSON types, `on_hold_expiration`, an
aware `held_until`: a mismatch is a 422). Values are checked when a body becomes domain objects
(`to_domain`), which raises typed 400 errors: a negative or fractional amount, an unknown
currency or account type, a malformed id, an integer the peers' IDL cannot carry. Text the
database cannot store (NUL, lone surrogates) is refused by `check_text` before anything else.
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

from clients.limiter import BankCard, Payer
from payments.cashflow import (
    DEFAULT_ROUNDING,
    CashFlowAccount,
    FixedVolume,
    PostingTemplate,
    Product,
    ProductVolume,
    Share,
    ShareVolume,
    Volume,
)
from payments.decisions import CaptureCommand, RepairCommand
from payments.errors import InvalidAmount
from payments.model import (
    Cart,
    CartLine,
    Failure,
    HoldFlow,
    PaymentRequest,
    Route,
    TransactionInfo,
    TurnoverLimit,
    check_id,
)
from payments.money import Money
from workers.text import check_text as check_string


def _text() -> Any:
    return Field(min_length=1, max_length=1000)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def check_text(body: BaseModel) -> None:
    """Every string of the body (dict keys included) storable as PostgreSQL text and JSONB:
    no NUL character and no lone surrogate (which JSON's `\\ud800` escapes can produce)."""
    _check_text(body.model_dump(), "body")


def _check_text(value: Any, path: str) -> None:
    if isinstance(value, str):
        check_string(value, path)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, f"{path} key")
            _check_text(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_text(item, f"{path}[{index}]")


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
    # Absent: the processing core's default.
    rounding: StrictStr = Field(DEFAULT_ROUNDING, max_length=64)


class ProductBody(_Body):
    """Exactly one of `min_of`, `max_of`, `sum_of`: a list of volumes."""

    min_of: list[VolumeBody] | None = Field(None, max_length=100)
    max_of: list[VolumeBody] | None = Field(None, max_length=100)
    sum_of: list[VolumeBody] | None = Field(None, max_length=100)

    @model_validator(mode="after")
    def _one_function(self) -> ProductBody:
        given = [name for name in ("min_of", "max_of", "sum_of") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("a product is exactly one of min_of, max_of, sum_of")
        return self

    def to_domain(self) -> Product:
        for function in ("min_of", "max_of", "sum_of"):
            volumes = getattr(self, function)
            if volumes is not None:
                return Product(function, tuple(volume.to_domain() for volume in volumes))
        raise AssertionError("the validator guarantees one function")


class VolumeBody(_Body):
    """Exactly one of `fixed` (an amount), `share` (p/q of the operation amount) and `product`
    (min, max or sum of other volumes)."""

    fixed: MoneyBody | None = None
    share: ShareBody | None = None
    product: ProductBody | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> VolumeBody:
        if sum(kind is not None for kind in (self.fixed, self.share, self.product)) != 1:
            raise ValueError("a volume is exactly one of {'fixed': Money}, "
                             "{'share': {p, q, rounding?}} and {'product': {min_of|max_of|sum_of}}")
        return self

    def to_domain(self) -> Volume:
        if self.fixed is not None:
            return FixedVolume(self.fixed.to_domain())
        if self.share is not None:
            return ShareVolume(Share(self.share.p, self.share.q, self.share.rounding))
        assert self.product is not None
        return ProductVolume(self.product.to_domain())


ProductBody.model_rebuild()


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
    upper_boundary: StrictInt | None = None


class BankCardBody(_Body):
    token: StrictStr = Field(min_length=1, max_length=1000)
    bin: StrictStr | None = Field(None, max_length=16)
    last_digits: StrictStr | None = Field(None, max_length=16)
    payment_system: StrictStr | None = Field(None, max_length=100)


class PaymentToolBody(_Body):
    bank_card: BankCardBody


class PayerBody(_Body):
    payment_tool: PaymentToolBody
    email: StrictStr | None = Field(None, max_length=1000)
    phone_number: StrictStr | None = Field(None, max_length=100)

    def to_domain(self) -> Payer:
        card = self.payment_tool.bank_card
        return Payer(BankCard(card.token, card.bin, card.last_digits, card.payment_system),
                     self.email, self.phone_number)


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
    # Required (the contract lists it without "optional"); an empty list is fine.
    turnover_limits: list[TurnoverLimitBody] = Field(max_length=100)
    transaction_info: TransactionInfoBody | None = None
    payer: PayerBody | None = None
    # The domain revision the payment was made under; the Limiter context carries it.
    domain_revision: StrictInt | None = None

    def to_domain(self) -> PaymentRequest:
        return PaymentRequest(
            invoice_id=self.invoice_id,
            payment_id=self.payment_id,
            party_id=self.party_id,
            shop_id=self.shop_id,
            cost=self.cost.to_domain(),
            route=Route(self.route.provider_id, self.route.terminal_id),
            cash_flow=tuple(posting.to_domain() for posting in self.cash_flow),
            turnover_limits=tuple(TurnoverLimit(limit.id, limit.version, limit.upper_boundary)
                                  for limit in self.turnover_limits),
            transaction_info=(None if self.transaction_info is None else TransactionInfo(
                self.transaction_info.id, dict(self.transaction_info.extra))),
            flow=None,
            payer=None if self.payer is None else self.payer.to_domain(),
            domain_revision=self.domain_revision,
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
    """`POST .../capture`: no `cost` means the cart's total, or without a cart the whole
    payment cost."""

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


class FailureBody(_Body):
    code: StrictStr = Field(min_length=1, max_length=256)
    reason: StrictStr = Field(max_length=1000)


class RepairBody(_Body):
    """`POST .../repair`: the action, its data, and optionally who repairs and why."""

    action: Literal["resume", "fulfill_session", "fail_session"]
    trx_id: StrictStr | None = Field(None, min_length=1, max_length=256)
    failure: FailureBody | None = None
    operator: StrictStr | None = Field(None, max_length=256)
    reason: StrictStr | None = Field(None, max_length=1000)

    @model_validator(mode="after")
    def _fields_of_the_action(self) -> RepairBody:
        if (self.action == "fail_session") != (self.failure is not None):
            raise ValueError("'failure' is required for fail_session and only for it")
        if self.trx_id is not None and self.action != "fulfill_session":
            raise ValueError("'trx_id' belongs to fulfill_session only")
        return self

    def to_domain(self) -> RepairCommand:
        failure = (None if self.failure is None
                   else Failure(self.failure.code, self.failure.reason))
        return RepairCommand(self.action, self.trx_id, failure, self.operator, self.reason)


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
