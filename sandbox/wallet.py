"""An in-memory wallet service: wallets per user and currency, with balances.

`GET /v1/balances?yandex_uid=&currencies=RUB[,USD]` lists the user's wallets in those
currencies; `POST /v1/create {yandex_uid, currency, user_ip}` creates the user's current wallet
in the currency (`w/<uuid>`), or returns the one that exists. `POST /_sandbox/wallets
{yandex_uid, currency, wallet_id?, legacy?, balance?}` seeds a wallet, e.g. a legacy `z...` one.
Fault operations are named `balances <yandex_uid>` and `create <yandex_uid>` (for `match`).
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from clients.json_http import to_wire
from sandbox.control import (
    CallLog,
    control_routes,
    error,
    parse_control_body,
    sandbox_app,
)
from sandbox.faults import JSON_FAULTS, Faults
from sandbox.json_peer import answer
from clients.wallet import LEGACY_PREFIX

_CURRENCY = r"^[A-Z]{3}$"


class CreateRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    yandex_uid: str = Field(min_length=1)
    currency: str = Field(pattern=_CURRENCY)
    user_ip: str | None = None


class SeedWallet(BaseModel):
    """Body of `POST /_sandbox/wallets`; `legacy` gives a generated id a `z` prefix."""

    model_config = ConfigDict(extra="forbid")
    yandex_uid: str = Field(min_length=1)
    currency: str = Field(pattern=_CURRENCY)
    wallet_id: str | None = Field(None, min_length=1)
    legacy: bool = False
    balance: Decimal = Decimal(0)


@dataclass
class _Wallet:
    wallet_id: str
    yandex_uid: str
    currency: str
    balance: Decimal

    @property
    def legacy(self) -> bool:
        return self.wallet_id.startswith(LEGACY_PREFIX)

    def to_json(self) -> dict[str, str]:
        return {"wallet_id": self.wallet_id, "currency": self.currency,
                "balance": to_wire(self.balance)}


class WalletExists(ValueError):
    """A seeded wallet id that is already taken."""


class WalletState:
    """Wallets in creation order; every operation takes one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wallets: list[_Wallet] = []

    def reset(self) -> None:
        with self._lock:
            self._wallets = []

    def balances(self, yandex_uid: str, currencies: set[str]) -> list[dict[str, str]]:
        with self._lock:
            return [w.to_json() for w in self._wallets
                    if w.yandex_uid == yandex_uid and w.currency in currencies]

    def create(self, request: CreateRequest) -> str:
        with self._lock:
            for wallet in self._wallets:
                if (wallet.yandex_uid, wallet.currency) == (request.yandex_uid, request.currency) \
                        and not wallet.legacy:
                    return wallet.wallet_id
            wallet = _Wallet(f"w/{uuid.uuid4()}", request.yandex_uid, request.currency,
                             Decimal(0))
            self._wallets.append(wallet)
            return wallet.wallet_id

    def seed(self, spec: SeedWallet) -> dict[str, str]:
        prefix = LEGACY_PREFIX if spec.legacy else "w/"
        wallet_id = spec.wallet_id or f"{prefix}{uuid.uuid4().hex}"
        with self._lock:
            if any(w.wallet_id == wallet_id for w in self._wallets):
                raise WalletExists(f"wallet {wallet_id} exists")
            wallet = _Wallet(wallet_id, spec.yandex_uid, spec.currency, spec.balance)
            self._wallets.append(wallet)
            return wallet.to_json()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"wallets": [{**w.to_json(), "yandex_uid": w.yandex_uid, "legacy": w.legacy}
                                for w in self._wallets]}


def create_app(state: WalletState | None = None, faults: Faults | None = None) -> Starlette:
    """The wallet service double, with control under `/_sandbox/`."""
    state = state or WalletState()
    faults = faults or Faults(JSON_FAULTS)
    calls = CallLog()

    async def balances(request: Request) -> Response:
        yandex_uid = request.query_params.get("yandex_uid", "")
        currencies = {c for c in request.query_params.get("currencies", "").split(",") if c}
        if not yandex_uid or not currencies:
            return error(400, "bad_request", "yandex_uid and currencies are required")
        calls.record("balances")
        return await answer(faults, f"balances {yandex_uid}", lambda: JSONResponse(
            {"balances": state.balances(yandex_uid, currencies)}))

    async def create(request: Request) -> Response:
        body = await parse_control_body(request, CreateRequest)
        calls.record("create")
        return await answer(faults, f"create {body.yandex_uid}",
                            lambda: JSONResponse({"wallet_id": state.create(body)}))

    async def seed(request: Request) -> Response:
        try:
            spec = await parse_control_body(request, SeedWallet)
            return JSONResponse(state.seed(spec), status_code=201)
        except WalletExists as exc:
            return error(409, "wallet_exists", str(exc))

    return sandbox_app([
        Route("/v1/balances", balances, methods=["GET"]),
        Route("/v1/create", create, methods=["POST"]),
        Route("/_sandbox/wallets", seed, methods=["POST"]),
        *control_routes(state, faults, calls),
    ])
