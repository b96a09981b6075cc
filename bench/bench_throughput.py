"""Benchmark the run engine: 400 verdicts at concurrency 16 against a fake endpoint with a fixed latency.

Starts `python -m tests.fake_openai --latency 0.2` as a separate process (so its threads do not share our
GIL), reviews a generated run of 50 pairs (400 verdicts) into a fresh database, and prints achieved
throughput divided by the ideal N·latency/concurrency (target >= 0.95). Then reruns the finished run and
prints its time and model calls (target 0). Requests are counted by the client's request hook, which sees
every HTTP request the SDK sends, retries included.

    .venv/bin/python bench/bench_throughput.py
    .venv/bin/python bench/bench_throughput.py --verdicts 800 --concurrency 32 --latency 0.1
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for tests.synthetic_runs when run as a script

from panel.config import Settings  # noqa: E402
from panel.endpoints import Endpoint  # noqa: E402
from panel.review import prepare_run, review  # noqa: E402
from panel.store import Store  # noqa: E402
from tests.synthetic_runs import write_synthetic_run  # noqa: E402

VERDICTS_PER_PAIR = 8


def start_fake(latency: float) -> tuple[subprocess.Popen, str]:
    """Start the fake endpoint in its own process; return it and its base URL."""
    process = subprocess.Popen([sys.executable, "-m", "tests.fake_openai", "--latency", str(latency)],
                               cwd=ROOT, stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline() if process.stdout else ""
    if not line.startswith("READY "):
        process.kill()
        raise SystemExit(f"fake endpoint did not start: {line!r}")
    return process, line.split()[1]


def main() -> None:
    """Run the benchmark and print its ratios."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--verdicts", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency", type=float, default=0.2)
    args = parser.parse_args()
    pairs = max(1, args.verdicts // VERDICTS_PER_PAIR)
    fake, base_url = start_fake(args.latency)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            settings = Settings(base_url=base_url, model="fake-model", concurrency=args.concurrency,
                                db_path=folder / "bench.duckdb", out_dir=folder / "pages")
            prepared = prepare_run(write_synthetic_run(folder, pairs), settings)
            store = Store(settings.db_path)
            endpoint = Endpoint(base_url, "fake-model", embedded=False)
            n = len(prepared.jobs)

            started = time.perf_counter()
            first = review(prepared, settings, store, endpoint=endpoint)
            elapsed = time.perf_counter() - started
            ideal = n * args.latency / args.concurrency

            started = time.perf_counter()
            rerun = review(prepared, settings, store, endpoint=endpoint)
            rerun_elapsed = time.perf_counter() - started
    finally:
        fake.terminate()
        fake.wait(timeout=10)

    print(f"verdicts: {n}  concurrency: {args.concurrency}  latency: {args.latency * 1000:.0f} ms")
    print(f"first run: {first.status}, {first.asked} asked, {first.failed} failed, {first.requests} requests, "
          f"{elapsed:.2f} s ({n / elapsed:.1f} verdicts/s)")
    print(f"ideal: {ideal:.2f} s ({n / ideal:.1f} verdicts/s)")
    print(f"throughput / ideal: {ideal / elapsed:.3f}  (target >= 0.95)")
    print(f"cached rerun: {rerun_elapsed:.3f} s, {rerun.cached} cached, {rerun.requests} model calls  (target 0)")


if __name__ == "__main__":
    main()
