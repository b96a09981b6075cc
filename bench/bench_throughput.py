"""Benchmark the run engine: 400 verdicts at concurrency 16 against a fake endpoint with a fixed latency.

Starts `python -m tests.fake_openai --latency 0.2` as a separate process (so its threads do not share our
GIL). It first opens and closes one client without sending anything: that imports the HTTP stack and
loads the CA bundle, a one-time cost of each `panel` process (printed), not of a run. It then asks the
reviewers of a generated run of 50 pairs (400 verdicts; draft_run without the chair and the pages) into a
fresh database and prints achieved throughput divided by the ideal N·latency/concurrency (target >= 0.95),
timed from the planned run to the reviewers' end, with where the time went: before the first request
(the writer lock, the write rehearsal, the client), the requests, and after the last answer (committing
the last batch).
Then the same run again with --refresh. For scale it also times the same requests sent by a bare httpx2
client (no SDK, no parsing, no storing): the most any Python client gets on this machine. Then it stops
the fake and reruns the finished run: its time, and its model calls (target 0; with the endpoint gone,
any call would show up as a failed request).

    .venv/bin/python bench/bench_throughput.py
    .venv/bin/python bench/bench_throughput.py --verdicts 800 --concurrency 32 --latency 0.1
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for tests.helpers when run as a script

from panel.answers import VerdictJob  # noqa: E402
from panel.config import Settings  # noqa: E402
from panel.model.client import make_client  # noqa: E402
from panel.model.endpoint import Endpoint  # noqa: E402
from panel.model.modes import get_mode  # noqa: E402
from panel.pipeline import DraftOutcome, DraftProgress, draft_run  # noqa: E402
from panel.review import PreparedRun  # noqa: E402
from panel.verdict import verdict_schema  # noqa: E402
from tests.helpers import write_synthetic_run  # noqa: E402

VERDICTS_PER_PAIR = 8


def start_fake(latency: float) -> tuple[subprocess.Popen, str]:
    """Start the fake endpoint in its own process; return it and its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_openai", "--latency", str(latency)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline() if process.stdout else ""
    if not line.startswith("READY "):
        process.kill()
        raise SystemExit(f"fake endpoint did not start: {line!r}")
    return process, line.split()[1]


def warm_up(endpoint: Endpoint, settings: Settings) -> float:
    """Seconds to open and close one client, sending nothing: the process's first-use imports and CA bundle."""

    async def open_and_close() -> None:
        async with make_client(endpoint, settings):
            pass

    started = time.perf_counter()
    asyncio.run(open_and_close())
    return time.perf_counter() - started


class _Clock(DraftProgress):
    """When the reviewers' step began (the run planned, its database open) and ended."""

    def planned(self, prepared: PreparedRun) -> None:
        self.started = time.time()

    def reviewed(self, draft: DraftOutcome) -> None:
        self.ended = time.time()


def timed_review(run_file: Path, settings: Settings, refresh: bool = False) -> tuple[DraftOutcome, float, str]:
    """Ask a run's reviewers (no chair, no page); return the outcome, the reviewers' seconds, and where they
    went (before, during, after the requests)."""
    clock = _Clock()
    outcome = draft_run(run_file, settings, refresh=refresh, chair=False, render=False, progress=clock)
    attempts = [attempt for answer in outcome.review.answers for attempt in answer.attempts]
    if not attempts:
        return outcome, clock.ended - clock.started, "no requests"
    first = min(a.started_at.timestamp() for a in attempts)
    last = max(a.started_at.timestamp() + a.latency_s for a in attempts)
    return (
        outcome,
        clock.ended - clock.started,
        (
            f"{first - clock.started:.2f} s before the first request, {last - first:.2f} s "
            f"of requests, {clock.ended - last:.2f} s after the last answer"
        ),
    )


def transport_seconds(base_url: str, jobs: list[VerdictJob], settings: Settings) -> float:
    """Seconds a bare httpx2 client takes to send the jobs' requests at the same concurrency."""
    extra = get_mode(settings.structured_mode).build_request(verdict_schema())
    bodies = [{"model": settings.model_name, "messages": job.messages, **settings.sampling(), **extra} for job in jobs]

    async def send_all() -> None:
        async with httpx2.AsyncClient(timeout=60) as client:

            async def worker() -> None:
                while bodies:
                    (await client.post(base_url + "/chat/completions", json=bodies.pop())).json()

            await asyncio.gather(*(worker() for _ in range(settings.effective_concurrency)))

    started = time.perf_counter()
    asyncio.run(send_all())
    return time.perf_counter() - started


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
            settings = Settings(
                base_url=base_url,
                model="fake-model",
                concurrency=args.concurrency,
                db_path=folder / "bench.duckdb",
                out_dir=folder / "pages",
            )
            run_file = write_synthetic_run(folder, pairs)

            warm_up_s = warm_up(Endpoint(base_url, embedded=False), settings)
            first, elapsed, first_split = timed_review(run_file, settings)
            n = first.needed
            ideal = n * args.latency / args.concurrency
            again, again_elapsed, again_split = timed_review(run_file, settings, refresh=True)
            bare = transport_seconds(base_url, first.prepared.jobs, settings)

            fake.terminate()
            fake.wait(timeout=10)
            rerun, rerun_elapsed, _ = timed_review(run_file, settings)
    finally:
        fake.kill()
        fake.wait(timeout=10)

    print(f"verdicts: {n}  concurrency: {args.concurrency}  latency: {args.latency * 1000:.0f} ms")
    print(f"process warm-up, once per panel process (HTTP stack imports, CA bundle): {warm_up_s:.2f} s")
    print(
        f"first run: {first.status}, {first.asked} asked, {first.failed} failed, {first.requests} requests, "
        f"{elapsed:.2f} s ({n / elapsed:.1f} verdicts/s)"
    )
    print(f"  {first_split}")
    print(f"ideal: {ideal:.2f} s ({n / ideal:.1f} verdicts/s)")
    print(
        f"throughput / ideal: {ideal / elapsed:.3f}  (target >= 0.95; "
        f"{ideal / (elapsed + warm_up_s):.3f} counting the warm-up)"
    )
    print(
        f"--refresh run: {again.asked} asked, {again.requests} requests, {again_elapsed:.2f} s, "
        f"throughput / ideal: {ideal / again_elapsed:.3f}"
    )
    print(f"  {again_split}")
    print(
        f"bare httpx2, same requests: {bare:.2f} s, / ideal: {ideal / bare:.3f}  "
        f"(panel's --refresh run reaches {bare / again_elapsed:.0%} of it)"
    )
    print(
        f"cached rerun: {rerun_elapsed:.3f} s, {rerun.cached} cached, {rerun.asked} asked, "
        f"{rerun.requests} model calls  (target 0), {rerun.status}"
    )


if __name__ == "__main__":
    main()
