"""Client of the Limiter service (turnover limits), batch API as current hellgate uses it.

Every call names an operation id and the limit changes it touches, plus the payment context
the limiter computes amounts from (docs/wire.md 3.4): the context always claims the payment
is `captured`; only a commit carries the captured cost. All four calls are keyed by
operation id + limit ids, so they are retried on an unknown result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from clients.thrift_codec import load_idl
from clients.woody import (  # InvalidRequest: base.InvalidRequest, which both peers raise
    BusinessError,
    InvalidRequest,
    ServiceClient,
)

limiter_thrift = load_idl("limiter")
base_thrift = limiter_thrift.base
domain_thrift = limiter_thrift.domain
payproc_thrift = limiter_thrift.limiter_payproc_context
limiter_base_thrift = limiter_thrift.limiter_base

ON_HOLD_EXPIRATION = {"cancel": domain_thrift.OnHoldExpiration.cancel,
                      "capture": domain_thrift.OnHoldExpiration.capture}


def operation_id(provider_id: int, terminal_id: int, invoice_id: str, payment_id: str,
                 iteration: int) -> str:
    """The operation id hellgate uses for a payment's limits on one route attempt."""
    return (f"limiter.batch-request.{provider_id}.{terminal_id}."
            f"{invoice_id}.{payment_id}.{iteration}")


@dataclass(frozen=True)
class LimitChange:
    """One turnover limit touched by an operation; `version` is the limit's domain revision."""

    id: str
    version: int | None = None


@dataclass(frozen=True)
class Limit:
    id: str
    amount: int
    creation_time: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class BankCard:
    """The payer's card as the limiter sees it (a token, never the card number)."""

    token: str
    bin: str | None = None
    last_digits: str | None = None
    payment_system: str | None = None


@dataclass(frozen=True)
class Payer:
    """Who pays: limits scoped by card, email or phone count the payment against them."""

    bank_card: BankCard | None = None
    email: str | None = None
    phone_number: str | None = None


@dataclass(frozen=True)
class PaymentContext:
    """What the limiter needs to know about the payment; amounts in minor units.

    `captured_amount` is set only for a commit (the cash actually captured); `flow_hold` is
    `(on_hold_expiration, held_until)` for a hold payment, None for an instant one.
    """

    invoice_id: str
    payment_id: str
    party_id: str
    shop_id: str
    created_at: str
    domain_revision: int
    cost_amount: int
    currency: str
    provider_id: int
    terminal_id: int
    captured_amount: int | None = None
    flow_hold: tuple[str, str] | None = None
    payer: Payer | None = None

    def __post_init__(self) -> None:
        if self.flow_hold is not None and self.flow_hold[0] not in ON_HOLD_EXPIRATION:
            raise ValueError(f"on_hold_expiration must be one of {sorted(ON_HOLD_EXPIRATION)},"
                             f" got {self.flow_hold[0]!r}")


@dataclass(frozen=True)
class AmountBound:
    value: int
    inclusive: bool


class LimiterError(BusinessError):
    """A business answer of the Limiter; `code` is a stable machine-readable name."""

    code: ClassVar[str]


class LimitNotFound(LimiterError):
    code = "limit_not_found"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("LimitNotFound", **kwargs)


class LimitChangeNotFound(LimiterError):
    code = "limit_change_not_found"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("LimitChangeNotFound", **kwargs)


class InvalidOperationCurrency(LimiterError):
    code = "invalid_operation_currency"

    def __init__(self, currency: str, expected_currency: str, **kwargs: Any) -> None:
        self.currency = currency
        self.expected_currency = expected_currency
        super().__init__("InvalidOperationCurrency",
                         detail=f"{currency}, expected {expected_currency}", **kwargs)


class ForbiddenOperationAmount(LimiterError):
    code = "forbidden_operation_amount"

    def __init__(self, amount: int, lower: AmountBound | None = None,
                 upper: AmountBound | None = None, **kwargs: Any) -> None:
        self.amount = amount
        self.lower = lower
        self.upper = upper
        super().__init__("ForbiddenOperationAmount",
                         detail=f"{amount} outside [{lower}, {upper}]", **kwargs)


