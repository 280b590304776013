"""The demo's walk-through: single payments (registered, partially captured, cancelled) and
an order's cashback, each followed to its end through the API and the sandboxes."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from celgate.demo.talk import (
    CURRENCY,
    Api,
    DemoFailed,
    control,
    get_settings,
    money,
    say,
    step,
    wait_for,
)

LIMIT_ID = "demo-shop-turnover"


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
    state = control(get_settings().accounter_url, "state", method="GET")
    for name, account_id in accounts.items():
        account = state["accounts"][str(account_id)]
        say(f"   balance {name:<20} own {money(account['own_amount']):>14}  min available "
            f"{money(account['min_available_amount']):>14}  max available "
            f"{money(account['max_available_amount']):>14}")


def show_plan(invoice_id: str) -> None:
    state = control(get_settings().accounter_url, "state", method="GET")
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
