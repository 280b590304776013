"""`make demo`: the whole system on one machine, end to end, with progress output.

Starts the sandbox peers, a worker, beat, the HTTP API and Flower as separate processes
(exactly the production commands), then drives them only through the public HTTP API and the
sandboxes' control routes: a batch of registered payments with progress bars and a summary
(final states, throughput, latency), then a registered payment, a hold with a partial
capture, a hold that is cancelled, and an order's cashback charged through transactions.
Each run writes its process logs (readable text) to a fresh `.demo/<time>/` directory.

    python -m celgate.demo [--payments 50] [--port-offset N] [--keep-running]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import random
import secrets
import socket
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from celgate.cli import money_text
from celgate.processes import ROOT, ManagedProcess, beat, worker

DEMO_ENV = {
    "API_TOKEN": "demo-token",
    "BILLING_CALLBACK_SECRET": "demo-secret",
    "LOG_LEVEL": "INFO",
    "LOG_FORMAT": "text",
}
# Default ports of what the demo starts; `--port-offset N` adds N to each.
API_PORT, FLOWER_PORT, METRICS_PORT = 8080, 5555, 9808
SANDBOX_PORTS = {"ACCOUNTER_URL": (8022, "/accounter"), "LIMITER_URL": (8022, "/v1/limiter"),
                 "TRANSACTIONS_URL": (8024, ""), "PROVIDER_URL": (8025, ""),
                 "PUSH_URL": (8026, ""), "PLUS_WALLET_URL": (8027, "")}

LOGS_ROOT = ROOT / ".demo"
LOGS = LOGS_ROOT  # this run's directory, set by `prepare_logs`
CURRENCY = "RUB"
LIMIT_ID = "demo-shop-turnover"
console = Console(highlight=False)


class DemoFailed(Exception):
    pass


def say(text: str) -> None:
    console.print(text, markup=False)


def step(text: str) -> None:
    console.print(f"\n[bold]== {text}[/bold]")


def money(amount: int) -> str:
    return money_text(amount, CURRENCY)


# --- configuration, ports and logs ----------------------------------------------------------


@dataclass(frozen=True)
class Ports:
    offset: int

    @property
    def api(self) -> int:
        return API_PORT + self.offset

    @property
    def flower(self) -> int:
        return FLOWER_PORT + self.offset

    @property
    def metrics(self) -> int:
        return METRICS_PORT + self.offset

    def all(self) -> dict[str, int]:
        ports = {"API": self.api, "Flower": self.flower, "worker metrics": self.metrics}
        for variable, (port, _) in SANDBOX_PORTS.items():
            ports[f"sandbox ({variable.removesuffix('_URL').lower()})"] = port + self.offset
        return ports


def configure(ports: Ports, flower_password: str) -> None:
    """The demo's environment, before anything reads settings: shifted ports, a Flower
    password for this run, readable logs."""
    for key, value in DEMO_ENV.items():
        os.environ.setdefault(key, value)
    os.environ["API_PORT"] = str(ports.api)
    os.environ["WORKER_METRICS_PORT"] = str(ports.metrics)
    os.environ["FLOWER_BASIC_AUTH"] = f"demo:{flower_password}"
    for variable, (port, path) in SANDBOX_PORTS.items():
        os.environ[variable] = f"http://127.0.0.1:{port + ports.offset}{path}"
    from celgate.settings import reload

    reload()


def busy_ports(ports: Ports) -> list[str]:
    """What already listens where the demo would, e.g. an earlier demo still running."""
    busy = []
    for what, port in sorted(set(ports.all().items()), key=lambda item: item[1]):
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                busy.append(f"{port} ({what})")
    return busy


def prepare_logs() -> Path:
    """A fresh directory for this run's logs; `.demo/latest` points at it."""
    global LOGS
    LOGS = LOGS_ROOT / datetime.now().strftime("%Y%m%d-%H%M%S")
    LOGS.mkdir(parents=True, exist_ok=True)
    latest = LOGS_ROOT / "latest"
    if latest.is_symlink() or latest.exists():
        latest.unlink()
    latest.symlink_to(LOGS.name)
    return LOGS


