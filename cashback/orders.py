"""Reading and writing `order_clears`: an order's target cashback and its charge status."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import Text, bindparam, func, select, text, update
from sqlalchemy.engine import Row

from cashback.tables import order_clears
from foundation.errors import TypedError
from workers.db import Tx, transaction


class ChargeStatus(StrEnum):
    PENDING = "pending"  # queued, nothing sent for the current version yet
    CHARGING = "charging"  # update sent, invoice not terminal
    CHARGED = "charged"  # the invoice's cashback equals the target, nothing in progress
    FAILED = "failed"  # retries exhausted or a fatal error; `error` says which


@dataclass(frozen=True)
class Order:
    order_id: str
    service: str
    currency: str
    yandex_uid: str
    cashback_by_source: dict[str, Decimal]
    version: int
    charge_status: ChargeStatus
    last_operation_id: str | None
    error: dict[str, str] | None
    wallet_id: str | None
    billing_service: str | None
    payload: dict[str, Any] | None
    # Operator retries of the current version: the n-th charges `<order_id>/v<version>/manual/<n>`.
    manual_retries: int = 0


class OrderNotFound(TypedError):
    code = "order_not_found"
    http_status = 404


class Busy:
    """The order row is locked by someone else (a register in progress)."""


BUSY = Busy()


# The statements the charge path runs for every order are built once, with bound parameters:
# building and cache-keying a statement costs as much CPU as running it.
_BY_KEY = (order_clears.c.order_id == bindparam("key_order_id"),
           order_clears.c.service == bindparam("key_service"))
_SELECT = select(order_clears).where(*_BY_KEY)
_LOCK = _SELECT.with_for_update()
_LOCK_UNLESS_BUSY = _SELECT.with_for_update(skip_locked=True)
_REMEMBER_WALLET = update(order_clears).where(*_BY_KEY).values(
    wallet_id=bindparam("new_wallet_id"), updated_at=func.now())
_RECORD_CHARGE = update(order_clears).where(*_BY_KEY).values(
    charge_status=bindparam("new_status"),
    error=bindparam("new_error", type_=order_clears.c.error.type),
    # None keeps the operation id recorded before.
    last_operation_id=func.coalesce(bindparam("new_operation_id", type_=Text),
                                    order_clears.c.last_operation_id),
    updated_at=func.now(),
)
_COLUMNS = ("order_id", "service", "currency", "yandex_uid", "cashback_by_source", "version",
            "charge_status", "last_operation_id", "error", "wallet_id", "billing_service",
            "payload", "manual_retries")
# SQLAlchemy compiles PostgreSQL's INSERT ... ON CONFLICT afresh on every call; as text it is
# compiled once.
_INSERT_NEW = text(
    f"INSERT INTO order_clears ({', '.join(_COLUMNS)})"
    f" VALUES ({', '.join(':' + c for c in _COLUMNS)})"
    " ON CONFLICT (order_id, service) DO NOTHING RETURNING version"
).bindparams(*(bindparam(c, type_=order_clears.c[c].type) for c in _COLUMNS))


def get(order_id: str, service: str) -> Order | None:
    with transaction() as tx:
        row = tx.conn.execute(_SELECT, _key(order_id, service)).first()
    return _order(row) if row else None


def lock(tx: Tx, order_id: str, service: str) -> Order | None:
    row = tx.conn.execute(_LOCK, _key(order_id, service)).first()
    return _order(row) if row else None


def lock_unless_busy(tx: Tx, order_id: str, service: str) -> Order | Busy | None:
    """Lock the row without waiting: a waiting job that holds its STQ row could deadlock
    with a register that holds this row and waits to queue that very task."""
    row = tx.conn.execute(_LOCK_UNLESS_BUSY, _key(order_id, service)).first()
    if row is not None:
        return _order(row)
    exists = tx.conn.execute(_SELECT, _key(order_id, service)).first() is not None
    return BUSY if exists else None


def insert(tx: Tx, order: Order) -> bool:
    """Insert a new order; False when it exists already."""
    return tx.conn.execute(_INSERT_NEW, _columns(order)).first() is not None


def save(tx: Tx, order: Order) -> None:
    """Overwrite a locked order's row with `order`."""
    tx.conn.execute(
        update(order_clears)
        .where(order_clears.c.order_id == order.order_id,
               order_clears.c.service == order.service)
        .values(**_columns(order), updated_at=func.now())
    )


def record_charge(tx: Tx, order: Order, status: ChargeStatus, *,
                  last_operation_id: str | None = None,
                  error: dict[str, str] | None = None) -> None:
    """The charge job's outcome; `last_operation_id` None keeps the one recorded."""
    tx.conn.execute(_RECORD_CHARGE, {**_key(order.order_id, order.service),
                                     "new_status": status.value, "new_error": error,
                                     "new_operation_id": last_operation_id})


def remember_wallet(tx: Tx, order: Order, wallet_id: str) -> None:
    """Keep the wallet found for the user so every later version charges the same one."""
    tx.conn.execute(_REMEMBER_WALLET, {**_key(order.order_id, order.service),
                                       "new_wallet_id": wallet_id})


def _key(order_id: str, service: str) -> dict[str, str]:
    return {"key_order_id": order_id, "key_service": service}


def _columns(order: Order) -> dict[str, Any]:
    return {
        "order_id": order.order_id,
        "service": order.service,
        "currency": order.currency,
        "yandex_uid": order.yandex_uid,
        "cashback_by_source": {s: format(v, "f") for s, v in order.cashback_by_source.items()},
        "version": order.version,
        "charge_status": order.charge_status.value,
        "last_operation_id": order.last_operation_id,
        "error": order.error,
        "wallet_id": order.wallet_id,
        "billing_service": order.billing_service,
        "payload": order.payload,
        "manual_retries": order.manual_retries,
    }


def _order(row: Row) -> Order:
    return Order(
        order_id=row.order_id,
        service=row.service,
        currency=row.currency,
        yandex_uid=row.yandex_uid,
        cashback_by_source={s: Decimal(v) for s, v in row.cashback_by_source.items()},
        version=row.version,
        charge_status=ChargeStatus(row.charge_status),
        last_operation_id=row.last_operation_id,
        error=row.error,
        wallet_id=row.wallet_id,
        billing_service=row.billing_service,
        payload=row.payload,
        manual_retries=row.manual_retries,
    )
