"""Benchmark community votes: votes per second `panel serve` sustains with none lost.

Reviews the example run into a fresh database (fake endpoint), starts `panel serve` as its own process
(so the load generator does not share its GIL) with the rate limits lifted (this measures the
write path, not the policy), then lets R readers vote as fast as answers come back, each reader one vote
at a time (so its last acknowledged vote per tool is known), R in flight at once. After Ctrl-C to the
server (which folds its vote journal into the database as it stops) it checks the database: stored events ==
acknowledged votes (0 lost) and every reader's current vote == its last acknowledged one. Prints votes/s, latency,
batches, and the ratio to one transaction
per vote (the unbatched write path, measured directly on the store).

    .venv/bin/python bench/bench_votes.py
    .venv/bin/python bench/bench_votes.py --readers 400 --votes 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlencode

import duckdb
import httpcore2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for tests.fake_openai when run as a script

from panel.store import Store, VoteEvent, VoteTarget  # noqa: E402
from panel.web.voter_keys import VoterKeys  # noqa: E402
from tests.fake_openai import FakeOpenAI, chair_responder, load_reference_labels, reference_responder  # noqa: E402

PANEL = [sys.executable, "-c", "from panel.cli import main; main()"]
LABELS = ROOT.parent / "shared" / "reference" / "labelled-reviews.jsonl"


def reviewed_database(folder: Path) -> Store:
    """A database holding the example run, reviewed by the fake endpoint."""
    labels = LABELS if LABELS.exists() else ROOT / "tests" / "data" / "labelled-reviews.jsonl"
    db = folder / "panel.duckdb"
    with FakeOpenAI(responder=chair_responder(reference_responder(load_reference_labels(labels)))) as fake:
        subprocess.run(
            [
                *PANEL,
                "review",
                str(ROOT / "runs" / "example.yaml"),
                "--base-url",
                fake.base_url,
                "--db",
                str(db),
                "--out",
                str(folder / "pages"),
            ],
            check=True,
            capture_output=True,
            cwd=ROOT,
            env={k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PANEL_"))},
        )
    return Store(db)


async def crowd(base_url: str, target: VoteTarget, readers: int, votes_each: int) -> tuple[list[float], dict, float]:
    """R readers voting concurrently; returns latencies, each reader's last acknowledged vote, seconds.

    The load comes from httpcore2 (httpx2's own transport) with the cookie sent by hand: httpx2's client
    layer costs more CPU per request than the server does, and would measure itself instead.
    """
    url = f"{base_url}/runs/{target.run_id}/pairs/{target.pair_index + 1}/votes"
    tools = (target.left_tool_id, target.right_tool_id)
    latencies: list[float] = []
    last: dict[tuple[str, str], str] = {}
    async with httpcore2.AsyncConnectionPool(max_connections=readers) as pool:
        readers_keys = []
        for _ in range(readers):
            issued = await pool.request("GET", url)
            cookie = dict(issued.headers)[b"set-cookie"].decode().split(";")[0]
            readers_keys.append((cookie, json.loads(issued.content)["csrf"]))

        async def reader(index: int) -> None:
            cookie, csrf = readers_keys[index]
            headers = {
                "cookie": cookie,
                "accept": "application/json",
                "content-type": "application/x-www-form-urlencoded",
            }
            for n in range(votes_each):
                tool, verdict = tools[n % 2], ("ship", "skip")[(index + n // 2) % 2]
                started = time.perf_counter()
                answer = await pool.request(
                    "POST",
                    url,
                    headers=headers,
                    content=urlencode({"tool": tool, "verdict": verdict, "csrf": csrf}).encode(),
                )
                if answer.status != 200:
                    raise SystemExit(f"vote refused: {answer.status} {answer.content.decode().strip()}")
                latencies.append(time.perf_counter() - started)
                last[(VoterKeys.voter_id(cookie.split("=", 1)[1]), tool)] = verdict

        started = time.perf_counter()
        await asyncio.gather(*(reader(i) for i in range(readers)))
        seconds = time.perf_counter() - started
    return latencies, last, seconds


def start_serving(store: Store) -> tuple[subprocess.Popen[str], str]:
    """`panel serve` over `store` as a process of its own, rate limits lifted (one address plays every reader)."""
    server = subprocess.Popen(
        [
            *PANEL,
            "serve",
            "--port",
            "0",
            "--db",
            str(store.path),
            "--burst",
            "1000000",
            "--votes-per-second",
            "1000000",
            "--new-readers-per-minute",
            "1000000",
            "--votes-per-minute-per-address",
            "1000000",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=dict(os.environ, COLUMNS="200"),
    )
    assert server.stdout is not None
    match = re.search(r"serving (\S+)/", server.stdout.readline())
    if not match:
        server.kill()
        raise SystemExit("panel serve did not start")
    return server, match.group(1)


def stop_serving(server: subprocess.Popen[str]) -> str:
    """Ctrl-C to `panel serve` (it commits every queued vote); what it printed."""
    server.send_signal(signal.SIGINT)
    out, _ = server.communicate(timeout=60)
    return out


def unbatched_votes_per_second(store: Store, target: VoteTarget, count: int) -> float:
    """Votes/s when every vote is its own transaction (what the writer would do without batching)."""
    started = time.perf_counter()
    for n in range(count):
        store.add_votes(
            [VoteEvent(target.run_id, target.left_tool_id, f"unbatched-{n}", "ship", datetime.now(timezone.utc))]
        )
    return count / (time.perf_counter() - started)


def main() -> None:
    """Run the benchmark and print votes/s, the loss check and the batching ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=200, help="readers voting at once (default 200)")
    parser.add_argument("--votes", type=int, default=20, help="votes per reader (default 20)")
    parser.add_argument("--unbatched", type=int, default=40, help="single-vote transactions to time (default 40)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        store = reviewed_database(Path(folder))
        [target] = store.vote_targets()
        server, base_url = start_serving(store)
        try:
            latencies, last, seconds = asyncio.run(crowd(base_url, target, args.readers, args.votes))
        finally:
            out = stop_serving(server)
        acknowledged = len(latencies)
        with duckdb.connect(str(store.path), read_only=True) as con:
            stored = con.execute("SELECT count(*) FROM votes").fetchall()[0][0]
        current = {(v.voter_id, v.tool_id): v.verdict for v in store.current_votes()}
        lost = acknowledged - stored
        mismatched = sum(1 for key, verdict in last.items() if current.get(key) != verdict)
        batched_rate = acknowledged / seconds
        single_rate = unbatched_votes_per_second(store, target, args.unbatched)
    quantiles = statistics.quantiles(latencies, n=100)
    print(f"readers {args.readers} x {args.votes} votes, {args.readers} in flight")
    print(
        f"acknowledged {acknowledged}, stored {stored}, lost {lost}, "
        f"current vote != last acknowledged: {mismatched}  -> {'OK' if lost == 0 and mismatched == 0 else 'FAIL'}"
    )
    print(
        f"sustained {batched_rate:,.0f} votes/s over {seconds:.1f} s; latency p50 {quantiles[49] * 1000:.0f} ms, "
        f"p95 {quantiles[94] * 1000:.0f} ms; server: {out.strip().splitlines()[-1]}"
    )
    print(
        f"one transaction per vote: {single_rate:,.1f} votes/s; batched/unbatched = {batched_rate / single_rate:.0f}x"
    )
    if lost or mismatched:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