def get_settings():  # noqa: ANN201 - read after `configure`
    from celgate.settings import get_all

    return get_all()


# --- processes ----------------------------------------------------------------------------


def start_processes(ports: Ports) -> list[ManagedProcess]:
    env = os.environ.copy()
    processes = [
        ManagedProcess([sys.executable, "-m", "sandbox", "--port-offset",
                        str(ports.offset)], LOGS / "sandbox.log", b"sandbox peers ready", env),
        worker(LOGS / "worker.log", concurrency=2, name="demo", env=env),
        beat(LOGS / "beat.log", LOGS, env=env),
        ManagedProcess([sys.executable, "-m", "celgate.api"], LOGS / "api.log",
                       b"Uvicorn running on", env),
        ManagedProcess([sys.executable, "-m", "celery", "-A", "workers", "flower",
                        "--address=127.0.0.1", f"--port={ports.flower}"], LOGS / "flower.log",
                       b"Visit me at", env),
    ]
    started: list[ManagedProcess] = []
    try:
        for process in processes:
            process.start()
            started.append(process)
            say(f"   started {process.log_path.stem:<8} "
                f"(log: {process.log_path.relative_to(ROOT)})")
    except RuntimeError as exc:
        stop_processes(started)
        raise DemoFailed(str(exc)) from None
    return started


def show_urls(ports: Ports) -> None:
    user, password = os.environ["FLOWER_BASIC_AUTH"].split(":", 1)
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    base = f"http://127.0.0.1:{ports.api}"
    table.add_row("API docs", f"{base}/docs  (ReDoc: {base}/redoc)")
    table.add_row("API token", os.environ["API_TOKEN"])
    table.add_row("Flower", f"http://127.0.0.1:{ports.flower}  (user {user}, password "
                            f"{password})")
    table.add_row("worker metrics", f"http://127.0.0.1:{ports.metrics}/metrics")
    table.add_row("API metrics", f"{base}/metrics  (bearer token)")
    table.add_row("logs", str(LOGS.relative_to(ROOT)))
    console.print(table)


def stop_processes(processes: list[ManagedProcess]) -> None:
    for process in reversed(processes):
        process.stop()


# --- talking to the API and the sandboxes -------------------------------------------------


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
    response = requests.request(method, f"{peer_url}/_sandbox/{path}", json=body, timeout=10)
    if response.status_code >= 400:
        raise DemoFailed(f"sandbox {peer_url}/_sandbox/{path}: {response.text}")
    return response.json()


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


# --- payments -----------------------------------------------------------------------------


def seed_accounts() -> dict[str, int]:
    accounter = get_settings().accounter_url
    limiter = get_settings().limiter_url
    names = ("merchant.settlement", "provider.settlement", "system.settlement")
    accounts = {name: control(accounter, "accounts", {"currency": CURRENCY,
                                                       "description": name})["id"]
                for name in names}
    control(limiter, "limits", {"id": LIMIT_ID, "currency": CURRENCY,
                                "upper_boundary": 100_000_000})
    say("   accounts " + ", ".join(f"{k}={v}" for k, v in accounts.items())
        + f"; turnover limit {LIMIT_ID}")
    return accounts


def payment_body(accounts: dict[str, int], amount: int) -> dict[str, Any]:
    def account(kind: str) -> dict[str, Any]:
        return {"account_id": accounts[kind], "type": kind}

    def share(p: int, q: int) -> dict[str, Any]:
        return {"share": {"p": p, "q": q, "rounding": "round_half_towards_zero"}}

    return {
        "invoice_id": f"inv-{uuid.uuid4().hex[:10]}",
        "payment_id": "1",
        "party_id": "demo-party",
        "shop_id": "demo-shop",
        "cost": {"amount": amount, "currency": CURRENCY},
        "route": {"provider_id": 1, "terminal_id": 1},
        "cash_flow": [
            {"source": account("provider.settlement"),
             "destination": account("merchant.settlement"),
             "volume": share(1, 1), "details": "payment amount"},
            {"source": account("merchant.settlement"),
             "destination": account("system.settlement"),
             "volume": share(3, 100), "details": "fee"},
            {"source": account("system.settlement"),
             "destination": account("provider.settlement"),
             "volume": share(2, 100), "details": "provider fee"},
        ],
        "turnover_limits": [{"id": LIMIT_ID}],
    }