class OperationContextNotSupported(LimiterError):
    code = "operation_context_not_supported"

    def __init__(self, context_type: str, **kwargs: Any) -> None:
        self.context_type = context_type
        super().__init__("OperationContextNotSupported", detail=context_type, **kwargs)


class PaymentToolNotSupported(LimiterError):
    code = "payment_tool_not_supported"

    def __init__(self, payment_tool: str, **kwargs: Any) -> None:
        self.payment_tool = payment_tool
        super().__init__("PaymentToolNotSupported", detail=payment_tool, **kwargs)


def _cash(amount: int, currency: str) -> Any:
    return domain_thrift.Cash(amount=amount,
                              currency=domain_thrift.CurrencyRef(symbolic_code=currency))


def _flow(context: PaymentContext) -> Any:
    if context.flow_hold is None:
        return domain_thrift.InvoicePaymentFlow(instant=domain_thrift.InvoicePaymentFlowInstant())
    on_expiration, held_until = context.flow_hold
    return domain_thrift.InvoicePaymentFlow(hold=domain_thrift.InvoicePaymentFlowHold(
        on_hold_expiration=ON_HOLD_EXPIRATION[on_expiration], held_until=held_until))


def _payer(payer: Payer) -> Any:
    """A payment-resource payer; without a card the tool is an empty payment terminal, the
    smallest tool the IDL accepts. A card's `bin` and `last_digits` are required by the IDL, so
    an unknown one travels as an empty string."""
    card = payer.bank_card
    if card is None:
        tool = domain_thrift.PaymentTool(payment_terminal=domain_thrift.PaymentTerminal())
    else:
        system = (None if card.payment_system is None
                  else domain_thrift.PaymentSystemRef(id=card.payment_system))
        tool = domain_thrift.PaymentTool(bank_card=domain_thrift.BankCard(
            token=card.token, bin=card.bin or "", last_digits=card.last_digits or "",
            payment_system=system))
    return domain_thrift.Payer(payment_resource=domain_thrift.PaymentResourcePayer(
        resource=domain_thrift.DisposablePaymentResource(payment_tool=tool),
        contact_info=domain_thrift.ContactInfo(phone_number=payer.phone_number,
                                               email=payer.email),
    ))


def limit_context(context: PaymentContext) -> Any:
    """The LimitContext of an invoice-payment operation, every field the real IDL requires set.

    Invoice details and due date are not known here; they are filled with the invoice id and
    the payment's creation time (the limiter keys nothing on them).
    """
    cost = _cash(context.cost_amount, context.currency)
    party = domain_thrift.PartyConfigRef(id=context.party_id)
    shop = domain_thrift.ShopConfigRef(id=context.shop_id)
    captured_cost = (None if context.captured_amount is None
                     else _cash(context.captured_amount, context.currency))
    invoice = domain_thrift.Invoice(
        id=context.invoice_id, domain_revision=context.domain_revision, party_ref=party,
        shop_ref=shop, created_at=context.created_at,
        status=domain_thrift.InvoiceStatus(unpaid=domain_thrift.InvoiceUnpaid()),
        details=domain_thrift.InvoiceDetails(product=context.invoice_id),
        due=context.created_at, cost=cost,
    )
    payer = _payer(context.payer or Payer())
    payment = domain_thrift.InvoicePayment(
        id=context.payment_id, created_at=context.created_at,
        status=domain_thrift.InvoicePaymentStatus(
            captured=domain_thrift.InvoicePaymentCaptured(cost=captured_cost)),
        cost=cost, domain_revision=context.domain_revision, flow=_flow(context), payer=payer,
        party_ref=party, shop_ref=shop,
    )
    route = limiter_base_thrift.Route(
        provider=domain_thrift.ProviderRef(id=context.provider_id),
        terminal=domain_thrift.TerminalRef(id=context.terminal_id),
    )
    return limiter_thrift.LimitContext(payment_processing=payproc_thrift.Context(
        op=payproc_thrift.Operation(invoice_payment=payproc_thrift.OperationInvoicePayment()),
        invoice=payproc_thrift.Invoice(
            invoice=invoice, payment=payproc_thrift.InvoicePayment(payment=payment, route=route)),
    ))


