"""What many test files share: where things are, running the `panel` command, tool cards and run files,
reviewing against the loopback fake (tests/fake_openai.py), and drafts (reviewed, summarised, rendered).

Not a test module: pytest collects nothing here. Fixtures built on these live in tests/conftest.py.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import yaml

from panel.chair import ChairOutcome
from panel.config import Settings
from panel.editorial import publish_pair
from panel.pipeline import draft_run
from panel.render import write_pages
from panel.review import ReviewOutcome
from panel.store import Store
from panel.tally import RunTally, tally_run
from tests.fake_openai import FakeOpenAI, Responder, chair_responder, load_reference_reviews, review_responder

# The repository root: itself a panel project (its panel.toml), where the CLI tests run.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
REFERENCE = PROJECT_ROOT.parent / "shared" / "reference"
EXAMPLE_RUN = PROJECT_ROOT / "runs" / "example.yaml"
# The `panel` command as a user runs it, from this checkout.
PANEL = [sys.executable, "-c", "from panel.cli import main; main()"]


def reference_file(name: str) -> Path:
    """A file of the reference page (shared/reference beside the checkout, else the copy in tests/data)."""
    path = REFERENCE / name
    return path if path.exists() else PROJECT_ROOT / "tests" / "data" / name


def reference_labels_path() -> Path:
    """The labelled reviews of the reference page."""
    return reference_file("labelled-reviews.jsonl")


def chat_requests(server: FakeOpenAI) -> list:
    """The chat-completion requests the fake received (not /models probes)."""
    return [r for r in server.requests if r.path.endswith("/chat/completions")]


# --- the `panel` command in a child process -------------------------------------------------------
def run_panel(
    *args: str,
    env_extra: dict[str, str] | None = None,
    cwd: Path | None = None,
    clean_env: bool = False,
    timeout: float = 120,
) -> subprocess.CompletedProcess:
    """Run `panel *args` in a child process, 200 columns wide; return what it printed and its exit code.

    The child sees this test's environment (so PANEL_DB points at the test's database) unless `clean_env`,
    which drops every OPENAI_* and PANEL_* variable; `env_extra` is added last.
    """
    env = {k: v for k, v in os.environ.items() if not (clean_env and k.startswith(("OPENAI_", "PANEL_")))}
    env = dict(env, COLUMNS="200", **(env_extra or {}))
    return subprocess.run([*PANEL, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


@contextlib.contextmanager
def writer_lock_held_elsewhere(db: Path) -> Iterator[None]:
    """Another process holds the database's writer lock (as a running review or `panel serve` does) meanwhile."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from panel.store import Store; "
            "store = Store(sys.argv[1]); store.acquire_writer(); print('held', flush=True); "
            "sys.stdin.read()",
            str(db),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield
    finally:
        assert holder.stdin is not None
        holder.stdin.close()  # the holder exits, and the OS releases its lock
        holder.wait(timeout=30)


def batch_lines_stored(db: Path) -> int:
    """How many batch result lines a database holds, read while another process collects (0 while it writes)."""
    try:  # between the child's transactions; while one is open the file is locked and this says 0
        con = duckdb.connect(str(db), read_only=True)
    except duckdb.Error:
        return 0
    try:
        return con.execute("SELECT count(*) FROM batch_lines").fetchone()[0]
    finally:
        con.close()


def copy_db(source: Path, folder: Path) -> Path:
    """A private copy of a stored database (with its WAL, if any) that a test may write."""
    target = folder / source.name
    for suffix in ("", ".wal"):
        if Path(str(source) + suffix).exists():
            shutil.copy(str(source) + suffix, str(target) + suffix)
    return target


def visible(html: str) -> str:
    """A page's text without tags, for order checks."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html))


# --- tool cards and run files ---------------------------------------------------------------------
GOOD_CARD = {
    "name": "Acme Vector",
    "category": "Databases",
    "tagline": "Vectors, fast",
    "description": "A vector database.",
    "pricing": {"entry": "Freemium", "details": "Free up to 1 GB."},
    "links": {"homepage": "https://acme.example"},
}


def write_run(tmp_path: Path, left: dict, right: dict | None = None) -> Path:
    """A run file of one pair, `left` against `right` (a copy of GOOD_CARD named Other by default)."""
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"pairs": [[left, right or dict(GOOD_CARD, name="Other")]]}), encoding="utf-8")
    return path


def synthetic_card(number: int) -> dict:
    """A valid, distinct tool card for tool `number`."""
    return {
        "name": f"Synthetic Tool {number:03d}",
        "category": "Developer Tools",
        "tagline": f"Generated tool number {number} for load and fault tests",
        "description": (
            f"Synthetic Tool {number:03d} is a generated card. It exposes one API primitive, "
            "ships an SDK and a hosted free tier, and exists so tests can run many verdicts."
        ),
        "pricing": {"entry": "Freemium", "details": f"Free up to {number * 100} calls a month; paid beyond."},
        "links": {"homepage": f"https://example.com/tool-{number}"},
    }


def write_synthetic_run(folder: Path, pairs: int, title: str = "Synthetic run") -> Path:
    """Write a run file of `pairs` inline pairs of distinct tools (8 verdicts a pair) into `folder`; return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"synthetic-{pairs}.yaml"
    spec = {"title": title, "pairs": [[synthetic_card(2 * i + 1), synthetic_card(2 * i + 2)] for i in range(pairs)]}
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


# --- reviewing against the fake, in this process --------------------------------------------------
def review_against(
    server: FakeOpenAI,
    settings: Settings,
    run_file: Path = EXAMPLE_RUN,
    personas: list[str] | None = None,
    refresh: bool = False,
    **overrides: object,
) -> tuple[Store, ReviewOutcome]:
    """Ask the reviewers of `run_file` against the fake `server` in this process (no chair, no page); return
    (store, the reviewers' outcome)."""
    settings = settings.with_overrides(base_url=server.base_url, model="fake-model", **overrides)
    draft = draft_run(run_file, settings, personas=personas, refresh=refresh, chair=False, render=False)
    return draft.store, draft.review


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
    return chair_responder(
        review_responder(rows if rows is not None else load_reference_reviews(reference_labels_path()))
    )


def make_draft(server: FakeOpenAI, settings: Settings, run_file: Path) -> Draft:
    """Review `run_file` on `server`, ask the chair, and write the pages under settings.out_dir."""
    draft = draft_run(run_file, settings.with_overrides(base_url=server.base_url, model="fake-model"))
    return Draft(draft.store, draft.settings, draft.review, draft.chair, draft.pages)


def publish_every_pair(store: Store, publish_dir: Path) -> None:
    """Approve and publish each pair of each stored run not yet published, as an editor would."""
    for run_id in store.review_runs():
        if store.publications(run_id):
            continue
        for number in range(1, len(store.load_run(run_id).pairs) + 1):
            publish_pair(store, run_id, number, "editor", publish_dir, approve=True)
