"""The runtime's configuration, read once from environment variables (names are in
docs/contract.md): database, broker, Redis, timers, STQ retries, the worker process, logs.

Each package reads its own settings the same way, in its own `settings.py`; the environment
variable names are the contract.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    database_url: str = "postgresql+psycopg2://postgres@127.0.0.1:5432/celgate"
    broker_url: str = "redis://127.0.0.1:6379/0"
    redis_url: str = "redis://127.0.0.1:6379/1"

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

    @property
    def extra_import_modules(self) -> list[str]:
        return [name.strip() for name in self.worker_extra_imports.split(",") if name.strip()]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
