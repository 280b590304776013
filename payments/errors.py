"""Answer-type errors of the payment commands (each maps to an HTTP status and a code)."""

from __future__ import annotations

from foundation.errors import TypedError


class InvalidValue(TypedError):
    """A well-formed request carrying a value we cannot accept."""

    code = "invalid_value"
    http_status = 400


class InvalidAmount(InvalidValue):
    code = "invalid_amount"


class UnknownAccountType(InvalidValue):
    code = "unknown_account_type"


class InvalidShare(InvalidValue):
    code = "invalid_share"


class InvalidCashFlow(InvalidValue):
    code = "invalid_cash_flow"


class InvalidId(InvalidValue):
    code = "invalid_id"


class InvalidFlow(InvalidValue):
    code = "invalid_flow"


class InvalidCart(InvalidValue):
    code = "invalid_cart"


class InvalidHoldLifetime(InvalidValue):
    code = "invalid_hold_lifetime"


class InvalidRoute(InvalidValue):
    code = "invalid_route"


class InvalidLimit(InvalidValue):
    code = "invalid_turnover_limit"


class InvalidPaging(InvalidValue):
    code = "invalid_paging"


class InconsistentCurrency(InvalidValue):
    code = "inconsistent_currency"


class AmountExceedsPayment(InvalidValue):
    code = "amount_exceeded_capture_balance"


class PaymentNotFound(TypedError):
    code = "payment_not_found"
    http_status = 404


class InvalidPaymentState(TypedError):
    """The command is not allowed in the payment's current activity or status."""

    code = "invalid_payment_status"
    http_status = 409


class RepairNotApplicable(TypedError):
    """The repair action does not fit the activity the machine failed in."""

    code = "repair_not_applicable"
    http_status = 409


class PaymentConflict(TypedError):
    """A register/hold for existing ids with a body that differs from the stored one."""

    code = "payment_conflict"
    http_status = 409
