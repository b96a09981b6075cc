"""Benchmark served pages: pages/s `panel serve` gives 32 readers, and what their reading does to vote latency.

Reviews the example run into a fresh database (fake endpoint, as bench_votes.py), starts `panel serve` as its
own process with the per-reader rate limit lifted, gives each of R readers (default 32) a voter cookie, then
for D seconds (default 10) has them GET the pair's page back to back, R in flight at once, while one voter in
a process of its own (not queued behind the readers' event loop) casts a vote every 20 ms and times each until
it is acknowledged (durable in the journal beside the database); for the first 2 s the voter votes alone, for the vote
latency of an idle
server on this machine now. Prints pages/s, page and vote latency p50/p95, CPU time per page of the server and
of the readers' client, and the ratio of each figure to its target (>= 200 pages/s; vote p95 < 100 ms): a ratio
>= 1 meets it. Every page must carry the reader's own CSRF token, and the last page must show the voter's votes.

    .venv/bin/python bench/bench_pages.py
    .venv/bin/python bench/bench_pages.py --readers 64 --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import httpcore2

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_votes, beside this file

from bench_votes import reviewed_database, start_serving, stop_serving  # noqa: E402

from panel.store import VoteTarget  # noqa: E402

PAGES_PER_S_TARGET = 200.0
VOTE_P95_TARGET_S = 0.100
VOTE_EVERY_S = 0.020


async def reader_keys(pool: httpcore2.AsyncConnectionPool, votes_url: str, count: int) -> list[tuple[str, str]]:
    """`count` new readers: each one's cookie header and the CSRF token issued for it."""
    keys = []
    for _ in range(count):
        issued = await pool.request("GET", votes_url)
        cookie = dict(issued.headers)[b"set-cookie"].decode().split(";")[0]
        keys.append((cookie, json.loads(issued.content)["csrf"]))
    return keys


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def vote(
    base_url: str, target: VoteTarget, alone_s: float, seconds: float, answers: multiprocessing.Queue
) -> dict[str, list[float]]:  # type: ignore[type-arg]
    """One voter voting every VOTE_EVERY_S: alone for `alone_s`, then `seconds` beside the readers; latencies.

    Once it has its cookie it puts the two moments (wall clock) on `answers`, for the readers to start at the first.
    """
    votes_url = f"{base_url}/runs/{target.run_id}/pairs/{target.pair_index + 1}/votes"
    latencies: dict[str, list[float]] = {"alone": [], "beside": []}
    async with httpcore2.AsyncConnectionPool(max_connections=1) as pool:
        [(cookie, csrf)] = await reader_keys(pool, votes_url, 1)
        alone_until = time.time() + alone_s
        until = alone_until + seconds
        answers.put((alone_until, until))
        headers = {"cookie": cookie, "accept": "application/json", "content-type": "application/x-www-form-urlencoded"}
        n = 0
        while (now := time.time()) < until:
            form = {
                "tool": (target.left_tool_id, target.right_tool_id)[n % 2],
                "verdict": ("ship", "skip")[(n // 2) % 2],
                "csrf": csrf,
            }
            started = time.perf_counter()
            answer = await pool.request("POST", votes_url, headers=headers, content=urlencode(form).encode())
            if answer.status != 200:
                raise SystemExit(f"vote refused: {answer.status} {answer.content.decode().strip()}")
            latencies["alone" if now < alone_until else "beside"].append(time.perf_counter() - started)
            n += 1
            await asyncio.sleep(VOTE_EVERY_S)
    return latencies


def voter_process(
    base_url: str, target: VoteTarget, alone_s: float, seconds: float, answers: multiprocessing.Queue
) -> None:  # type: ignore[type-arg]
    """The voter, in a process of its own: in the readers' process it would wait behind their event loop."""
    answers.put(asyncio.run(vote(base_url, target, alone_s, seconds, answers)))


async def read_until(
    base_url: str, target: VoteTarget, readers: int, start: float, until: float, server_pid: int
) -> dict[str, object]:
    """R readers GETting the page back to back from `start` to `until` (wall clock); latencies and CPU used."""
    page_url = f"{base_url}/runs/{target.run_id}/pairs/{target.pair_index + 1}"
    latencies: list[float] = []
    async with httpcore2.AsyncConnectionPool(max_connections=readers) as pool:
        keys = await reader_keys(pool, page_url + "/votes", readers)
        await pool.request("GET", page_url, headers={"cookie": keys[0][0]})  # the first GET renders the page
        await asyncio.sleep(max(0.0, start - time.time()))

        async def reader(cookie: str, csrf: str) -> None:
            while time.time() < until:
                started = time.perf_counter()
                page = await pool.request("GET", page_url, headers={"cookie": cookie})
                if page.status != 200 or csrf.encode() not in page.content:
                    raise SystemExit(f"page refused or without the reader's CSRF token: {page.status}")
                latencies.append(time.perf_counter() - started)

        cpu_before, mine_before, started = cpu_seconds(server_pid), cpu_seconds(os.getpid()), time.perf_counter()
        await asyncio.gather(*(reader(cookie, csrf) for cookie, csrf in keys))
        elapsed = time.perf_counter() - started
        cpu, mine = cpu_seconds(server_pid) - cpu_before, cpu_seconds(os.getpid()) - mine_before
        last_page = (await pool.request("GET", page_url)).content.decode()
    return {"pages": latencies, "seconds": elapsed, "cpu": cpu, "client_cpu": mine, "last_page": last_page}


def quantile_ms(samples: list[float], q: int) -> float:
    """The q-th percentile of `samples`, in milliseconds."""
    if len(samples) < 2:
        return samples[0] * 1000 if samples else float("nan")
    return statistics.quantiles(samples, n=100)[q - 1] * 1000


def main() -> None:
    """Run the benchmark and print pages/s, vote latency and their ratios to the targets."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=32, help="readers reading at once (default 32)")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long they read (default 10)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        store = reviewed_database(Path(folder))
        [target] = store.vote_targets()
        server, base_url = start_serving(store)
        answers: multiprocessing.Queue = multiprocessing.get_context("spawn").Queue()  # type: ignore[type-arg]
        voter = multiprocessing.get_context("spawn").Process(
            target=voter_process, args=(base_url, target, 2.0, args.seconds, answers)
        )
        try:
            voter.start()
            alone_until, until = answers.get(timeout=60)
            result = asyncio.run(read_until(base_url, target, args.readers, alone_until, until, server.pid))
            votes = answers.get(timeout=60)
            voter.join(timeout=10)
        finally:
            if voter.is_alive():
                voter.kill()
            stop_serving(server)
    pages, cpu, client_cpu = result["pages"], result["cpu"], result["client_cpu"]
    assert isinstance(pages, list) and isinstance(cpu, float) and isinstance(client_cpu, float)
    assert isinstance(result["seconds"], float)
    alone, beside = votes["alone"], votes["beside"]
    pages_per_s = len(pages) / result["seconds"]
    vote_p95_ms = quantile_ms(beside, 95)
    # The voter's last two votes were on each tool, and it is the only voter: 1 vote per tool on the page.
    tallied = str(result["last_page"]).count("Community · 1 vote</span>") == 2
    print(
        f"{args.readers} readers for {result['seconds']:.1f} s; one voter (its own process) voting every "
        f"{VOTE_EVERY_S * 1000:.0f} ms"
    )
    print(
        f"pages: {len(pages)} ({pages_per_s:,.0f}/s); latency p50 {quantile_ms(pages, 50):.0f} ms, "
        f"p95 {quantile_ms(pages, 95):.0f} ms; CPU per page: server {cpu * 1000 / len(pages):.2f} ms, "
        f"readers' client {client_cpu * 1000 / len(pages):.2f} ms"
    )
    print(
        f"votes alone before the readers: {len(alone)}; latency p50 {quantile_ms(alone, 50):.0f} ms, "
        f"p95 {quantile_ms(alone, 95):.0f} ms"
    )
    print(
        f"votes beside the readers: {len(beside)}; latency p50 {quantile_ms(beside, 50):.0f} ms, "
        f"p95 {vote_p95_ms:.0f} ms; last page shows them: {'OK' if tallied else 'FAIL'}"
    )
    print(
        f"pages/s / {PAGES_PER_S_TARGET:.0f} = {pages_per_s / PAGES_PER_S_TARGET:.2f}; "
        f"{VOTE_P95_TARGET_S * 1000:.0f} ms / vote p95 = {VOTE_P95_TARGET_S * 1000 / vote_p95_ms:.2f}"
        "  (>= 1 meets the target)"
    )
    if not tallied:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