def payment_path(body: dict[str, Any]) -> str:
    return f"/v1/payments/{body['invoice_id']}/{body['payment_id']}"


def show_payment(state: dict[str, Any]) -> str:
    text = f"{state['status']} / {state['activity']}"
    if state.get("captured_cost"):
        text += f", captured {money(state['captured_cost']['amount'])}"
    if state.get("machine_status") == "failed":
        text += f", machine failed: {state.get('error')}"
    return text


def wait_payment(api: Api, body: dict[str, Any], status: str) -> dict[str, Any]:
    def done(state: dict[str, Any]) -> bool:
        if state.get("machine_status") == "failed":
            raise DemoFailed(f"payment failed: {state.get('error')}")
        return state["status"] == status and state["activity"] == "idle"

    return wait_for(f"payment {body['invoice_id']}", lambda: api.get(payment_path(body)),
                    done, show_payment)


def hold_payment(api: Api, accounts: dict[str, int], amount: int, on_expiration: str
                 ) -> dict[str, Any]:
    """A hold payment (expiring in an hour), once it waits in flow_waiting for a command."""
    body = payment_body(accounts, amount)
    body["flow"] = {"on_hold_expiration": on_expiration,
                    "held_until": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}
    api.post("/v1/payments", body)
    wait_for(f"payment {body['invoice_id']}", lambda: api.get(payment_path(body)),
             lambda s: s["activity"] == "flow_waiting", show_payment)
    return body


def show_balances(accounts: dict[str, int]) -> None:
    state = requests.get(f"{get_settings().accounter_url}/_sandbox/state", timeout=10).json()
    for name, account_id in accounts.items():
        account = state["accounts"][str(account_id)]
        say(f"   balance {name:<20} own {money(account['own_amount']):>14}  min available "
            f"{money(account['min_available_amount']):>14}  max available "
            f"{money(account['max_available_amount']):>14}")


def show_plan(invoice_id: str) -> None:
    state = requests.get(f"{get_settings().accounter_url}/_sandbox/state", timeout=10).json()
    for plan_id, plan in state["plans"].items():
        if plan_id.startswith(invoice_id):
            batches = ", ".join(f"batch {b['id']} ({len(b['postings'])} postings)"
                                for b in plan["batches"])
            say(f"   plan {plan_id} {plan['state']}: {batches}")


def run_payments(api: Api, accounts: dict[str, int]) -> None:
    step("Registered payment of 1000.00 RUB -> processing_capture ... captured")
    registered = payment_body(accounts, 100_000)
    api.post("/v1/payments/register", registered)
    wait_payment(api, registered, "captured")
    show_plan(registered["invoice_id"])
    show_balances(accounts)

    step("Hold payment of 500.00 RUB, then a partial capture of 60 %")
    held = hold_payment(api, accounts, 50_000, on_expiration="cancel")
    api.post(payment_path(held) + "/capture",
             {"reason": "partial shipment", "cost": {"amount": 30_000, "currency": CURRENCY}})
    wait_payment(api, held, "captured")
    show_plan(held["invoice_id"])
    show_balances(accounts)

    step("Hold payment of 200.00 RUB, then cancel: limits and plan rolled back")
    cancelled = hold_payment(api, accounts, 20_000, on_expiration="capture")
    api.post(payment_path(cancelled) + "/cancel", {"reason": "customer changed mind"})
    wait_payment(api, cancelled, "cancelled")
    show_plan(cancelled["invoice_id"])
    show_balances(accounts)

    events = api.get(payment_path(held) + "/events")
    say(f"\n   the partial capture's history ({len(events)} events):")
    for event in events:
        say(f"     {event['id']:>2} {event['change']['type']}")


