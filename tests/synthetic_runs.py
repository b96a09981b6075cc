"""Run files with many generated pairs (8 verdicts a pair), and a review against the fake, for engine tests."""

from __future__ import annotations

from pathlib import Path

import yaml

from panel.config import Settings
from panel.pipeline import draft_run
from panel.review import ReviewOutcome
from panel.store import Store
from tests.conftest import PROJECT_ROOT
from tests.fake_openai import FakeOpenAI

EXAMPLE_RUN = PROJECT_ROOT / "runs" / "example.yaml"


def synthetic_card(number: int) -> dict:
    """A valid, distinct tool card for tool `number`."""
    return {
        "name": f"Synthetic Tool {number:03d}",
        "category": "Developer Tools",
        "tagline": f"Generated tool number {number} for load and fault tests",
        "description": (f"Synthetic Tool {number:03d} is a generated card. It exposes one API primitive, "
                        "ships an SDK and a hosted free tier, and exists so tests can run many verdicts."),
        "pricing": {"entry": "Freemium", "details": f"Free up to {number * 100} calls a month; paid beyond."},
        "links": {"homepage": f"https://example.com/tool-{number}"},
    }


def write_synthetic_run(folder: Path, pairs: int, title: str = "Synthetic run") -> Path:
    """Write a run file of `pairs` inline pairs of distinct tools into `folder`; return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"synthetic-{pairs}.yaml"
    spec = {"title": title,
            "pairs": [[synthetic_card(2 * i + 1), synthetic_card(2 * i + 2)] for i in range(pairs)]}
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def review_against(server: FakeOpenAI, settings: Settings, run_file: Path = EXAMPLE_RUN,
                   personas: list[str] | None = None, refresh: bool = False,
                   **overrides: object) -> tuple[Store, ReviewOutcome]:
    """Ask the reviewers of `run_file` against the fake `server` in this process (no chair, no page); return
    (store, the reviewers' outcome)."""
    settings = settings.with_overrides(base_url=server.base_url, model="fake-model", **overrides)
    draft = draft_run(run_file, settings, personas=personas, refresh=refresh, chair=False, render=False)
    return draft.store, draft.review
