"""Benchmark `panel compare`: what a one-persona edit costs once the old verdicts are stored.

Starts `python -m tests.fake_openai --latency L` in its own process, reviews a generated run of N pairs
(8 verdicts a pair) with the shipped personas, appends a line to a copy of the skeptic, and times
`compare` (the old side should come from the cache: 0 requests; the new side asks 2 verdicts a pair).
Then times the same compare again (target: 0 requests). Prints requests and the time ratios against the
full review.

    .venv/bin/python bench/bench_compare.py
    .venv/bin/python bench/bench_compare.py --pairs 100 --latency 0.1
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for tests.* when run as a script

from bench.bench_throughput import start_fake  # noqa: E402
from panel.compare import compare  # noqa: E402
from panel.config import Settings  # noqa: E402
from panel.pipeline import draft_run  # noqa: E402
from tests.helpers import write_synthetic_run  # noqa: E402


def main() -> None:
    """Run the benchmark and print requests and time ratios."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency", type=float, default=0.2)
    args = parser.parse_args()
    fake, base_url = start_fake(args.latency)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            shutil.copytree(ROOT / "personas", folder / "personas")
            settings = Settings(
                base_url=base_url,
                model="fake-model",
                concurrency=args.concurrency,
                db_path=folder / "bench.duckdb",
                out_dir=folder / "pages",
                personas_dir=folder / "personas",
            )
            run_file = write_synthetic_run(folder, args.pairs)
            started = time.perf_counter()
            full = draft_run(run_file, settings, chair=False, render=False)
            store = full.store
            full_s = time.perf_counter() - started

            skeptic = folder / "personas" / "skeptic.md"
            skeptic.write_text(
                skeptic.read_text(encoding="utf-8") + "\nName the cheapest rival first.\n", encoding="utf-8"
            )
            started = time.perf_counter()
            first = compare([run_file], settings, store)
            first_s = time.perf_counter() - started
            old = first.base.persona_hash("skeptic")[:12]
            started = time.perf_counter()
            again = compare([run_file], settings, store, base_refs=[old])
            again_s = time.perf_counter() - started
    finally:
        fake.terminate()
        fake.wait(timeout=10)

    print(
        f"pairs: {args.pairs}  verdicts in the full review: {full.needed}  latency: {args.latency * 1000:.0f} ms  "
        f"concurrency: {args.concurrency}"
    )
    print(f"full review: {full.requests} requests, {full_s:.2f} s")
    print(
        f"compare after editing skeptic: before-side {first.requests['before']} requests (target 0), "
        f"after-side {first.requests['after']} (target {2 * args.pairs}), {first_s:.2f} s "
        f"= {first_s / full_s:.2f} x the full review"
    )
    print(
        f"same compare again: {again.requests['before'] + again.requests['after']} requests (target 0), "
        f"{again_s:.2f} s = {again_s / full_s:.3f} x the full review"
    )


if __name__ == "__main__":
    main()
