"""AnswerWriter: the one thread that writes a run, so the event loop never waits on DuckDB or the disk."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import duckdb

from panel.answers import Answer
from panel.config import Settings
from panel.errors import StoreError
from panel.store.database import Store

BATCH_SIZE = 32
BATCH_INTERVAL_S = 0.5
# After its journal fsync a batch tries the database this long; if a reader holds it, the batch stays in the
# journal and folds with a later one. Short, so the next batch reaches the journal on time.
FOLD_WAIT_S = 0.25
# A batch is durable once journaled. Folding the journal into DuckDB (open, insert, commit, checkpoint) costs
# ~50 ms of CPU whatever its size (3-5 times that on a loaded machine), part of it holding the GIL the event
# loop needs: mid-run the writer folds at most this often (other processes see answers that much later), and
# every batch near the end of a run, so that the last fold, which the run waits for, stays small. But not
# the batches of the final wave (the last `concurrency` answers, all in flight at once): a fold begun then
# is still running when the last answer lands, and the last fold would wait behind it.
FOLD_INTERVAL_S = 2.0
# At the end of a command: how long to wait for readers to let go so the journal folds before exiting.
SETTLE_WAIT_S = 120.0


class AnswerWriter:
    """The one thread that writes a run: its record first, then its answers in batches, then its status.

    Each batch goes to the run journal (fsync'd); the journal goes into DuckDB (Store.save_answers) every
    `fold_interval_s`, with each of the batches that end the run's `expected` answers, and with the last,
    if no other process holds the file, so a reader delays answers but never loses one. The event loop only
    queues answers. Use as a context manager; call finish(status) before leaving it, or the run is marked
    `status_on_error` ("stopped"; None leaves the status alone) when an exception leaves the block. A failed
    write (the journal's disk, a broken database) also marks it so; submit() and close() then raise that
    failure as a StoreError.
    """

    def __init__(
        self,
        store: Store,
        run_id: str,
        settings: Settings,
        first: Callable[[], None] | None = None,
        batch_size: int = BATCH_SIZE,
        interval_s: float = BATCH_INTERVAL_S,
        fold_wait_s: float = FOLD_WAIT_S,
        status_on_error: str | None = "stopped",
        expected: int | None = None,
        fold_interval_s: float = FOLD_INTERVAL_S,
    ) -> None:
        self.store, self.run_id, self.settings = store, run_id, settings
        self.batch_size, self.interval_s, self.fold_wait_s = batch_size, interval_s, fold_wait_s
        self.status_on_error = status_on_error
        self.expected, self.fold_interval_s = expected, fold_interval_s
        self.journaled = 0  # answers made durable so far
        self._first = first
        self._status: str | None = None
        self._queue: queue.Queue[Answer | _Close] = queue.Queue()
        self._error: StoreError | None = None
        self._thread = threading.Thread(target=self._write, name="panel-answer-writer", daemon=True)
        self._thread.start()

    def submit(self, answer: Answer) -> None:
        """Queue an answer for the next batch; raise StoreError if an earlier write failed."""
        if self._error is not None:
            raise self._error
        self._queue.put(answer)

    def finish(self, status: str) -> None:
        """Mark the run `status` on close, in the same transaction as the last answers."""
        self._status = status

    def close(self) -> None:
        """Commit everything queued (and the run's status), stop the thread; raise StoreError if a write failed."""
        if self._thread.is_alive():
            self._queue.put(_Close(self._status))
            self._thread.join()
        if self._error is not None:
            raise self._error

    def __enter__(self) -> AnswerWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is not None:
            self._status = self.status_on_error
        try:
            self.close()
        except StoreError:
            if exc_type is None:
                raise  # otherwise the error already leaving the block is the one to report

    def _write(self) -> None:
        try:
            if self._first is not None:
                self._first()
            folded_at = time.monotonic()
            while True:
                batch, close = self._next_batch()
                if batch or (close is not None and close.status is not None):
                    fold = close is not None or self._fold_due(folded_at, len(batch))
                    self.store.save_answers(
                        self.run_id,
                        batch,
                        self.settings,
                        wait_s=self.fold_wait_s,
                        finish_status=close.status if close else None,
                        fold=fold,
                    )
                    self.journaled += len(batch)
                    if fold:
                        folded_at = time.monotonic()
                if close is not None:
                    return
        except Exception as error:  # whatever it is, the caller must hear of it: a dead thread says nothing
            self._error = _store_error(self.store, error)
            self._mark_stopped()

    def _fold_due(self, folded_at: float, batch: int) -> bool:
        """True when this batch should fold the journal: the interval is up, or the run is nearly done, but
        not yet in its final wave (the close folds those batches)."""
        if self.expected is None:
            return True
        left = self.expected - self.journaled - batch
        if 0 < left <= min(self.batch_size, self.settings.effective_concurrency):
            return False
        return left <= 2 * self.batch_size or time.monotonic() - folded_at >= self.fold_interval_s

    def _mark_stopped(self) -> None:
        """After a failed write: mark the run stopped so a rerun resumes it; journaled batches stay as they are."""
        if self.status_on_error is None:
            return
        try:
            self.store.finish_run(self.run_id, self.status_on_error, wait_s=self.fold_wait_s)
        except Exception:  # noqa: BLE001 - the first error is the one to report; this is best effort
            pass

    def _next_batch(self) -> tuple[list[Answer], _Close | None]:
        """Wait for an answer, then gather more until the batch is full, its time is up, or close() is called."""
        item = self._queue.get()
        if isinstance(item, _Close):
            return [], item
        batch = [item]
        deadline = time.monotonic() + self.interval_s
        while len(batch) < self.batch_size and (wait := deadline - time.monotonic()) > 0:
            try:
                item = self._queue.get(timeout=wait)
            except queue.Empty:
                break
            if isinstance(item, _Close):
                return batch, item
            batch.append(item)
        return batch, None


def _store_error(store: Store, error: Exception) -> StoreError:
    """The error the caller raises: a StoreError as it is, anything else as one line naming the database."""
    if isinstance(error, StoreError):
        return error
    detail = str(error).splitlines()[0] if str(error) else type(error).__name__
    if not isinstance(error, duckdb.Error):
        detail = f"{type(error).__name__}: {detail}"
    wrapped = StoreError(f"{store.path}: could not store answers ({detail})")
    wrapped.__cause__ = error  # --debug shows where it came from
    return wrapped


@dataclass(frozen=True)
class _Close:
    status: str | None
