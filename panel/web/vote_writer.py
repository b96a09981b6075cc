"""The vote server's single writer: votes durable in the journal before they are answered, folded into DuckDB behind.

While `panel serve` runs it is the database's single writer: VoteWriter makes queued votes durable in
batches (the journal beside the database, fsync'd) on one thread and answers each vote only then, so an
acknowledged vote is never lost, and CommunityVotes mirrors exactly what is durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from concurrent.futures import Executor
from datetime import datetime, timedelta, timezone

from panel.community import CommunityVotes
from panel.store import Store, VoteEvent


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

    def __init__(
        self,
        store: Store,
        votes: CommunityVotes,
        executor: Executor,
        max_batch: int = 2000,
        max_queue: int = 20_000,
        fold_interval_s: float = FOLD_INTERVAL_S,
    ) -> None:
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
