"""`celgate-sandbox`: serve the sandbox peers on their default ports until SIGINT/SIGTERM.

    celgate-sandbox [--only provider,push] [--host 127.0.0.1] [--port-offset 0]
                    [--ready-file PATH]

Once every server listens it prints one line per peer with its URL and then
"sandbox peers ready", and writes `--ready-file` (the peer lines) so a script can wait for it.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from pathlib import Path

from sandbox import peers as registry
from sandbox.server import Binding, Listening, run_apps


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="celgate-sandbox",
        description="Run the sandbox peers (accounter, limiter, transactions, provider, push, "
                    "wallet) on their default ports.")
    parser.add_argument("--only", metavar="NAMES",
                        help="comma-separated peer or server names to run (default: all); "
                             f"peers: {', '.join(registry.PEER_NAMES)}")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port-offset", type=int, default=0, metavar="N",
                        help="add N to every default port")
    parser.add_argument("--ready-file", type=Path, metavar="PATH",
                        help="written with the peer URLs once every server listens")
    return parser.parse_args(argv)


def _bindings(args: argparse.Namespace) -> list[Binding]:
    names = None if args.only is None else [n.strip() for n in args.only.split(",") if n.strip()]
    bindings = []
    for server in registry.select(names):
        factory = registry.load_factory(server)
        bindings.append(Binding(server.name, factory(), args.host,
                                server.default_port + args.port_offset))
    return bindings


def _peer_lines(listening: Sequence[Listening]) -> list[str]:
    servers = {server.name: server for server in registry.SERVERS}
    return [f"{peer.name} {bound.url}{peer.path}"
            for bound in listening for peer in servers[bound.name].peers]


def main(argv: Sequence[str] | None = None) -> None:
    args = _parse(argv)
    try:
        bindings = _bindings(args)
    except registry.UnknownPeer as exc:
        raise SystemExit(f"celgate-sandbox: {exc}") from None
    if not bindings:
        raise SystemExit("celgate-sandbox: no sandbox peer to run")

    def ready(listening: list[Listening]) -> None:
        lines = _peer_lines(listening)
        print("\n".join([*lines, "sandbox peers ready"]), flush=True)
        if args.ready_file is not None:
            # Written whole under a temporary name, so a reader never sees half of it.
            partial = args.ready_file.with_name(args.ready_file.name + ".partial")
            partial.write_text("\n".join(lines) + "\n")
            partial.replace(args.ready_file)

    asyncio.run(run_apps(bindings, on_ready=ready))


if __name__ == "__main__":
    main()
