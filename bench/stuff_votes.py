"""Try to stuff the ballot of `panel serve` from one client address and count the votes that counted.

Reviews the example run into a fresh database (fake endpoint), then for each strategy starts `panel serve`
(default limits) on a copy and runs it from --concurrency threads for --seconds:

- made-up: a new made-up voter cookie per vote, with the CSRF token the server answers for it;
- discard: drops its cookie each round to be issued a new one, with a made-up X-Forwarded-For.

Counted votes are the distinct (reader, tool) pairs stored, i.e. what the community tally grows by.

    .venv/bin/python bench/stuff_votes.py --seconds 10
"""

from __future__ import annotations

import argparse
import itertools
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import httpx2
from bench_votes import PANEL, reviewed_database  # run as a script: bench/ is on sys.path

Strategy = Callable[[httpx2.Client, str, tuple[str, str], int], int]


def made_up_cookie(client: httpx2.Client, url: str, tools: tuple[str, str], round_: int) -> int:
    """One vote under a cookie nobody issued; returns the votes the server accepted."""
    cookie = {"cookie": f"panel_voter={secrets.token_urlsafe(32)}"}
    client.cookies.clear()
    answer = client.get(url, headers=cookie)
    csrf = answer.json()["csrf"] if answer.status_code == 200 else ""  # past the address's limit: a plain 429
    client.cookies.clear()  # keep the made-up cookie, not the one the server may have issued instead
    answer = client.post(
        url,
        headers={**cookie, "accept": "application/json"},
        data={"tool": tools[round_ % 2], "verdict": "ship", "csrf": csrf},
    )
    return int(answer.status_code == 200)


def discarded_cookie(client: httpx2.Client, url: str, tools: tuple[str, str], round_: int) -> int:
    """A fresh issued cookie, a vote on both tools, then the cookie thrown away."""
    client.cookies.clear()
    spoofed = {"x-forwarded-for": f"10.{round_ // 65536 % 256}.{round_ // 256 % 256}.{round_ % 256}"}
    issued = client.get(url, headers=spoofed)
    if issued.status_code != 200:
        return 0
    return sum(
        client.post(
            url,
            headers={**spoofed, "accept": "application/json"},
            data={"tool": tool, "verdict": "ship", "csrf": issued.json()["csrf"]},
        ).status_code
        == 200
        for tool in tools
    )


def stuff(db: Path, strategy: Strategy, seconds: float, concurrency: int) -> tuple[int, int, int]:
    """Serve `db`, run `strategy` from `concurrency` threads for `seconds`; returns (rounds, accepted, counted)."""
    server = subprocess.Popen([*PANEL, "serve", "--port", "0", "--db", str(db)], stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    match = re.search(r"serving (\S+)/", server.stdout.readline())
    if not match:
        server.kill()
        raise SystemExit("panel serve did not start")
    with duckdb.connect(str(db), read_only=True) as con:
        run_id, left, right = con.execute("SELECT run_id, left_tool_id, right_tool_id FROM pairs").fetchall()[0]
    url = f"/runs/{run_id}/pairs/1/votes"
    rounds = itertools.count()
    deadline = time.monotonic() + seconds

    def attacker() -> tuple[int, int]:
        done = accepted = 0
        with httpx2.Client(base_url=match.group(1), timeout=10) as client:
            while time.monotonic() < deadline:
                accepted += strategy(client, url, (left, right), next(rounds))
                done += 1
        return done, accepted

    try:
        with ThreadPoolExecutor(concurrency) as pool:
            results = list(pool.map(lambda _: attacker(), range(concurrency)))
    finally:
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=60)
    with duckdb.connect(str(db), read_only=True) as con:
        counted = con.execute("SELECT count(DISTINCT (voter_token, tool_id)) FROM votes").fetchall()[0][0]
    return sum(done for done, _ in results), sum(accepted for _, accepted in results), counted


def main() -> None:
    """Run each strategy against a fresh copy of the reviewed database and print what counted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="how long each strategy runs (default 10)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight (default 16)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        reviewed = reviewed_database(Path(folder)).path
        for name, strategy in (("made-up", made_up_cookie), ("discard", discarded_cookie)):
            db = Path(folder) / name / "panel.duckdb"
            db.parent.mkdir()
            shutil.copy(reviewed, db)
            rounds, accepted, counted = stuff(db, strategy, args.seconds, args.concurrency)
            print(
                f"{name:8} {args.seconds:g} s: {rounds} rounds, {accepted} votes accepted, "
                f"{counted} counted votes stored",
                flush=True,
            )


if __name__ == "__main__":
    sys.exit(main())
