"""Where the peers are and how long a call may take, read once from environment variables
(names are in docs/contract.md). The clients themselves take these as arguments; the packages
that build them read this."""

from __future__ import annotations

from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    accounter_url: str = "http://127.0.0.1:8022/accounter"
    limiter_url: str = "http://127.0.0.1:8022/v1/limiter"
    transactions_url: str = "http://127.0.0.1:8024"
    provider_url: str = "http://127.0.0.1:8025"
    push_url: str = "http://127.0.0.1:8026"
    plus_wallet_url: str = "http://127.0.0.1:8027"
    peer_timeout_s: float = 5.0


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
