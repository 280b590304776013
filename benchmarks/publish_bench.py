"""Publishing benchmark: CPU per message for Celery's send_task (on kombu's stock Redis transport
and on ours) and for our publisher, one message at a time and in batches.

    python -m benchmarks.publish_bench [--messages 3000]

Each variant runs in a process of its own (the transport is fixed when the app first
connects) and publishes to the benchmark's broker database, which is emptied afterwards. The
figure is CPU time of the publishing process per message, since wall time on a shared machine
mostly measures the neighbours; wall time is printed beside it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from benchmarks import harness

VARIANTS = {
    "stock kombu transport, send_task": ("kombu.transport.redis:Transport", "send_task"),
    "ours, send_task": (None, "send_task"),
    "ours, publish": (None, "single"),
    "ours, publish_many": (None, "many"),
}


def _measure(transport: str | None, mode: str, n: int) -> dict[str, float]:
    import time

    from workers.celery_app import app
    from workers.publish import Message, publish, publish_many

    if transport:
        app.conf.broker_transport = transport
    for i in range(100):  # connect and warm the producer pool
        publish("workers.bench_nothing", {"i": i})
    cpu, wall = time.process_time(), time.perf_counter()
    if mode == "send_task":  # Celery's own path, which `publish` replaced
        for i in range(n):
            app.send_task("workers.bench_nothing", kwargs={"i": i})
    elif mode == "single":
        for i in range(n):
            publish("workers.bench_nothing", {"i": i})
    else:
        publish_many(Message("workers.bench_nothing", {"i": i}) for i in range(n))
    return {"cpu_ms": (time.process_time() - cpu) / n * 1000,
            "wall_ms": (time.perf_counter() - wall) / n * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:  # the child process of one variant
        print(json.dumps(_measure(*VARIANTS[args.variant], args.messages)))
        return

    harness.fresh_database()
    figures = {}
    for name in VARIANTS:
        done = subprocess.run([sys.executable, "-m", "benchmarks.publish_bench", "--messages",
                               str(args.messages), "--variant", name], cwd=harness.ROOT,
                              check=True, capture_output=True, text=True)
        figures[name] = json.loads(done.stdout.strip().splitlines()[-1])
        harness.fresh_broker()
    stock = figures["stock kombu transport, send_task"]["cpu_ms"]
    print(f"{args.messages} messages a variant, Redis broker")
    for name, f in figures.items():
        print(f"{name:<36} CPU {f['cpu_ms']:.3f} ms/message ({f['cpu_ms'] / stock:.2f}x stock)"
              f"   wall {f['wall_ms']:.3f} ms/message")


if __name__ == "__main__":
    main()
