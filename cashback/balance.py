"""The billing balance callback: a wallet's balance changed, so refresh the cache and tell the
user's devices with a silent push.

The callback only checks its HMAC signature and queues `wallet.balance_changed` (one task per
wallet and version). The task writes the balance cache in Redis, which never moves backwards:
a version older than the cached one is ignored, and so is its push. The push goes once per
accepted version: the cache entry remembers the last version pushed, marked after the push
was sent (a crash in between repeats the push; a silent push repeated only costs a refresh).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from enum import StrEnum

import redis
from pydantic import BaseModel, ConfigDict, Field, field_validator

from cashback import currencies, peers
from cashback.settings import get_settings
from cashback.text import SafeText
from clients.push import PushRejected
from foundation.errors import TypedError
from workers import stq
from workers.db import Tx, transaction
from workers.logs import bind
from workers.per_process import per_process
from workers.settings import get_settings as runtime_settings

log = logging.getLogger(__name__)

BALANCE_QUEUE = "wallet.balance_changed"
CACHE_PREFIX = "wallet-balance:"

_DECIMAL = r"^-?[0-9]{1,18}(\.[0-9]{1,18})?$"
MAX_VERSION = 2**63 - 1


class BadSignature(TypedError):
    code = "bad_signature"
    http_status = 401


class VersionOutOfRange(TypedError):
    code = "version_out_of_range"
    http_status = 400


class BalanceChanged(BaseModel):
    """The callback body (unknown fields ignored: billing may grow it)."""

    model_config = ConfigDict(strict=True)

    yandex_uid: SafeText = Field(min_length=1, max_length=64)
    wallet_id: SafeText = Field(min_length=1, max_length=128)
    currency: SafeText = Field(min_length=1, max_length=8)
    balance: str = Field(pattern=_DECIMAL, description="decimal string")
    version: int = Field(ge=0, description="int64")

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, currency: str) -> str:
        currencies.precision(currency)  # UnknownCurrency (400) when it is not
        return currency

    @field_validator("version")
    @classmethod
    def _int64(cls, version: int) -> int:
        # The cache compares versions as digit strings, exactly; int64 keeps them bounded.
        if version > MAX_VERSION:
            raise VersionOutOfRange(f"version {version} is above 2**63 - 1")
        return version


class BalanceChangedKwargs(BalanceChanged):
    """The kwargs of `wallet.balance_changed`: unknown keys refused, as every task does."""

    model_config = ConfigDict(strict=True, extra="forbid")


def task_id_of(change: BalanceChanged) -> str:
    return f"{change.wallet_id}/{change.version}"


def verify_signature(raw_body: bytes, signature: str | None) -> None:
    secret = get_settings().billing_callback_secret
    if not secret:
        raise BadSignature("the callback secret is not configured; refusing every callback")
    expected = hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest().encode()
    # Compared as bytes: compare_digest refuses a str holding non-ASCII characters.
    given = (signature or "").strip().lower().encode("utf-8", "replace")
    if not given or not hmac.compare_digest(expected, given):
        raise BadSignature("X-Signature is not the HMAC-SHA256 of the body")


def queue_balance_changed(change: BalanceChanged) -> None:
    with transaction() as tx:
        stq.add(tx, BALANCE_QUEUE, task_id_of(change), change.model_dump())


# --- the task -----------------------------------------------------------------------------


class Applied(StrEnum):
    NEWER = "newer"  # the cache took this version
    SAME = "same"  # the cache holds this version already (a repeat)
    OLDER = "older"  # the cache holds a newer version: ignored


# Versions are compared exactly, as strings of digits (shorter is smaller, then lexically):
# Lua numbers are doubles, and above 2**53 two versions would compare equal or reversed.
_OLDER = """
local function older(a, b)
  if #a ~= #b then return #a < #b end
  return a < b
end
"""

# KEYS[1] the wallet's cache entry; ARGV version, balance, currency, yandex_uid.
_APPLY = _OLDER + """
local cached = redis.call('HGET', KEYS[1], 'version')
if cached then
  if older(ARGV[1], cached) then return 'older' end
  if ARGV[1] == cached then return 'same' end
end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'balance', ARGV[2], 'currency', ARGV[3],
           'yandex_uid', ARGV[4])
return 'newer'
"""

# KEYS[1] the wallet's cache entry; ARGV version. The pushed mark only moves forward too.
_MARK_PUSHED = _OLDER + """
local pushed = redis.call('HGET', KEYS[1], 'pushed_version')
if not pushed or older(pushed, ARGV[1]) then
  redis.call('HSET', KEYS[1], 'pushed_version', ARGV[1])
end
return 1
"""


class BalanceCache:
    """Wallet balances in Redis: `wallet-balance:<wallet_id>` -> hash of version, balance,
    currency, yandex_uid and the last version pushed."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._apply = client.register_script(_APPLY)
        self._mark_pushed = client.register_script(_MARK_PUSHED)

    def apply(self, change: BalanceChanged) -> Applied:
        # str(int) is canonical (no sign, no leading zero), as the comparison needs.
        result = self._apply(keys=[_key(change.wallet_id)],
                             args=[str(change.version), change.balance, change.currency,
                                   change.yandex_uid])
        return Applied(result.decode() if isinstance(result, bytes) else result)

    def needs_push(self, change: BalanceChanged) -> bool:
        """True while this version is the cached one and no push for it was recorded."""
        version, pushed = self._client.hmget(_key(change.wallet_id), "version",
                                             "pushed_version")
        return (version is not None and int(version) == change.version
                and (pushed is None or int(pushed) < change.version))

    def mark_pushed(self, change: BalanceChanged) -> None:
        self._mark_pushed(keys=[_key(change.wallet_id)], args=[str(change.version)])

    def get(self, wallet_id: str) -> dict[str, str]:
        entry = self._client.hgetall(_key(wallet_id))
        return {k.decode(): v.decode() for k, v in entry.items()}


def _key(wallet_id: str) -> str:
    return CACHE_PREFIX + wallet_id


def _cache() -> BalanceCache:
    return BalanceCache(redis.Redis.from_url(runtime_settings().redis_url))


cache = per_process(_cache)  # its Redis connection pool is this process's own


def run(tx: Tx, task: stq.Task, change: BalanceChanged) -> stq.JobResult:
    with bind(yandex_uid=change.yandex_uid, wallet_id=change.wallet_id,
              balance_version=change.version):
        balances = cache()
        applied = balances.apply(change)
        if applied is Applied.OLDER:
            log.info("balance change older than the cached one: ignored")
            return stq.Finish()
        if balances.needs_push(change):
            try:
                peers.push().send_silent(change.yandex_uid, {
                    "type": "wallet_balance_changed", "wallet_id": change.wallet_id,
                    "currency": change.currency, "balance": change.balance,
                    "version": change.version,
                })
            except PushRejected as exc:
                log.error("silent push refused; not retried", extra={"error": str(exc)})
            balances.mark_pushed(change)
        log.info("balance cache updated", extra={"applied": applied.value,
                                                 "balance": change.balance})
        return stq.Finish()
