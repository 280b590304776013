"""The API's configuration, and every package's settings together for the processes that
start or drive them all (the API, the demo).

Each package reads its own environment variables (docs/contract.md) into its own cached
settings: the runtime's in workers/settings.py, the peers' in clients/settings.py, payments'
and cashback's in their packages. `AllSettings` composes them into one class; `reload` makes
the next read of any of them see a changed environment.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from cashback import settings as cashback
from clients import settings as clients
from payments import settings as payments
from workers import settings as runtime


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    api_host: str = "127.0.0.1"
    api_port: int = 8080
    api_token: str | None = None
    api_auth: str = "on"
    # How long /health/ready waits for each dependency before calling it down.
    ready_check_timeout_s: float = Field(2.0, gt=0)


@lru_cache(maxsize=1)
def get_settings() -> ApiSettings:
    return ApiSettings()


PARTS = (runtime.Settings, clients.Settings, payments.Settings, cashback.Settings, ApiSettings)


class AllSettings(*PARTS):  # type: ignore[misc]
    """Every setting of every package in one object: reading it checks them all."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")


@lru_cache(maxsize=1)
def get_all() -> AllSettings:
    return AllSettings()


def reload() -> None:
    """Forget every cached settings object: the next read takes the environment as it is."""
    for read in (runtime.get_settings, clients.get_settings, payments.get_settings,
                 cashback.get_settings, get_settings, get_all):
        read.cache_clear()
