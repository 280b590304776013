"""Payments' configuration, read once from environment variables (names are in
docs/contract.md)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    # The latest `held_until` a hold may ask for, in seconds from now.
    max_hold_lifetime_s: int = Field(2592000, ge=1)
    # Commit/roll back a plan under the core's older `<invoice>.<payment>` id when the
    # Accounter does not know `<invoice>.<payment>.<iter>` (plans made by an older version).
    legacy_plan_id_fallback: bool = False


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
