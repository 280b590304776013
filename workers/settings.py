"""Process configuration, read once from environment variables (names are in docs/contract.md)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    database_url: str = "postgresql+psycopg2://postgres@127.0.0.1:5432/celgate"
    broker_url: str = "redis://127.0.0.1:6379/0"
    redis_url: str = "redis://127.0.0.1:6379/1"

    accounter_url: str = "http://127.0.0.1:8022/accounter"
    limiter_url: str = "http://127.0.0.1:8022/v1/limiter"
    transactions_url: str = "http://127.0.0.1:8024"
    provider_url: str = "http://127.0.0.1:8025"
    push_url: str = "http://127.0.0.1:8026"
    plus_wallet_url: str = "http://127.0.0.1:8027"
    peer_timeout_s: float = 5.0

    cashback_retry_max_operations: int = Field(10, ge=1)
    cashback_retry_min_delay_s: float = Field(1.0, gt=0)
    cashback_retry_max_delay_s: float = Field(172800.0, gt=0)
    # Polling an invoice whose cashback is in progress: first wait, growing by half each poll.
    cashback_poll_initial_s: float = Field(1.0, ge=0)
    cashback_poll_max_s: float = Field(60.0, ge=0)
    # How many times the charge waits for transactions to know the invoice before failing.
    cashback_missing_invoice_limit: int = Field(10, ge=0)
    # Payment types whose cleared sums earn no cashback (comma-separated), e.g. paid by wallet.
    cashback_payment_type_blacklist: str = "personal_wallet"
    # Decimal places of cashback per currency ("RUB=0,BYN=1"); others: the ISO minor unit.
    cashback_precision: str = "RUB=0,BYN=1"
    # billing_service per service when register gives none ("taxi=card,eats=food_payment").
    cashback_billing_services: str = ""
    # Universal processing also counts held sums.
    cashback_instant_enabled: bool = False
    # Runs of universal processing that find no rates (or no invoice) before it gives up.
    cashback_rates_wait_limit: int = Field(10, ge=1)

    api_host: str = "127.0.0.1"
    api_port: int = 8080
    api_token: str | None = None
    api_auth: str = "on"
    billing_callback_secret: str = ""

    # Payments: the latest `held_until` a hold may ask for, in seconds from now.
    max_hold_lifetime_s: int = Field(2592000, ge=1)
    # Commit/roll back a plan under the core's older `<invoice>.<payment>` id when the
    # Accounter does not know `<invoice>.<payment>.<iter>` (plans made by an older version).
    legacy_plan_id_fallback: bool = False

    # Timer protocol (docs/design.md section 3).
    short_timer_threshold_s: float = Field(60.0, ge=0)
    redelivery_allowance_s: float = Field(60.0, gt=0)
    sweep_interval_s: float = Field(5.0, gt=0)
    sweep_batch: int = Field(500, ge=1)
    busy_retry_s: float = Field(0.5, gt=0)
    machine_retry_initial_s: float = Field(1.0, gt=0)
    machine_retry_max_s: float = Field(1800.0, gt=0)
    machine_retry_limit: int = Field(10, ge=1)
    stq_retry_initial_s: float = Field(1.0, gt=0)
    stq_retry_max_s: float = Field(600.0, gt=0)
    # Attempts of an STQ job that keeps raising before its row is marked failed.
    stq_retry_limit: int = Field(10, ge=1)

    # Extra task modules a worker imports (test and benchmark namespaces).
    worker_extra_imports: str = ""  # comma-separated module names
    worker_prefetch_multiplier: int = Field(1, ge=1)
    broker_visibility_timeout_s: int = Field(3600, ge=1)
    # Task events for Flower (received, started, succeeded/failed/retried, and sent).
    worker_send_task_events: bool = True
    worker_metrics_port: int | None = Field(None, ge=1, le=65535)
    worker_metrics_host: str = "127.0.0.1"

    # Logs: `json` (one object a line) or `text` (readable, for the demo).
    log_format: str = Field("json", pattern="^(json|text)$")
    # How long /health/ready waits for each dependency before calling it down.
    ready_check_timeout_s: float = Field(2.0, gt=0)

    @property
    def extra_import_modules(self) -> list[str]:
        return [name.strip() for name in self.worker_extra_imports.split(",") if name.strip()]

    @field_validator("cashback_precision", "cashback_billing_services")
    @classmethod
    def _pairs_parse(cls, value: str, info: ValidationInfo) -> str:
        pairs = _pairs(value, info.field_name)
        if info.field_name == "cashback_precision" and not all(
                v.isdigit() and int(v) <= 18 for v in pairs.values()):
            raise ValueError(f"{info.field_name}: each value must be 0..18 decimal places")
        return value

    @property
    def cashback_precision_by_currency(self) -> dict[str, int]:
        return _places(self.cashback_precision)

    @property
    def cashback_billing_service_by_service(self) -> dict[str, str]:
        return _pairs(self.cashback_billing_services, "")

    @property
    def cashback_blacklisted_payment_types(self) -> frozenset[str]:
        return frozenset(name.strip() for name in self.cashback_payment_type_blacklist.split(",")
                         if name.strip())


@lru_cache(maxsize=16)
def _pairs(value: str, name: str) -> dict[str, str]:
    """`"a=1,b=2"` as {"a": "1", "b": "2"}; blanks between commas are ignored. Cached: the
    charge path reads these per order (callers must not change the dict)."""
    pairs: dict[str, str] = {}
    for part in value.split(","):
        if not part.strip():
            continue
        key, sep, item = part.partition("=")
        if not sep or not key.strip() or not item.strip():
            raise ValueError(f"{name}: {part.strip()!r} is not NAME=VALUE")
        pairs[key.strip()] = item.strip()
    return pairs


@lru_cache(maxsize=4)
def _places(value: str) -> dict[str, int]:
    return {currency: int(places) for currency, places in _pairs(value, "").items()}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