def limit_request(operation: str, changes: Sequence[LimitChange]) -> Any:
    return limiter_thrift.LimitRequest(
        operation_id=operation,
        limit_changes=[limiter_thrift.LimitChange(id=c.id, version=c.version) for c in changes],
    )


def _bound(bound: Any) -> AmountBound | None:
    if bound is None:
        return None
    if bound.inclusive is not None:
        return AmountBound(bound.inclusive, inclusive=True)
    return AmountBound(bound.exclusive, inclusive=False)


def _context_type_name(context_type: Any) -> str:
    for spec in (context_type.thrift_spec.values() if context_type is not None else ()):
        if getattr(context_type, spec[1]) is not None:
            return spec[1]
    return "unknown"


def _typed(error: BusinessError) -> BusinessError:
    exc, trace = error.exception, {"exception": error.exception, "trace_id": error.trace_id}
    if isinstance(exc, limiter_thrift.LimitNotFound):
        return LimitNotFound(**trace)
    if isinstance(exc, limiter_thrift.LimitChangeNotFound):
        return LimitChangeNotFound(**trace)
    if isinstance(exc, base_thrift.InvalidRequest):
        return InvalidRequest(exc.errors or [], **trace)
    if isinstance(exc, limiter_thrift.InvalidOperationCurrency):
        return InvalidOperationCurrency(exc.currency, exc.expected_currency, **trace)
    if isinstance(exc, limiter_thrift.ForbiddenOperationAmount):
        allowed = exc.allowed_range
        return ForbiddenOperationAmount(
            exc.amount, lower=_bound(allowed.lower if allowed else None),
            upper=_bound(allowed.upper if allowed else None), **trace)
    if isinstance(exc, limiter_thrift.OperationContextNotSupported):
        return OperationContextNotSupported(_context_type_name(exc.context_type), **trace)
    if isinstance(exc, limiter_thrift.PaymentToolNotSupported):
        return PaymentToolNotSupported(exc.payment_tool, **trace)
    return error


class LimiterClient(ServiceClient):
    """Typed batch calls to the Limiter at `url` (e.g. `http://127.0.0.1:8022/v1/limiter`).

    A call with no changes returns at once without contacting the limiter, as hellgate makes
    no limiter call for a route without turnover limits.
    """

    service = limiter_thrift.Limiter
    typed_error = staticmethod(_typed)

    def _batch(self, method: str, operation: str, changes: Sequence[LimitChange],
               context: PaymentContext) -> Any:
        return self._call(method, {"request": limit_request(operation, changes),
                                   "context": limit_context(context)}, idempotent=True)

    def hold_batch(self, operation_id: str, changes: Sequence[LimitChange],
                   context: PaymentContext) -> list[Limit]:
        """Hold the payment's cost on every limit; the limits' values right after the hold."""
        if not changes:
            return []
        limits = self._batch("HoldBatch", operation_id, changes, context)
        return [_limit(limit) for limit in limits]

    def commit_batch(self, operation_id: str, changes: Sequence[LimitChange],
                     context: PaymentContext) -> None:
        """Commit the held changes; set `context.captured_amount` for a partial capture."""
        if changes:
            self._batch("CommitBatch", operation_id, changes, context)

    def rollback_batch(self, operation_id: str, changes: Sequence[LimitChange],
                       context: PaymentContext) -> None:
        if changes:
            self._batch("RollbackBatch", operation_id, changes, context)

    def get_batch(self, operation_id: str, changes: Sequence[LimitChange],
                  context: PaymentContext) -> list[Limit]:
        """The limits' values as this operation left them."""
        if not changes:
            return []
        limits = self._batch("GetBatch", operation_id, changes, context)
        return [_limit(limit) for limit in limits]


def _limit(limit: Any) -> Limit:
    return Limit(id=limit.id, amount=limit.amount, creation_time=limit.creation_time,
                 description=limit.description)
