"""What every part of the demo shares: its console output and its calls to the API and the
sandbox peers."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import requests
from rich.console import Console

from celgate.cli import money_text
from sandbox.control_client import SandboxControlError
from sandbox.control_client import control as sandbox_control

CURRENCY = "RUB"
console = Console(highlight=False)


class DemoFailed(Exception):
    pass


def say(text: str) -> None:
    console.print(text, markup=False)


def step(text: str) -> None:
    console.print(f"\n[bold]== {text}[/bold]")


def money(amount: int) -> str:
    return money_text(amount, CURRENCY)


def get_settings():  # noqa: ANN201 - read only after the demo has set the environment
    from celgate.settings import get_all

    return get_all()


class Api:
    def __init__(self) -> None:
        settings = get_settings()
        self.base = f"http://{settings.api_host}:{settings.api_port}"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {settings.api_token}"

    def post(self, path: str, body: dict[str, Any], *, expect: tuple[int, ...] = (200, 202)
             ) -> dict[str, Any]:
        response = self.session.post(self.base + path, json=body, timeout=10)
        if response.status_code not in expect:
            raise DemoFailed(f"POST {path} answered {response.status_code}: {response.text}")
        return response.json()

    def get(self, path: str) -> dict[str, Any]:
        response = self.session.get(self.base + path, timeout=10)
        if response.status_code != 200:
            raise DemoFailed(f"GET {path} answered {response.status_code}: {response.text}")
        return response.json()


def control(peer_url: str, path: str, body: Any = None, method: str = "POST") -> Any:
    """A sandbox control call; a refusal fails the demo with the sandbox's answer."""
    try:
        return sandbox_control(peer_url, path, body, method)
    except SandboxControlError as exc:
        raise DemoFailed(f"sandbox {exc}") from None


def wait_for(what: str, read: Callable[[], dict[str, Any]], done: Callable[[dict], bool],
             show: Callable[[dict], str], timeout_s: float = 60) -> dict[str, Any]:
    """Poll until `done`, printing every new value of `show` as it changes."""
    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        value = read()
        shown = show(value)
        if shown != last:
            say(f"   {what}: {shown}")
            last = shown
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise DemoFailed(f"{what} did not finish in {timeout_s}s: {json.dumps(value)}")
        time.sleep(0.1)
