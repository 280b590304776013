"""Fault injection shared by every sandbox peer.

A spec (posted to `/_sandbox/faults`) says which faults the next requests get:

    {"once": ["503", "timeout_after"],   # consumed in order by the next matching requests
     "rates": {"503": 0.1},              # then each matching request draws from these odds
     "seed": 7,                          # optional: reseed the draw, for repeatable runs
     "latency_ms": 0,                    # added before every answer
     "timeout_ms": 10000,                # how long a "timeout" fault sleeps
     "match": "cashback/update"}         # only operations containing this substring; null: all

Fault names mean nothing here: each sandbox interprets them for its own protocol and passes
the names it knows to `Faults(names=...)` so a typo is refused instead of silently ignored.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# The faults the JSON-over-HTTP sandboxes understand.
JSON_FAULTS = frozenset({"500", "502", "503", "504", "429", "timeout", "timeout_after", "reset"})

DEFAULT_TIMEOUT_MS = 10_000
_SPEC_KEYS = frozenset({"once", "rates", "seed", "latency_ms", "timeout_ms", "match"})


class FaultSpecError(ValueError):
    """The posted spec is malformed; the message says what is wrong."""


@dataclass
class _Plan:
    once: deque[str] = field(default_factory=deque)
    rates: dict[str, float] = field(default_factory=dict)
    latency_ms: int = 0
    timeout_ms: int = DEFAULT_TIMEOUT_MS
    match: str | None = None


class Faults:
    """The fault plan of one sandbox peer; safe to use from several threads."""

    def __init__(self, names: Iterable[str] | None = None, *,
                 rng: random.Random | None = None) -> None:
        self._names = frozenset(names) if names is not None else None
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._plan = _Plan()
        self._injected: dict[str, int] = {}

    def configure(self, spec: dict[str, Any]) -> None:
        """Replace the current plan with `spec`; raise FaultSpecError when it is malformed."""
        plan, seed = self._parse(spec)
        with self._lock:
            self._plan = plan
            if seed is not None:
                self._rng.seed(seed)

    def clear(self) -> None:
        """No faults, no latency; the injection counters restart."""
        with self._lock:
            self._plan = _Plan()
            self._injected = {}

    def draw(self, operation: str) -> str | None:
        """The fault the request for `operation` gets, if any (a `once` fault is consumed)."""
        with self._lock:
            plan = self._plan
            if plan.match is not None and plan.match not in operation:
                return None
            fault = plan.once.popleft() if plan.once else self._draw_rate(plan.rates)
            if fault is not None:
                self._injected[fault] = self._injected.get(fault, 0) + 1
            return fault

    @property
    def latency_s(self) -> float:
        with self._lock:
            return self._plan.latency_ms / 1000

    def timeout_s(self) -> float:
        """How long a "timeout" fault keeps the caller waiting."""
        with self._lock:
            return self._plan.timeout_ms / 1000

    def snapshot(self) -> dict[str, Any]:
        """The current plan and how many faults of each name were injected, for inspection."""
        with self._lock:
            plan = self._plan
            return {
                "once": list(plan.once),
                "rates": dict(plan.rates),
                "latency_ms": plan.latency_ms,
                "timeout_ms": plan.timeout_ms,
                "match": plan.match,
                "injected": dict(self._injected),
            }

    def _draw_rate(self, rates: dict[str, float]) -> str | None:
        if not rates:
            return None
        point = self._rng.random()
        for name in sorted(rates):  # a fixed order keeps seeded runs repeatable
            point -= rates[name]
            if point < 0:
                return name
        return None

    def _parse(self, spec: Any) -> tuple[_Plan, int | None]:
        if not isinstance(spec, dict):
            raise FaultSpecError("the fault spec must be a JSON object")
        unknown = set(spec) - _SPEC_KEYS
        if unknown:
            raise FaultSpecError(f"unknown keys: {sorted(unknown)}")
        once = spec.get("once", [])
        if not isinstance(once, list):
            raise FaultSpecError("'once' must be a list of fault names")
        for name in once:
            self._check_name(name)
        rates = self._parse_rates(spec.get("rates", {}))
        match = spec.get("match")
        if match is not None and not isinstance(match, str):
            raise FaultSpecError("'match' must be a string or null")
        seed = spec.get("seed")
        if seed is not None and not _is_int(seed):
            raise FaultSpecError("'seed' must be an integer")
        plan = _Plan(
            once=deque(once), rates=rates, match=match,
            latency_ms=_non_negative_int(spec, "latency_ms", 0),
            timeout_ms=_non_negative_int(spec, "timeout_ms", DEFAULT_TIMEOUT_MS),
        )
        return plan, seed

    def _parse_rates(self, rates: Any) -> dict[str, float]:
        if not isinstance(rates, dict):
            raise FaultSpecError("'rates' must be an object of fault name -> probability")
        parsed: dict[str, float] = {}
        for name, rate in rates.items():
            self._check_name(name)
            if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
                raise FaultSpecError(f"rate of {name!r} must be a number in [0, 1]")
            parsed[name] = rate
        if sum(parsed.values()) > 1:
            raise FaultSpecError("rates must add up to at most 1")
        return parsed

    def _check_name(self, name: Any) -> None:
        if not isinstance(name, str) or not name:
            raise FaultSpecError(f"fault names are non-empty strings, got {name!r}")
        if self._names is not None and name not in self._names:
            raise FaultSpecError(f"unknown fault {name!r}; known: {sorted(self._names)}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _non_negative_int(spec: dict[str, Any], key: str, default: int) -> int:
    value = spec.get(key, default)
    if not _is_int(value) or value < 0:
        raise FaultSpecError(f"{key!r} must be a non-negative integer")
    return value
