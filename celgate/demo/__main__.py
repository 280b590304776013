"""`python -m celgate.demo`: see `celgate.demo`."""

from __future__ import annotations

import argparse
import secrets
import time

import celgate.demo
from celgate.demo.batch import run_batch, show_summary
from celgate.demo.stack import (
    Ports,
    busy_ports,
    configure,
    prepare_logs,
    show_urls,
    start_processes,
    stop_processes,
)
from celgate.demo.talk import Api, DemoFailed, console, say, step
from celgate.demo.walkthrough import run_cashback, run_payments, seed_accounts
from sandbox.processes import ROOT, ManagedProcess


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="celgate-demo", description=celgate.demo.__doc__,
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
    logs = prepare_logs()

    step("Starting sandbox peers, a worker, beat, the API and Flower")
    processes: list[ManagedProcess] = []
    try:
        processes = start_processes(ports, logs)
        show_urls(ports, logs)
        api = Api()
        step("Sandbox accounts and turnover limit")
        accounts = seed_accounts()
        if args.payments > 0:
            step(f"A batch of {args.payments} registered payments")
            show_summary(run_batch(api, accounts, args.payments))
        run_payments(api, accounts)
        run_cashback(api)
        step("Done: every payment and the order reached its final state")
        show_urls(ports, logs)
        if args.keep_running:
            say("   processes keep running; Ctrl-C stops them")
            while True:
                time.sleep(3600)
    except DemoFailed as failure:
        console.print(f"\n[red]DEMO FAILED[/red]: {failure}\n(process logs are in "
                      f"{logs.relative_to(ROOT)}/)", markup=True)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        pass
    finally:
        stop_processes(processes)


if __name__ == "__main__":
    main()
