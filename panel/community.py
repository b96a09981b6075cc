"""Community votes: readers' ship/skip per tool, their tallies, and the guards on who may vote how often.

Votes are append-only events (store.add_votes); a reader's latest event per tool counts. While
`panel serve` runs it is the database's single writer: VoteWriter makes queued votes durable in
batches (the journal beside the database, fsync'd) on one thread and answers each vote only then, so
an acknowledged vote is never lost, and CommunityVotes mirrors exactly what is durable; the journal
folds into DuckDB behind.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import os
import queue
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from panel.errors import ServeError
from panel.store import Store, VoteEvent
from panel.tally import percent

_TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}")  # reader id . HMAC-SHA256


@dataclass(frozen=True)
class CommunityTally:
    """How readers voted on one tool: each reader's latest vote counted once."""

    ship: int = 0
    skip: int = 0

    @property
    def votes(self) -> int:
        """Readers who voted."""
        return self.ship + self.skip

    @property
    def ship_rate(self) -> float | None:
        """Share of readers who said ship (None with no votes)."""
        return self.ship / self.votes if self.votes else None

    @property
    def ship_percent(self) -> str:
        """The page's figure: '40%', or '—' with no votes."""
        return percent(self.ship_rate)

    def gap(self, panel_rate: float | None) -> str:
        """Panel minus community ship %, in points ('+35 pts', '−10 pts', '0 pts'); '—' when either is missing."""
        if panel_rate is None or self.ship_rate is None:
            return "—"
        points = round(panel_rate * 100) - round(self.ship_rate * 100)
        return f"+{points} pts" if points > 0 else (f"−{-points} pts" if points < 0 else "0 pts")


@dataclass(frozen=True)
class VoteForms:
    """What a served page needs to show one reader the vote buttons: where to post, their CSRF token, their votes."""

    action: str
    csrf: str
    mine: dict[str, str]  # tool id -> this reader's current verdict


class CommunityVotes:
    """Every reader's current vote per (run, tool), kept in step with the committed events."""

    def __init__(self, current: Iterable[VoteEvent] = ()) -> None:
        self._by_tool: dict[tuple[str, str], dict[str, str]] = {}
        self._ship: dict[tuple[str, str], int] = {}
        self.apply(current)

    def apply(self, events: Iterable[VoteEvent]) -> None:
        """Take committed events in commit order: a reader's later vote replaces their earlier one."""
        for event in events:
            key = (event.run_id, event.tool_id)
            voters = self._by_tool.setdefault(key, {})
            before = voters.get(event.voter_id)
            voters[event.voter_id] = event.verdict
            self._ship[key] = self._ship.get(key, 0) + (event.verdict == "ship") - (before == "ship")

    def tally(self, run_id: str, tool_id: str) -> CommunityTally:
        """The community tally of one tool in one run."""
        key = (run_id, tool_id)
        ship = self._ship.get(key, 0)
        return CommunityTally(ship=ship, skip=len(self._by_tool.get(key, {})) - ship)

    def vote_of(self, run_id: str, tool_id: str, voter_id: str) -> str | None:
        """This reader's current vote on a tool, if any."""
        return self._by_tool.get((run_id, tool_id), {}).get(voter_id)


