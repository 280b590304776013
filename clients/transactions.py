"""Client of the billing `transactions` service: read an invoice, update its cashback.

Amounts travel as decimal strings both ways and are Decimal here; unknown fields in answers
are ignored so the peer can grow its schema. Both calls are idempotent (a read; an update keyed
by its operation id), so both are retried inline on a connection error, a timeout or a 5xx.
Answers: 404 InvoiceNotFound, 409 VersionConflict, 400 BadRequest (all TransactionsRejected),
429 RateLimited (a TransactionsUnavailable: try later).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from clients.json_http import (
    JsonAnswer,
    JsonHttp,
    PeerBadAnswer,
    PeerError,
    PeerRejected,
    PeerUnavailable,
)


class TransactionsError(PeerError):
    code = "transactions_error"


class TransactionsRejected(TransactionsError, PeerRejected):
    """transactions refused the request (4xx): the same request again gets the same answer."""

    code = "transactions_rejected"


class InvoiceNotFound(TransactionsRejected):
    code = "invoice_not_found"


class VersionConflict(TransactionsRejected):
    """The cashback version sent is not the invoice's current one: read it again."""

    code = "version_conflict"


class BadRequest(TransactionsRejected):
    code = "bad_request"


class TransactionsUnavailable(TransactionsError, PeerUnavailable):
    code = "transactions_unavailable"


class RateLimited(TransactionsUnavailable):
    """429: try later. Not retried inline, where it would only add load."""

    code = "rate_limited"


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Item(_Model):
    item_id: str
    amount: Decimal


class PaymentItems(_Model):
    payment_type: str
    items: list[Item] = []


class Reward(_Model):
    source: str
    amount: Decimal


class Operation(_Model):
    operation_id: str
    status: Literal["processing", "done", "failed"]
    created: datetime
    reward: list[Reward] = []


class InvoiceCashback(_Model):
    status: Literal["init", "in-progress", "success", "failed"]
    version: int
    rewarded: list[Reward] = []
    operations: list[Operation] = []


class Invoice(_Model):
    id: str
    currency: str
    status: str
    user_ip: str | None = None
    yandex_uid: str | None = None
    sum_to_pay: list[PaymentItems] = []
    held: list[PaymentItems] = []
    cleared: list[PaymentItems] = []
    cashback: InvoiceCashback


_REJECTIONS: dict[int, type[TransactionsRejected]] = {
    400: BadRequest,
    404: InvoiceNotFound,
    409: VersionConflict,
}


class TransactionsClient:
    def __init__(self, base_url: str, *, timeout_s: float = 5.0, attempts: int = 3,
                 backoff_s: float = 0.05) -> None:
        self._http = JsonHttp(base_url, timeout_s=timeout_s, attempts=attempts,
                              backoff_s=backoff_s, unavailable=TransactionsUnavailable)

    def retrieve_invoice(self, invoice_id: str) -> Invoice:
        answer = self._http.post("/v2/invoice/retrieve", {"id": invoice_id}, idempotent=True)
        _raise_for_status(answer, f"retrieve {invoice_id}")
        try:
            return Invoice.model_validate(answer.body)
        except ValidationError as exc:
            raise PeerBadAnswer(f"invoice {invoice_id}: malformed answer: {exc}") from exc

    def update_cashback(self, *, invoice_id: str, operation_id: str, version: int,
                        yandex_uid: str, user_ip: str, wallet_account: str,
                        reward: Mapping[str, Decimal], billing_service: str | None = None,
                        extra_payload: Mapping[str, Any] | None = None) -> None:
        """Ask for the invoice's cashback to become `reward` (the target total per source).

        Idempotent by `operation_id`: after TransactionsUnavailable the same call may be
        repeated with the same arguments.
        """
        body: dict[str, Any] = {
            "invoice_id": invoice_id,
            "operation_id": operation_id,
            "version": version,
            "yandex_uid": yandex_uid,
            "user_ip": user_ip,
            "wallet_account": wallet_account,
            "reward": [{"source": source, "amount": _amount(source, amount)}
                       for source, amount in sorted(reward.items())],
        }
        if billing_service is not None:
            body["billing_service"] = billing_service
        if extra_payload is not None:
            body["extra_payload"] = dict(extra_payload)
        answer = self._http.post("/v2/cashback/update", body, idempotent=True)
        _raise_for_status(answer, f"update {invoice_id} ({operation_id})")

    def close(self) -> None:
        self._http.close()


def _amount(source: str, amount: Decimal) -> Decimal:
    if not isinstance(amount, Decimal):
        raise TypeError(f"reward of {source!r} must be a Decimal, got {amount!r}")
    if not amount.is_finite():
        raise ValueError(f"reward of {source!r} must be finite, got {amount}")
    return amount


def _raise_for_status(answer: JsonAnswer, what: str) -> None:
    answer.raise_for_status(what, rejected=_REJECTIONS.get(answer.status, TransactionsRejected),
                            unavailable=RateLimited)
