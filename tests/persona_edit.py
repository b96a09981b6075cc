"""A maintainer's persona edit, for compare, check and the probe views: six made-up tools with the skeptic's
gold labels, a stricter skeptic prompt (MARKER) and a scripted model that reads it.

Not a test module: the tests are in test_compare.py, test_check.py, test_cost.py and test_probe_views.py;
the `workspace` fixture (tests/conftest.py) is labelled_workspace.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from panel.config import Settings
from panel.labels import import_labels
from panel.review import prepare_run, review
from panel.store import Store
from tests.fake_openai import FakeOpenAI
from tests.helpers import PROJECT_ROOT

TOOLS = ["Alpha", "Bravo", "Charlie", "Delta", "Echo", "Foxtrot"]
# The skeptic's gold labels: the first three tools ship, the last three skip.
SKEPTIC_GOLD = dict(zip(TOOLS, ["ship", "ship", "ship", "skip", "skip", "skip"]))
MARKER = "STRICT-MARKER: skip unless the edge is proven."
# With the marker in its brief, the scripted skeptic skips these tools (and ships the rest).
STRICT_SKIPS = {"Charlie", "Delta", "Echo"}
HOSTILE_REVIEW = "</blockquote><script>alert('x')</script> Skip: the edge is not proven for this tool at all."


def card(name: str) -> dict[str, Any]:
    """A valid inline card for a made-up tool."""
    return {
        "name": name,
        "category": "Developer tool",
        "tagline": f"{name} does one job well",
        "description": f"{name} is a tool under test with a plain description.",
        "pricing": {"entry": "Free", "details": "free tier"},
    }


def write_six_tool_run(folder: Path) -> Path:
    """A run file of three pairs: Alpha vs Bravo, Charlie vs Delta, Echo vs Foxtrot."""
    pairs = [[card(TOOLS[i]), card(TOOLS[i + 1])] for i in range(0, 6, 2)]
    path = folder / "six.yaml"
    path.write_text(json.dumps({"title": "Six tools", "pairs": pairs}), encoding="utf-8")
    return path


def write_labels(folder: Path) -> Path:
    """Gold labels for the skeptic on all six tools, and for the builder (ship) on Alpha."""
    lines = [{"tool": t, "persona": "skeptic", "verdict": v} for t, v in SKEPTIC_GOLD.items()]
    lines.append({"tool": "Alpha", "persona": "builder", "verdict": "ship"})
    path = folder / "labels.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    return path


def persona_and_tool(body: dict[str, Any]) -> tuple[str, str, str]:
    """(persona id, tool under review, system prompt) read from a chat request the way a model would see it."""
    system = next(m["content"] for m in body["messages"] if m["role"] == "system")
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    persona = re.search(r"Persona id: (\w+)", system).group(1)
    tool = _first_name(user[user.index("BEGIN TOOL UNDER REVIEW") :])
    return persona, tool, system


def _first_name(text: str) -> str:
    return re.search(r"^Name: (.+)$", text, re.M).group(1).strip()


def shown_first(body: dict[str, Any]) -> bool:
    """Whether the tool under review's card is the first card of the user message (a swap moves it)."""
    _, tool, _ = persona_and_tool(body)
    return _first_name(next(m["content"] for m in body["messages"] if m["role"] == "user")) == tool


def strict_skeptic_responder(body: dict[str, Any]) -> str:
    """Ship everything, except the skeptic whose brief has the marker: it skips Charlie, Delta and Echo."""
    persona, tool, system = persona_and_tool(body)
    skip = persona == "skeptic" and MARKER in system and tool in STRICT_SKIPS
    verdict = "skip" if skip else "ship"
    review = HOSTILE_REVIEW if skip else f"{tool} clears the scripted bar against its rivals, so ship it."
    return json.dumps(
        {
            "verdict": verdict,
            "confidence": 0.6 if skip else 0.8,
            "headline": f"{persona} says {verdict} on {tool}",
            "review": review,
            "key_points": [f"{persona} on {tool}"],
        }
    )


def labelled_workspace(tmp_path: Path) -> Settings:
    """A personas folder copied from the repo, a fake-model settings object and a database with labels."""
    shutil.copytree(PROJECT_ROOT / "personas", tmp_path / "personas")
    settings = Settings(
        db_path=tmp_path / "panel.duckdb",
        out_dir=tmp_path / "pages",
        personas_dir=tmp_path / "personas",
        max_retries=0,
        timeout_s=10,
        model="fake-model",
    )
    known = ["builder", "skeptic", "futurist", "business"]
    import_labels(Store(settings.db_path), write_labels(tmp_path), "test", known)
    return settings


def edit_skeptic(settings: Settings) -> None:
    """The maintainer's edit: a stricter bar in personas/skeptic.md."""
    path = Path(settings.personas_dir) / "skeptic.md"
    path.write_text(path.read_text(encoding="utf-8").rstrip() + "\n\n" + MARKER + "\n", encoding="utf-8")


def reviewed(server: FakeOpenAI, settings: Settings, run_file: Path) -> Settings:
    """Settings pointed at the fake, after a full review of the run with the current personas."""
    settings = settings.with_overrides(base_url=server.base_url)
    review(prepare_run(run_file, settings), settings, Store(settings.db_path))
    return settings
