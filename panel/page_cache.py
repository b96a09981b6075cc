"""The pages `panel serve` shows: each rendered once per change of its run, then filled in per reader.

While the server runs, a vote changes only a page's community figures, which CommunityVotes keeps in
memory in step with the committed votes; the rest of a page changes only when an editor's `panel override`
(another process) edits its run. So a run is read on its first GET (on the database thread, between vote
commits), its pages are rendered on a thread of their own, and they are kept: every later GET only fills
in each tool's votes and the reader's forms (ServedPage.html). Every EDITS_POLL_S the database thread reads
each run's latest override id; a run edited since it was read is read and rendered again on its next GET.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass

from panel.errors import PanelError
from panel.render import ServedPage, render_served_page
from panel.store import Store
from panel.tally import RunTally, tally_run

EDITS_POLL_S = 5.0  # how soon an edit shows on served pages; each look costs the vote thread one read (~30 ms)
MAX_RUNS = 64  # runs whose pages are kept; the least recently read one is dropped first


@dataclass(frozen=True)
class _RenderedRun:
    edit: int  # the run's latest override id when it was read (0: none)
    pages: dict[int, ServedPage]  # by pair index


class PageCache:
    """Served pages by (run, pair), rendered once per edit of their run; `renders` counts pages rendered."""

    def __init__(self, store: Store, db: Executor, form_action: str, poll_s: float = EDITS_POLL_S,
                 max_runs: int = MAX_RUNS) -> None:
        self.store, self.db, self.form_action = store, db, form_action
        self.poll_s, self.max_runs = poll_s, max_runs
        self.renders = 0
        self._runs: OrderedDict[str, _RenderedRun] = OrderedDict()
        self._rendering: dict[str, asyncio.Future[_RenderedRun]] = {}
        self._edits: dict[str, int] = {}  # each run's latest override id, as last polled
        self._render = ThreadPoolExecutor(1, thread_name_prefix="panel-render")
        self._poller: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start watching for editors' overrides on the running event loop."""
        self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def stop(self) -> None:
        """Stop watching and let a render in progress finish."""
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        self._render.shutdown(wait=True)

    async def page(self, run_id: str, pair_index: int) -> ServedPage:
        """The pair's page; read and rendered only when its run is new here or was edited since."""
        rendered = self._runs.get(run_id)
        if rendered is None or rendered.edit < self._edits.get(run_id, 0):
            rendered = await self._rendered(run_id)
        else:
            self._runs.move_to_end(run_id)
        return rendered.pages[pair_index]

    async def _rendered(self, run_id: str) -> _RenderedRun:
        # Readers who ask while a run is being rendered wait for that one render instead of starting theirs.
        pending = self._rendering.get(run_id)
        if pending is None:
            pending = asyncio.ensure_future(self._read_and_render(run_id))
            self._rendering[run_id] = pending
            pending.add_done_callback(lambda _: self._rendering.pop(run_id, None))
        return await asyncio.shield(pending)  # a reader who hangs up does not cancel the others' page

    async def _read_and_render(self, run_id: str) -> _RenderedRun:
        loop = asyncio.get_running_loop()
        edit, tally = await loop.run_in_executor(self.db, self._read, run_id)
        pages = await loop.run_in_executor(self._render, self._render_pages, tally)
        self.renders += len(pages)
        rendered = _RenderedRun(edit, pages)
        self._runs[run_id] = rendered
        self._runs.move_to_end(run_id)
        while len(self._runs) > self.max_runs:
            self._runs.popitem(last=False)
        return rendered

    def _read(self, run_id: str) -> tuple[int, RunTally]:
        # The edit mark first: an edit committed between the two reads makes this copy look older than it
        # is (so it is read again), never newer.
        edit = self.store.latest_edits().get(run_id, 0)
        return edit, tally_run(self.store.load_run(run_id))

    def _render_pages(self, tally: RunTally) -> dict[int, ServedPage]:
        return {pair.index: render_served_page(tally, pair, self.form_action) for pair in tally.pairs}

    async def _poll(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                self._edits = await loop.run_in_executor(self.db, self.store.latest_edits)
            except PanelError:
                pass  # another process holds the database for now: ask again next time
