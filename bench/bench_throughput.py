"""Benchmark the run engine: 400 verdicts at concurrency 16 against a fake endpoint with a fixed latency.

Starts `python -m tests.fake_openai --latency 0.2 --api-key ...` as a separate process (so its threads do not
share our GIL); like OpenAI it refuses requests without its key, and answers GET /v1/models after the same
latency as a chat request. It first opens and closes one client without sending anything: that imports the
HTTP stack and loads the CA bundle, a one-time cost of each `panel` process (printed), not of a run.

Then, `--rounds` times (default 3), interleaved so that the machine's load hits all alike: the same requests
sent by a bare httpx2 client (no SDK, no parsing, no storing: the most any Python client gets here), the
reviewers of a generated run of 50 pairs (400 verdicts; draft_run without the chair and the pages) into a fresh
database, the bare client again, and the same run with --refresh. Each prints achieved throughput divided by
the ideal N·latency/concurrency (target >= 0.95), timed from the planned run to the reviewers' end (every answer
journaled and folded into DuckDB), with where the time went: before the first request (the writer lock, the
write rehearsal, the client), the requests, and after the last answer (the last fold); and the whole draft_run
call (planning the prompts and opening the database before the clock starts, which the endpoint's preflight
overlaps). The medians and panel / bare close it. Then it stops the fake and reruns the finished run: its time,
and its model calls (target 0; with the endpoint gone, any call would show up as a failed request).

    .venv/bin/python bench/bench_throughput.py
    .venv/bin/python bench/bench_throughput.py --verdicts 800 --concurrency 32 --latency 0.1 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
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
from panel.review import PreparedRun, prepare_run  # noqa: E402
from panel.verdict import verdict_schema  # noqa: E402
from tests.helpers import write_synthetic_run  # noqa: E402

VERDICTS_PER_PAIR = 8
API_KEY = "sk-bench-fake"  # the fake refuses requests without it, as OpenAI does


def start_fake(latency: float) -> tuple[subprocess.Popen, str]:
    """Start the fake endpoint in its own process; return it and its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_openai", "--latency", str(latency), "--api-key", API_KEY],
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


@dataclass
class Timed:
    """One panel run: its outcome, the reviewers' seconds, the whole draft_run call's, and where the time went."""

    outcome: DraftOutcome
    seconds: float
    call_seconds: float
    split: str


def timed_review(run_file: Path, settings: Settings, refresh: bool = False) -> Timed:
    """Ask a run's reviewers (no chair, no page) and time them."""
    clock = _Clock()
    called = time.time()
    outcome = draft_run(run_file, settings, refresh=refresh, chair=False, render=False, progress=clock)
    returned = time.time()
    seconds = clock.ended - clock.started
    attempts = [attempt for answer in outcome.review.answers for attempt in answer.attempts]
    if not attempts:
        return Timed(outcome, seconds, returned - called, "no requests")
    first = min(a.started_at.timestamp() for a in attempts)
    last = max(a.started_at.timestamp() + a.latency_s for a in attempts)
    split = (
        f"{first - clock.started:.2f} s before the first request, {last - first:.2f} s of requests, "
        f"{clock.ended - last:.2f} s after the last answer; draft_run call {returned - called:.2f} s "
        f"({clock.started - called:.2f} s planning before the clock)"
    )
    return Timed(outcome, seconds, returned - called, split)


def transport_seconds(base_url: str, jobs: list[VerdictJob], settings: Settings) -> float:
    """Seconds a bare httpx2 client takes to send the jobs' requests at the same concurrency."""
    extra = get_mode(settings.structured_mode).build_request(verdict_schema())
    bodies = [{"model": settings.model_name, "messages": job.messages, **settings.sampling(), **extra} for job in jobs]

    async def send_all() -> None:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with httpx2.AsyncClient(timeout=60, headers=headers) as client:

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
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    pairs = max(1, args.verdicts // VERDICTS_PER_PAIR)
    os.environ["OPENAI_API_KEY"] = API_KEY
    fake, base_url = start_fake(args.latency)
    firsts: list[Timed] = []
    refreshes: list[Timed] = []
    bares: list[float] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            run_file = write_synthetic_run(folder, pairs)

            def settings_for(round_index: int) -> Settings:
                return Settings(
                    base_url=base_url,
                    model="fake-model",
                    concurrency=args.concurrency,
                    db_path=folder / f"bench-{round_index}.duckdb",  # a fresh database for each first run
                    out_dir=folder / "pages",
                )

            warm_up_s = warm_up(Endpoint(base_url, embedded=False), settings_for(0))
            for round_index in range(args.rounds):
                settings = settings_for(round_index)
                jobs = prepare_run(run_file, settings).jobs
                bares.append(transport_seconds(base_url, jobs, settings))
                firsts.append(timed_review(run_file, settings))
                bares.append(transport_seconds(base_url, jobs, settings))
                refreshes.append(timed_review(run_file, settings, refresh=True))
            n = firsts[0].outcome.needed
            ideal = n * args.latency / args.concurrency
            fake.terminate()
            fake.wait(timeout=10)
            rerun = timed_review(run_file, settings_for(0))
    finally:
        fake.kill()
        fake.wait(timeout=10)

    print(f"verdicts: {n}  concurrency: {args.concurrency}  latency: {args.latency * 1000:.0f} ms")
    print(f"ideal N·latency/concurrency: {ideal:.2f} s")
    print(f"process warm-up, once per panel process (HTTP stack imports, CA bundle): {warm_up_s:.2f} s")
    for round_index in range(args.rounds):
        first, again = firsts[round_index], refreshes[round_index]
        bare_before, bare_after = bares[2 * round_index], bares[2 * round_index + 1]
        print(f"round {round_index + 1}:")
        print(f"  bare httpx2: {bare_before:.2f} s, / ideal {ideal / bare_before:.3f}")
        print(
            f"  first run: {first.outcome.status}, {first.outcome.asked} asked, {first.outcome.failed} failed, "
            f"{first.outcome.requests} requests, {first.seconds:.2f} s, / ideal {ideal / first.seconds:.3f}"
        )
        print(f"    {first.split}")
        print(f"  bare httpx2: {bare_after:.2f} s, / ideal {ideal / bare_after:.3f}")
        print(
            f"  --refresh run: {again.outcome.asked} asked, {again.outcome.requests} requests, {again.seconds:.2f} s, "
            f"/ ideal {ideal / again.seconds:.3f}"
        )
        print(f"    {again.split}")
    first_s = statistics.median(t.seconds for t in firsts)
    again_s = statistics.median(t.seconds for t in refreshes)
    bare_s = statistics.median(bares)
    print(f"medians of {args.rounds} rounds, throughput / ideal (target >= 0.95):")
    print(
        f"  first run {ideal / first_s:.3f} ({ideal / (first_s + warm_up_s):.3f} counting the warm-up), "
        f"--refresh run {ideal / again_s:.3f}, bare httpx2 {ideal / bare_s:.3f}"
    )
    print(f"  panel / bare httpx2: first run {bare_s / first_s:.0%}, --refresh run {bare_s / again_s:.0%}")
    print(
        "  whole draft_run call: first run "
        f"{statistics.median(t.call_seconds for t in firsts):.2f} s, --refresh run "
        f"{statistics.median(t.call_seconds for t in refreshes):.2f} s"
    )
    print(
        f"cached rerun: {rerun.seconds:.3f} s, {rerun.outcome.cached} cached, {rerun.outcome.asked} asked, "
        f"{rerun.outcome.requests} model calls  (target 0), {rerun.outcome.status}"
    )


if __name__ == "__main__":
    main()
