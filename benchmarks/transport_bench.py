"""Peer transports side by side: the same JSON call to a sandbox peer, 2000 times each.

    python -m benchmarks.transport_bench [--calls 2000]

Starts the provider sandbox in its own process (so the figures are the client's alone) and
calls it from this process with each transport in turn, over one kept-alive connection:
wall time and this process's CPU time per call.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import requests

from clients.keepalive import KeepAlive
from sandbox.peers import peer_env
from sandbox.processes import sandbox_peers

PORT_OFFSET = 21000
URL = peer_env(PORT_OFFSET)["PROVIDER_URL"]
PATH = "/v1/sessions/process"
BODY = json.dumps({"session_id": "bench-1", "target": "captured", "invoice_id": "inv-1",
                   "payment_id": "1", "cost": {"amount": 100, "currency": "RUB"}}).encode()
HEADERS = {"Content-Type": "application/json"}


def keepalive() -> Callable[[], int]:
    http = KeepAlive(URL)
    return lambda: http.request("POST", PATH, BODY, HEADERS, 5.0).status


def with_httpx() -> Callable[[], int]:
    client = httpx.Client(base_url=URL, timeout=5.0, trust_env=False)
    return lambda: client.post(PATH, content=BODY, headers=HEADERS).status_code


def with_requests() -> Callable[[], int]:
    session = requests.Session()
    session.trust_env = False
    return lambda: session.post(URL + PATH, data=BODY, headers=HEADERS, timeout=5.0).status_code


def measure(name: str, call: Callable[[], int], calls: int) -> None:
    for _ in range(50):  # warm up: connection, caches
        assert call() == 200
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        assert call() == 200
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"{name:<10} {calls} calls: {wall / calls * 1e3:6.3f} ms wall, "
          f"{cpu / calls * 1e3:6.3f} ms client CPU per call", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    log = Path(tempfile.mkdtemp(prefix="celgate-transport-bench-")) / "sandbox.log"
    sandbox = sandbox_peers(log, port_offset=PORT_OFFSET, only="provider")
    sandbox.start()
    try:
        for name, make in (("keepalive", keepalive), ("httpx", with_httpx),
                           ("requests", with_requests)):
            measure(name, make(), args.calls)
    finally:
        sandbox.stop()


if __name__ == "__main__":
    main()
