"""Draft pages for tests: review a run file against the loopback fake, ask the chair, render the pages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from panel.chair import ChairOutcome
from panel.config import Settings
from panel.pipeline import draft_run
from panel.render import write_pages
from panel.review import ReviewOutcome
from panel.store import Store
from panel.tally import RunTally, tally_run
from tests.conftest import reference_labels_path
from tests.fake_openai import FakeOpenAI, Responder, chair_responder, load_reference_reviews, review_responder


@dataclass
class Draft:
    """A reviewed, summarised and rendered run: where it is stored and the pages written."""

    store: Store
    settings: Settings
    review: ReviewOutcome
    chair: ChairOutcome
    pages: list[Path]

    @property
    def html(self) -> str:
        """The first pair's HTML page."""
        return self.pages[0].read_text(encoding="utf-8")

    @property
    def markdown(self) -> str:
        """The first pair's Markdown page."""
        return self.pages[0].with_suffix(".md").read_text(encoding="utf-8")

    def tally(self) -> RunTally:
        """The stored run's tally as the page sees it now (overrides applied)."""
        return tally_run(self.store.load_run(self.review.run_id))

    def rerender(self) -> list[Path]:
        """Render the stored run again (after an override, say)."""
        self.pages = write_pages(self.tally(), self.settings.out_dir)
        return self.pages


def reference_reviewers(rows: Sequence[dict] | None = None) -> Responder:
    """The fake's reviewers answering with the reference page's eight quotes (or `rows`), and the chair."""
    return chair_responder(review_responder(rows if rows is not None else load_reference_reviews(reference_labels_path())))


def make_draft(server: FakeOpenAI, settings: Settings, run_file: Path) -> Draft:
    """Review `run_file` on `server`, ask the chair, and write the pages under settings.out_dir."""
    draft = draft_run(run_file, settings.with_overrides(base_url=server.base_url, model="fake-model"))
    return Draft(draft.store, draft.settings, draft.review, draft.chair, draft.pages)