# --- cashback -----------------------------------------------------------------------------


def run_cashback(api: Api) -> None:
    settings = get_settings()
    order_id = f"order-{uuid.uuid4().hex[:10]}"
    yandex_uid = "demo-user"
    step(f"Cashback for {order_id}: an invoice in the sandbox transactions service")
    control(settings.transactions_url, "invoices", {
        "id": order_id, "currency": CURRENCY, "user_ip": "127.0.0.1", "yandex_uid": yandex_uid,
    })
    view_path = f"/v1/cashback/taxi/{order_id}"

    def show(view: dict[str, Any]) -> str:
        values = ", ".join(f"{s['source']}={s['value']}" for s in view["cashback_by_source"])
        return f"v{view['version']} {values}: {view['charge_status']}"

    def charged(view: dict[str, Any]) -> bool:
        if view["charge_status"] == "failed":
            raise DemoFailed(f"cashback failed: {view.get('error')}")
        return view["charge_status"] == "charged"

    step("register 100 user + 50 service -> one update with the target -> charged")
    answer = api.post("/v1/cashback/register", {
        "order_id": order_id, "service": "taxi", "currency": CURRENCY, "yandex_uid": yandex_uid,
        "cashback_by_source": [{"source": "user", "value": "100"},
                               {"source": "service", "value": "50"}],
    })
    say(f"   register answered {answer}")
    wait_for(f"order {order_id}", lambda: api.get(view_path), charged, show)

    step("register user 40 -> the update carries the target (user 40, service 50), not a delta")
    api.post("/v1/cashback/register", {
        "order_id": order_id, "service": "taxi", "currency": CURRENCY, "yandex_uid": yandex_uid,
        "cashback_by_source": [{"source": "user", "value": "40"}],
    })
    wait_for(f"order {order_id}", lambda: api.get(view_path), charged, show)
    invoice = control(settings.transactions_url, "state", method="GET")["invoices"][order_id]
    for operation in invoice["cashback"]["operations"]:
        reward = ", ".join(f"{r['source']}={r['amount']}" for r in operation["reward"])
        say(f"   transactions operation {operation['operation_id']}: {reward} "
            f"({operation['status']})")

    step("billing balance callback (HMAC-signed) -> balance cache + silent push")
    # A new wallet per run: the balance cache outlives the demo and ignores a version it saw.
    wallet_id = f"w-demo-{uuid.uuid4().hex[:8]}"
    body = json.dumps({"yandex_uid": yandex_uid, "wallet_id": wallet_id, "currency": CURRENCY,
                       "balance": "140", "version": 1}).encode()
    signature = hmac.new(settings.billing_callback_secret.encode(), body, hashlib.sha256)
    response = requests.post(f"{api.base}/v1/wallet/balance-callback", data=body, timeout=10,
                             headers={"X-Signature": signature.hexdigest(),
                                      "Content-Type": "application/json"})
    say(f"   callback answered {response.status_code}")
    def pushes() -> dict[str, Any]:
        state = control(settings.push_url, "state", method="GET")
        return {"pushes": [p for p in state["pushes"] if wallet_id in json.dumps(p)]}

    wait_for("silent pushes", pushes, lambda s: len(s["pushes"]) >= 1,
             lambda s: f"{len(s['pushes'])} sent")


# --- a batch with progress bars and a summary ----------------------------------------------


@dataclass
class Outcome:
    state: str
    seconds: float
    amount: int


@dataclass
class Batch:
    outcomes: list[Outcome] = field(default_factory=list)
    elapsed: float = 0.0


def _final(state: dict[str, Any]) -> str | None:
    if state.get("machine_status") == "failed":
        return "machine failed"
    if state["activity"] == "idle" and state["status"] in ("captured", "cancelled", "failed"):
        return state["status"]
    return None


