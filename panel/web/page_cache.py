"""The pages `panel serve` shows: each rendered once per change of its run, then filled in per reader.

While the server runs it is the database's only writer (it holds the writer lock, so `panel review`,
`panel override` and `panel labels` are refused until it stops), and what it writes are votes: they change
only a page's community figures, which CommunityVotes keeps in memory in step with the committed votes.
So a run is read on its first GET (on the database thread, between vote commits), its pages are rendered
on a thread of their own, and they are kept: every later GET only fills in each tool's votes and the
reader's forms (ServedPage.html).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from concurrent.futures import Executor, ThreadPoolExecutor

from panel.render import ServedPage, page_tally, render_served_page
from panel.store import Store
from panel.tally import RunTally

MAX_RUNS = 64  # runs whose pages are kept; the least recently read one is dropped first


class PageCache:
    """Served pages by (run, pair), each run's rendered once; `renders` counts pages rendered."""

    def __init__(self, store: Store, db: Executor, form_action: str, max_runs: int = MAX_RUNS) -> None:
        self.store, self.db, self.form_action = store, db, form_action
        self.max_runs = max_runs
        self.renders = 0
        self._runs: OrderedDict[str, dict[int, ServedPage]] = OrderedDict()  # pages by pair index, per run
        self._rendering: dict[str, asyncio.Future[dict[int, ServedPage]]] = {}
        self._render = ThreadPoolExecutor(1, thread_name_prefix="panel-render")

    async def stop(self) -> None:
        """Let a render in progress finish."""
        self._render.shutdown(wait=True)

    async def page(self, run_id: str, pair_index: int) -> ServedPage:
        """The pair's page; its run is read and rendered only when it is new here (or was dropped for room)."""
        pages = self._runs.get(run_id)
        if pages is None:
            pages = await self._rendered(run_id)
        else:
            self._runs.move_to_end(run_id)
        return pages[pair_index]

    async def _rendered(self, run_id: str) -> dict[int, ServedPage]:
        # Readers who ask while a run is being rendered wait for that one render instead of starting theirs.
        pending = self._rendering.get(run_id)
        if pending is None:
            pending = asyncio.ensure_future(self._read_and_render(run_id))
            self._rendering[run_id] = pending
            pending.add_done_callback(lambda _: self._rendering.pop(run_id, None))
        return await asyncio.shield(pending)  # a reader who hangs up does not cancel the others' page

    async def _read_and_render(self, run_id: str) -> dict[int, ServedPage]:
        loop = asyncio.get_running_loop()
        tally = await loop.run_in_executor(self.db, self._read, run_id)
        pages = await loop.run_in_executor(self._render, self._render_pages, tally)
        self.renders += len(pages)
        self._runs[run_id] = pages
        self._runs.move_to_end(run_id)
        while len(self._runs) > self.max_runs:
            self._runs.popitem(last=False)
        return pages

    def _read(self, run_id: str) -> RunTally:
        return page_tally(self.store, run_id)

    def _render_pages(self, tally: RunTally) -> dict[int, ServedPage]:
        return {pair.index: render_served_page(tally, pair, self.form_action) for pair in tally.pairs}
