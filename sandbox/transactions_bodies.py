"""The request bodies of the sandbox transactions service: its protocol and its control API."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator

Outcome = Literal["success", "failed"]
CashbackStatus = Literal["init", "in-progress", "success", "failed"]
OperationStatus = Literal["processing", "done", "failed"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class RetrieveBody(_Strict):
    id: StrictStr


class RewardItem(_Strict):
    source: StrictStr = Field(min_length=1)
    amount: Any  # checked by _decimal so a number gets a precise message


class UpdateBody(_Strict):
    invoice_id: StrictStr
    operation_id: StrictStr = Field(min_length=1)
    version: StrictInt
    yandex_uid: StrictStr
    user_ip: StrictStr = Field(min_length=1)
    wallet_account: StrictStr = Field(min_length=1)
    reward: list[RewardItem]
    billing_service: StrictStr | None = None
    extra_payload: dict[str, Any] | None = None


class _ItemSeed(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item_id: StrictStr  # e.g. "ride", "tips", "cashback" (what the user paid with points)
    amount: StrictStr

    @field_validator("amount")
    @classmethod
    def _decimal_string(cls, amount: str) -> str:
        # A seed the client could not parse would test the seed, not the service; a negative
        # item (a refund line) is allowed.
        try:
            if Decimal(amount).is_finite():
                return amount
        except InvalidOperation:
            pass
        raise ValueError(f"item amount must be a finite decimal string, got {amount!r}")


class _PaymentItemsSeed(BaseModel):
    model_config = ConfigDict(extra="forbid")
    payment_type: StrictStr
    items: list[_ItemSeed] = []


class RewardSeed(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: StrictStr
    amount: StrictStr


class _OperationSeed(BaseModel):
    model_config = ConfigDict(extra="forbid")
    operation_id: StrictStr
    status: OperationStatus
    created: datetime | None = None
    reward: list[RewardSeed] = []


class _CashbackSeed(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: CashbackStatus = "init"
    version: StrictInt = 1
    rewarded: list[RewardSeed] = []
    operations: list[_OperationSeed] = []


class InvoiceSeed(BaseModel):
    """Body of `POST /_sandbox/invoices`: an invoice to create (or replace) as it is given."""

    model_config = ConfigDict(extra="forbid")
    id: StrictStr = Field(min_length=1)
    currency: StrictStr = "RUB"
    status: StrictStr = "cleared"
    user_ip: StrictStr | None = None
    yandex_uid: StrictStr | None = None
    sum_to_pay: list[_PaymentItemsSeed] = []
    held: list[_PaymentItemsSeed] = []
    cleared: list[_PaymentItemsSeed] = []
    cashback: _CashbackSeed = _CashbackSeed()


class SettingsBody(BaseModel):
    """Body of `POST /_sandbox/settings`; fields left out keep their value.

    `outcomes` are used one by one by the next accepted updates, then `outcome` for the rest.
    `conflicts`: that many next updates find that another writer has just changed the
    invoice's cashback (its version goes up by one) and are answered 409.
    """

    model_config = ConfigDict(extra="forbid")
    delay_s: float | None = Field(None, ge=0)
    outcome: Outcome | None = None
    outcomes: list[Outcome] | None = None
    conflicts: int | None = Field(None, ge=0)