def run_batch(api: Api, accounts: dict[str, int], count: int) -> Batch:
    """Register `count` payments of random amounts and follow each to its final state."""
    rng = random.Random()
    bodies = [payment_body(accounts, rng.randrange(100, 500_000)) for _ in range(count)]
    submitted: dict[str, float] = {}
    batch = Batch()
    started = time.monotonic()
    columns = (TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        sent = progress.add_task("registered", total=count)
        done = progress.add_task("final state reached", total=count)
        for body in bodies:
            api.post("/v1/payments/register", body)
            submitted[body["invoice_id"]] = time.monotonic()
            progress.advance(sent)
        pending = {body["invoice_id"]: body for body in bodies}
        deadline = time.monotonic() + 60 + count
        while pending:
            for invoice_id, body in list(pending.items()):
                final = _final(api.get(payment_path(body)))
                if final:
                    batch.outcomes.append(Outcome(final, time.monotonic() - submitted[invoice_id],
                                                  body["cost"]["amount"]))
                    del pending[invoice_id]
                    progress.advance(done)
            if time.monotonic() > deadline:
                raise DemoFailed(f"{len(pending)} payments did not reach a final state")
            time.sleep(0.05)
    batch.elapsed = time.monotonic() - started
    return batch


def show_summary(batch: Batch) -> None:
    by_state: dict[str, list[Outcome]] = {}
    for outcome in batch.outcomes:
        by_state.setdefault(outcome.state, []).append(outcome)
    table = Table(title=f"{len(batch.outcomes)} registered payments")
    table.add_column("final state")
    table.add_column("payments", justify="right")
    table.add_column("amount", justify="right")
    for state, outcomes in sorted(by_state.items()):
        table.add_row(state, str(len(outcomes)), money(sum(o.amount for o in outcomes)))
    console.print(table)
    latencies = sorted(o.seconds for o in batch.outcomes)
    p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
    figures = Table.grid(padding=(0, 2))
    figures.add_column(style="bold")
    figures.add_column(justify="right")
    figures.add_row("elapsed", f"{batch.elapsed:.1f} s")
    figures.add_row("throughput", f"{len(latencies) / batch.elapsed:.1f} payments/s")
    figures.add_row("latency p50", f"{statistics.median(latencies) * 1000:.0f} ms")
    figures.add_row("latency p99", f"{p99 * 1000:.0f} ms")
    console.print(figures)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="celgate-demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--payments", type=int, default=50, metavar="N",
                        help="how many payments the batch registers [50]")
    parser.add_argument("--port-offset", type=int, default=0, metavar="N",
                        help="add N to every port the demo listens on, to run beside "
                             "another stack [0]")
    parser.add_argument("--keep-running", action="store_true",
                        help="leave the processes running after the walk-through, to look "
                             "around in the API docs and Flower (Ctrl-C stops)")
    args = parser.parse_args(argv)

    ports = Ports(args.port_offset)
    busy = busy_ports(ports)
    if busy:
        console.print(f"[red]cannot start the demo: port(s) in use: {', '.join(busy)}.[/red]\n"
                      "Another demo or stack may be running: stop it, or run beside it with "
                      "--port-offset N (e.g. --port-offset 100).")
        raise SystemExit(2)
    configure(ports, secrets.token_urlsafe(9))
    prepare_logs()

    step("Starting sandbox peers, a worker, beat, the API and Flower")
    processes: list[ManagedProcess] = []
    try:
        processes = start_processes(ports)
        show_urls(ports)
        api = Api()
        step("Sandbox accounts and turnover limit")
        accounts = seed_accounts()
        if args.payments > 0:
            step(f"A batch of {args.payments} registered payments")
            show_summary(run_batch(api, accounts, args.payments))
        run_payments(api, accounts)
        run_cashback(api)
        step("Done: every payment and the order reached its final state")
        show_urls(ports)
        if args.keep_running:
            say("   processes keep running; Ctrl-C stops them")
            while True:
                time.sleep(3600)
    except DemoFailed as failure:
        console.print(f"\n[red]DEMO FAILED[/red]: {failure}\n(process logs are in "
                      f"{LOGS.relative_to(ROOT)}/)", markup=True)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        pass
    finally:
        stop_processes(processes)


if __name__ == "__main__":
    main()
