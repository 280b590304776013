"""One report of every benchmark and baseline from one run: a Markdown table and a PNG chart.

    python -m benchmarks.report [--quick] [--out docs/bench]

Runs the runtime, payments and cashback benchmarks one after the other (each in its own
process, as `make bench-runtime` etc. would), collects the figures each records, and writes
`<out>/README.md` and `<out>/bench.png`. `--quick` uses small sizes, for a check that the
benchmarks still run, not for figures worth quoting.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.harness import RESULTS_ENV

ROOT = Path(__file__).resolve().parents[1]

FULL = {"runtime_bench": ["--machines", "200", "--steps", "10"],
        "payments_bench": ["--payments", "300"],
        "cashback_bench": ["--orders", "300"]}
QUICK = {"runtime_bench": ["--machines", "30", "--steps", "5"],
         "payments_bench": ["--payments", "30"],
         "cashback_bench": ["--orders", "30"]}
VARIANTS = ("ours", "plain celery", "bare chain")  # column order; a benchmark may lack one


def run_all(sizes: dict[str, list[str]], results: Path) -> str:
    """Run each benchmark; return their printed output, one after the other."""
    printed = []
    for module, args in sizes.items():
        command = [sys.executable, "-m", f"benchmarks.{module}", *args]
        print("running", " ".join(command[1:]), flush=True)
        done = subprocess.run(command, cwd=ROOT, env={**os.environ, RESULTS_ENV: str(results)},
                              capture_output=True, text=True, check=False)
        printed.append(f"$ python -m benchmarks.{module} {' '.join(args)}\n{done.stdout}")
        if done.returncode != 0:
            raise SystemExit(f"{module} failed:\n{done.stdout}\n{done.stderr}")
    return "\n".join(printed)


def load(results: Path) -> dict[str, dict[str, dict]]:
    rows: dict[str, dict[str, dict]] = defaultdict(dict)
    for line in results.read_text().splitlines():
        row = json.loads(line)
        rows[row["benchmark"]][row["variant"]] = row
    return rows


def _ratio(ours: dict, other: dict | None) -> str:
    return f"{ours['rate'] / other['rate']:.2f}" if other else "-"


def _p50_ratio(ours: dict, other: dict | None) -> str:
    if not other or not ours["p50_ms"] or not other["p50_ms"]:
        return "-"
    return f"{ours['p50_ms'] / other['p50_ms']:.2f}x"


def table(rows: dict[str, dict[str, dict]]) -> str:
    lines = ["| benchmark | variant | items | per second | p50 ms | p99 ms | worker CPU ms/item "
             "| ours / this (rate) | ours p50 / this |",
             "|---|---|---|---|---|---|---|---|---|"]
    for benchmark, variants in rows.items():
        ours = variants["ours"]
        for name in VARIANTS:
            row = variants.get(name)
            if row is None:
                continue
            cpu = row["cpu_ms_per_item"].get("worker")
            lines.append(
                f"| {benchmark} | {name} | {row['items']} {row['unit']} | {row['rate']:.1f} "
                f"| {row['p50_ms'] if row['p50_ms'] is not None else '-'} "
                f"| {row['p99_ms'] if row['p99_ms'] is not None else '-'} "
                f"| {cpu if cpu is not None else '-'} "
                f"| {'1' if name == 'ours' else _ratio(ours, row)} "
                f"| {'1' if name == 'ours' else _p50_ratio(ours, row)} |")
    return "\n".join(lines)


def chart(rows: dict[str, dict[str, dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    benchmarks = list(rows)
    panels = [("throughput relative to ours", lambda r, o: r["rate"] / o["rate"]),
              ("worker CPU ms per item", lambda r, o: r["cpu_ms_per_item"].get("worker", 0)),
              ("p50 latency ms", lambda r, o: r["p50_ms"] or 0)]
    figure, axes = plt.subplots(1, len(panels), figsize=(15, 4.5))
    width = 0.8 / len(VARIANTS)
    for ax, (title, value) in zip(axes, panels, strict=True):
        for i, variant in enumerate(VARIANTS):
            xs, heights = [], []
            for x, benchmark in enumerate(benchmarks):
                row = rows[benchmark].get(variant)
                if row is not None:
                    xs.append(x + (i - 1) * width)
                    heights.append(value(row, rows[benchmark]["ours"]))
            ax.bar(xs, heights, width, label=variant)
        ax.set_title(title)
        ax.set_xticks(range(len(benchmarks)))
        ax.set_xticklabels([b.replace(", ", "\n") for b in benchmarks], fontsize=8)
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write(rows: dict[str, dict[str, dict]], printed: str, out: Path, quick: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    chart(rows, out / "bench.png")
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    sizes = QUICK if quick else FULL
    text = f"""# Benchmark report

Generated by `make {'bench-quick' if quick else 'bench'}` ({when}; {os.cpu_count()} CPUs,
{platform.python_implementation()} {platform.python_version()}, worker concurrency 2, broker
`{os.environ.get('BROKER_URL', 'redis (benchmark default)').split('@')[-1]}`). Sizes:
{', '.join(f'`{m} {" ".join(a)}`' for m, a in sizes.items())}.

Baselines, each measured in the same run on the same worker:

- **bare chain**: as many plain Celery tasks as our flow has steps, each one PostgreSQL
  transaction and one `send_task`, no peer call (benchmarks/runtime_tasks.py);
- **plain celery**: the payment flows written as plain Celery tasks that make the same peer
  calls (Limiter, Accounter, provider session) with no durability at all
  (benchmarks/plain_tasks.py): what a user would write instead.

"ours / this" is our throughput divided by that variant's; above 1 we are faster. Worker CPU
is the worker process and its pool children, per item, during that run.

{table(rows)}

![throughput, CPU and latency of every benchmark](bench.png)

<details><summary>What the benchmarks printed</summary>

```
{printed.strip()}
```
</details>
"""
    (out / "README.md").write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "bench")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        results = Path(scratch) / "results.jsonl"
        results.touch()
        printed = run_all(QUICK if args.quick else FULL, results)
        rows = load(results)
    write(rows, printed, args.out, args.quick)
    print(f"wrote {args.out / 'README.md'} and {args.out / 'bench.png'}")


if __name__ == "__main__":
    main()
