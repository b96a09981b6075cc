"""Benchmark batch mode: 10,000 verdicts (1,250 pairs) through the fake's Batch API, phase by phase.

Starts `python -m tests.fake_openai` as its own process, then in this one: plans the run (every prompt rendered,
every cache key), writes the JSONL, records + uploads + creates the batch (panel.batch.submit), lets the fake finish
it, and collects it (stream the output file, judge every line as a live answer, store it). For each phase: wall
time and peak RSS above the process's baseline (sampled every 5 ms). Then the collect throughput in verdicts/s
(target >= 2,000/s on 2 cores), a second collect (target: 0 stored), and tokens and cost against the same
requests live: a live review of the first --live-pairs pairs on the same fake gives the live tokens per verdict.

    .venv/bin/python bench/bench_batch.py
    .venv/bin/python bench/bench_batch.py --pairs 250 --live-pairs 10
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for tests.helpers when run as a script

from panel.batch.collect import collect  # noqa: E402
from panel.batch.jsonl import BatchRequest, write_requests_file  # noqa: E402
from panel.batch.submit import refresh, submit  # noqa: E402
from panel.config import Settings  # noqa: E402
from panel.cost import Prices, dollars  # noqa: E402
from panel.model.client import make_batch_client  # noqa: E402
from panel.model.modes import get_mode  # noqa: E402
from panel.pipeline import draft_run  # noqa: E402
from panel.review import prepare_run  # noqa: E402
from panel.store import Store  # noqa: E402
from tests.helpers import synthetic_card, write_synthetic_run  # noqa: E402

T = TypeVar("T")
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    """This process's resident memory in bytes."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def measured(name: str, work: Callable[[], T]) -> tuple[T, float, float]:
    """Run `work`; print and return (its result, seconds, peak MiB of RSS above the start)."""
    base, peak, done = rss(), [rss()], threading.Event()

    def sample() -> None:
        while not done.wait(0.005):
            peak[0] = max(peak[0], rss())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    result = work()
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    mib = (max(peak[0], rss()) - base) / 2**20
    print(f"  {name:<34} {seconds:7.2f} s   peak +{mib:6.1f} MiB RSS")
    return result, seconds, mib


def write_card_files_run(folder: Path, pairs: int) -> Path:
    """A run of `pairs` pairs whose cards are files beside it (a run file inlining 2,500 cards passes its 1 MB cap)."""
    (folder / "cards").mkdir(parents=True, exist_ok=True)
    lines = ["title: Batch bench", "pairs:"]
    for number in range(1, 2 * pairs + 1):
        (folder / "cards" / f"tool-{number}.yaml").write_text(yaml.safe_dump(synthetic_card(number)), encoding="utf-8")
    lines += [f"  - [cards/tool-{2 * i + 1}.yaml, cards/tool-{2 * i + 2}.yaml]" for i in range(pairs)]
    path = folder / "run.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def start_fake() -> tuple[subprocess.Popen, str]:
    """The fake endpoint in its own process; it and its base URL."""
    process = subprocess.Popen([sys.executable, "-m", "tests.fake_openai"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline() if process.stdout else ""
    if not line.startswith("READY "):
        process.kill()
        raise SystemExit(f"fake endpoint did not start: {line!r}")
    return process, line.split()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1250)
    parser.add_argument("--live-pairs", type=int, default=25, help="pairs reviewed live for the tokens comparison")
    parser.add_argument("--price-input", type=float, default=0.15)
    parser.add_argument("--price-output", type=float, default=0.60)
    args = parser.parse_args()
    fake, base_url = start_fake()
    try:
        with tempfile.TemporaryDirectory(prefix="panel-bench-batch-") as tmp:
            run(Path(tmp), base_url, args)
    finally:
        fake.terminate()
        fake.wait(timeout=10)


def run(tmp: Path, base_url: str, args: argparse.Namespace) -> None:
    settings = Settings(
        db_path=tmp / "panel.duckdb",
        out_dir=tmp / "pages",
        base_url=base_url,
        model="fake-model",
        price_input=args.price_input,
        price_output=args.price_output,
        timeout_s=600,
    )
    run_file = write_card_files_run(tmp / "runs", args.pairs)
    store, client = Store(settings.db_path), make_batch_client(settings)
    print(f"batch mode: {args.pairs:,} pairs, {args.pairs * 8:,} verdicts, fake Batch API at {base_url}")
    prepared, plan_s, _ = measured("plan (render prompts, cache keys)", lambda: prepare_run(run_file, settings))
    requests = [BatchRequest(prepared.run_id, job, job.messages) for job in prepared.jobs]
    mode = get_mode(settings.structured_mode)
    scratch = tmp / "requests.jsonl"
    _, write_s, _ = measured("write the JSONL", lambda: write_requests_file(scratch, requests, settings, mode))
    print(f"    {scratch.stat().st_size / 2**20:.1f} MiB, {len(requests):,} lines")
    p = prepared
    store.begin_run(p.run_id, p.spec, settings, p.personas, p.templates, p.jobs, p.purpose)
    batch, submit_s, _ = measured(
        "record + write + upload + create", lambda: submit(store, client, settings, requests, "review")
    )
    started = time.perf_counter()
    while batch.live:
        batch = refresh(store, client, batch)
    print(f"  {'(the fake answers the batch)':<34} {time.perf_counter() - started:7.2f} s")
    collected, collect_s, _ = measured("collect + store", lambda: collect(store, client, batch))
    print(f"    {collected.line()}")
    rate = collected.stored / collect_s if collect_s else float("inf")
    print(f"  collect throughput: {rate:,.0f} verdicts/s (target >= 2,000/s)")
    again = collect(store, client, store.find_batch(batch.local_id))
    print(f"  second collect: {again.stored} stored (target 0)")
    with store.reader() as con:
        stored, distinct = con.execute("SELECT count(*), count(DISTINCT cache_key) FROM verdicts").fetchone()
    print(f"  verdicts stored: {stored:,} ({distinct:,} keys; expected {len(requests):,} each)")

    prompt, completion = collected.counts.prompt_tokens, collected.counts.completion_tokens
    batch_prices, live_prices = Prices.batch_of(settings), Prices.of(settings)
    batch_usd, live_usd = batch_prices.cost(prompt, completion), live_prices.cost(prompt, completion)
    live_run = write_synthetic_run(tmp / "live", args.live_pairs)
    live = draft_run(live_run, settings.with_overrides(db_path=tmp / "live.duckdb"), chair=False, render=False)
    per_live = live.tokens / max(live.asked, 1)
    per_batch = (prompt + completion) / max(collected.counts.ok, 1)
    print(
        f"  tokens: {prompt:,} prompt + {completion:,} completion ({per_batch:,.1f} a verdict); live, the first "
        f"{args.live_pairs} pairs: {per_live:,.1f} a verdict"
    )
    print(
        f"  cost at ${args.price_input}/${args.price_output} per M live: batch {dollars(batch_usd)} vs live "
        f"{dollars(live_usd)} (ratio {batch_usd / live_usd:.2f})"
        if batch_usd and live_usd
        else "  cost unknown"
    )
    total = plan_s + submit_s + collect_s
    print(
        f"  panel's own time: {total:.1f} s (plan {plan_s:.1f}, write {write_s:.1f}, submit {submit_s:.1f}, "
        f"collect {collect_s:.1f})"
    )


if __name__ == "__main__":
    main()