class VoterKeys:
    """Readers' cookie tokens, issued and signed by this server, and the CSRF tokens bound to them.

    A token is a random reader id and its HMAC-SHA256 under the server's secret (load_voter_secret), so a
    made-up token is told apart from an issued one without storing any token.
    """

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def issue(self) -> str:
        """A fresh voter token for a new reader's cookie: `<reader id>.<signature>`."""
        reader_id = secrets.token_urlsafe(16)
        return f"{reader_id}.{self._signature(reader_id)}"

    def is_issued(self, value: str | None) -> bool:
        """True only for a token this server issued (constant-time check of its signature)."""
        if value is None or _TOKEN_PATTERN.fullmatch(value) is None:
            return False
        reader_id, signature = value.split(".")
        return hmac.compare_digest(self._signature(reader_id), signature)

    @staticmethod
    def voter_id(token: str) -> str:
        """What the database stores for a reader: a hash, so an export cannot be used to vote as them."""
        return hashlib.sha256(token.encode("ascii")).hexdigest()

    def csrf_token(self, token: str) -> str:
        """The token a vote form must carry for this reader's cookie."""
        return hmac.new(self._secret, b"vote:" + token.encode("ascii"), hashlib.sha256).hexdigest()

    def csrf_ok(self, token: str, csrf: str) -> bool:
        """True when `csrf` was issued by this server for this reader's cookie."""
        # compare_digest refuses non-ASCII text with a TypeError; a form can carry any percent-encoded character.
        return csrf.isascii() and hmac.compare_digest(self.csrf_token(token), csrf)

    def _signature(self, reader_id: str) -> str:
        digest = hmac.new(self._secret, b"reader:" + reader_id.encode("ascii"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def voter_secret_path(db_path: Path) -> Path:
    """Where a database's voter secret lives: a 0600 file beside it, e.g. runs/panel.duckdb.voter-secret."""
    return db_path.with_name(db_path.name + ".voter-secret")


def load_voter_secret(db_path: Path) -> bytes:
    """The secret that signs this database's voter tokens, created (0600) on first use; ServeError if unusable.

    A file beside the database rather than a table, so `panel sql` and `panel export` (which read every
    table) never hand it to anyone who could then mint voter tokens.
    """
    path = voter_secret_path(db_path)
    if not path.exists():
        _create_voter_secret(path)
    try:
        mode = path.stat().st_mode
        secret = bytes.fromhex(path.read_text(encoding="ascii").strip())
    except (OSError, UnicodeDecodeError, ValueError):
        secret, mode = b"", 0
    if mode & 0o077:
        raise ServeError(f"{path}: the voter secret is open to other users; run chmod 600 on it")
    if len(secret) < 32:
        raise ServeError(f"{path}: unreadable voter secret; delete it to make a new one (readers then get new cookies)")
    return secret


def _create_voter_secret(path: Path) -> None:
    # Written whole to a private temporary file, then linked into place: never a partial secret file.
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    try:
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # made meanwhile by another process: that one stands
            os.link(partial, path)
    except OSError as error:
        raise ServeError(f"{path}: cannot create the voter secret ({error.strerror})") from None
    finally:
        partial.unlink(missing_ok=True)


class RateLimiter:
    """A token bucket per voter: `burst` votes at once, then one every 1/`per_second` seconds."""

    def __init__(self, burst: int = 10, per_second: float = 1.0, max_tracked: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.burst, self.per_second, self.max_tracked = burst, per_second, max_tracked
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def wait_s(self, key: str) -> float:
        """0 and a vote spent when `key` may vote now; otherwise the seconds until it may."""
        now = self._clock()
        level, last = self._buckets.pop(key, (float(self.burst), now))
        level = min(float(self.burst), level + (now - last) * self.per_second)
        wait = 0.0 if level >= 1 else (1 - level) / self.per_second
        self._buckets[key] = (level - 1 if wait == 0 else level, now)
        while len(self._buckets) > self.max_tracked:  # forget the longest-idle voters first
            self._buckets.popitem(last=False)
        return wait


class VoteQueueFull(Exception):
    """More votes are waiting than the writer may queue; the reader should retry shortly."""


# The journal folds into DuckDB at most this often: each fold opens, commits and checkpoints the file (~50-100 ms
# of the server's CPU, beside the readers' pages; at 0.5 s the vote p95 beside 32 readers was ~30% higher), and
# between folds other processes' readers get in. So `panel sql` sees a vote within about this long.
FOLD_INTERVAL_S = 2.0
# On stop, how long the last fold waits for a reader in another process to let go of the file.
STOP_FOLD_WAIT_S = 5.0


class VoteWriter:
    """Makes queued votes durable in batches on a thread of its own, answers each then, and folds them into DuckDB.

    The thread appends each batch to the journal beside the database and fsyncs it (Store.journal_votes, a
    few ms) before its votes are counted and answered on the event loop, so an acknowledged vote survives
    kill -9 (the next process that opens the database folds it) and CommunityVotes mirrors exactly what is
    durable. A thread rather than a task: a vote then waits for the event loop twice (its batch answered, its
    handler resumed), however busy readers keep the loop. A task folds the journal into the database on the
    database thread, at most every `fold_interval_s`, each fold one short transaction (Store.fold_journal): the
    file stays closed in between, so `panel sql` in another process still reads, and while it holds the file
    votes simply wait in the journal. `committed` counts votes made durable, `batches` their journal appends,
    `folds` the transactions that stored them in the database; `unfolded` is True when stop() left some in the
    journal.
    """

    def __init__(self, store: Store, votes: CommunityVotes, executor: Executor,
                 max_batch: int = 2000, max_queue: int = 20_000, fold_interval_s: float = FOLD_INTERVAL_S) -> None:
        self.store, self.votes, self.executor = store, votes, executor
        self.max_batch, self.max_queue, self.fold_interval_s = max_batch, max_queue, fold_interval_s
        self.committed = 0
        self.batches = 0
        self.folds = 0
        self.unfolded = False
        self.fold_error: str | None = None  # the last fold's failure (the votes wait in the journal meanwhile)
        self._queue: queue.SimpleQueue[tuple[VoteEvent, asyncio.Future[None]] | None] = queue.SimpleQueue()
        self._waiting = 0  # votes queued and not yet answered (counted on the event loop only)
        self._thread = threading.Thread(target=self._write, name="panel-vote-journal", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Future[None] | None = None
        self._journaled = asyncio.Event()
        self._folder: asyncio.Task[None] | None = None
        self._last_at = datetime.min.replace(tzinfo=timezone.utc)

    def start(self) -> None:
        """Start the journal thread and the folder task on the running event loop."""
        self._loop = asyncio.get_running_loop()
        self._stopped = self._loop.create_future()
        self._thread.start()
        self._folder = self._loop.create_task(self._fold_behind())

    async def stop(self) -> None:
        """Make everything already queued durable, fold the journal into the database, then stop."""
        if self._stopped is not None:
            self._queue.put(None)
            await self._stopped  # answered after the last batch's answers: the loop runs them in order
            self._stopped = None
        if self._folder is not None:
            self._folder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._folder
            self._folder = None
            self.unfolded = not await self._fold(STOP_FOLD_WAIT_S)

    async def submit(self, run_id: str, tool_id: str, voter_id: str, verdict: str) -> None:
        """Queue a vote and return once it is durable; raise VoteQueueFull or the store's error."""
        if self._stopped is None or self._waiting >= self.max_queue:
            raise VoteQueueFull
        # Strictly increasing timestamps keep "latest vote" unambiguous even within one batch.
        now = max(datetime.now(timezone.utc), self._last_at + timedelta(microseconds=1))
        self._last_at = now
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting += 1
        self._queue.put((VoteEvent(run_id, tool_id, voter_id, verdict, now), done))
        await done

    def _write(self) -> None:
        """The journal thread: take what is queued (up to max_batch), append it with one fsync, hand it back."""
        assert self._loop is not None and self._stopped is not None
        stopping = False
        while not stopping:
            batch: list[tuple[VoteEvent, asyncio.Future[None]]] = []
            item = self._queue.get()
            while True:
                if item is None:
                    stopping = True
                else:
                    batch.append(item)
                if stopping or len(batch) >= self.max_batch or self._queue.empty():
                    break
                item = self._queue.get_nowait()
            if batch:
                error: Exception | None = None
                try:
                    self.store.journal_votes([event for event, _ in batch])
                except Exception as failure:  # noqa: BLE001 - whatever it is, each vote of the batch hears of it
                    error = failure
                self._loop.call_soon_threadsafe(self._answer, batch, error)
        self._loop.call_soon_threadsafe(self._stopped.set_result, None)

    def _answer(self, batch: list[tuple[VoteEvent, asyncio.Future[None]]], error: Exception | None) -> None:
        """On the event loop: count a durable batch and answer its votes, or refuse them all with `error`."""
        self._waiting -= len(batch)
        if error is None:
            events = [event for event, _ in batch]
            self.votes.apply(events)
            self.committed += len(events)
            self.batches += 1
            self._journaled.set()
        for _, done in batch:
            if done.done():  # its reader hung up
                continue
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)

    async def _fold_behind(self) -> None:
        while True:
            await self._journaled.wait()
            self._journaled.clear()
            if not await self._fold(0.0):  # a reader holds the file: try again next time round
                self._journaled.set()
            await asyncio.sleep(self.fold_interval_s)

    async def _fold(self, wait_s: float) -> bool:
        """Fold the journal on the database thread; False if it could not (busy or failing: votes stay journaled)."""
        try:
            folded = await asyncio.get_running_loop().run_in_executor(self.executor, self._fold_now, wait_s)
        except Exception as error:  # noqa: BLE001 - a damaged file or a full disk: the votes stay journaled
            self.fold_error = str(error).splitlines()[0] if str(error) else type(error).__name__
            return False
        if folded is None:
            return True
        if folded:
            self.folds += 1
            self.fold_error = None
        return folded

    def _fold_now(self, wait_s: float) -> bool | None:
        # None: nothing to fold (a page's read of its run may have folded the journal already).
        return None if self.store.journal.empty() else self.store.fold_journal(wait_s)
