"""Client of the wallet service: a user's wallets and their balances, and creating a wallet.

`create` is not repeated inline: whether a repeat would make a second wallet is the peer's
business, so after WalletUnavailable the caller reads `balances` again before creating.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from clients.json_http import JsonHttp, PeerBadAnswer, PeerError, PeerRejected, PeerUnavailable

LEGACY_PREFIX = "z"  # wallets of the old scheme; charges need a current one


class WalletError(PeerError):
    code = "wallet_error"


class WalletRejected(WalletError, PeerRejected):
    """The service refused the request itself (4xx): repeating it will not help."""

    code = "wallet_rejected"


class WalletUnavailable(WalletError, PeerUnavailable):
    """Unreachable, failing (5xx) or rate limiting (429): try again later."""

    code = "wallet_unavailable"


class WalletBalance(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    wallet_id: str = Field(min_length=1)
    currency: str
    balance: Decimal

    @property
    def legacy(self) -> bool:
        return self.wallet_id.startswith(LEGACY_PREFIX)


class _Balances(BaseModel):
    model_config = ConfigDict(extra="ignore")
    balances: list[WalletBalance]


class _Created(BaseModel):
    model_config = ConfigDict(extra="ignore")
    wallet_id: str = Field(min_length=1)


class WalletClient:
    def __init__(self, base_url: str, *, timeout_s: float = 5.0, attempts: int = 3,
                 backoff_s: float = 0.05) -> None:
        self._http = JsonHttp(base_url, timeout_s=timeout_s, attempts=attempts,
                              backoff_s=backoff_s, unavailable=WalletUnavailable)

    def balances(self, yandex_uid: str, currency: str) -> tuple[WalletBalance, ...]:
        """The user's wallets in `currency` (legacy ones included), as the service lists them."""
        answer = self._http.get("/v1/balances", {"yandex_uid": yandex_uid,
                                                 "currencies": currency})
        what = f"balances of {yandex_uid} in {currency}"
        answer.raise_for_status(what, rejected=WalletRejected, unavailable=WalletUnavailable)
        try:
            return tuple(_Balances.model_validate(answer.body).balances)
        except ValidationError as exc:
            raise PeerBadAnswer(f"{what}: malformed answer: {exc}") from exc

    def create(self, yandex_uid: str, currency: str, user_ip: str) -> str:
        """Create the user's wallet in `currency`; its id."""
        answer = self._http.post("/v1/create", {"yandex_uid": yandex_uid, "currency": currency,
                                                "user_ip": user_ip}, idempotent=False)
        what = f"create a {currency} wallet for {yandex_uid}"
        answer.raise_for_status(what, rejected=WalletRejected, unavailable=WalletUnavailable)
        try:
            return _Created.model_validate(answer.body).wallet_id
        except ValidationError as exc:
            raise PeerBadAnswer(f"{what}: malformed answer: {exc}") from exc

    def close(self) -> None:
        self._http.close()
