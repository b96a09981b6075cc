"""Add a pair from form fields: two tool cards as an HTML form sends them, checked as card files are, then written.

The fields are strings named by card path: `left.name`, `left.category`, `left.tagline`, `left.description`,
`left.pricing.entry`, `left.pricing.details`, `left.links.<label>` (one per link), the same with `right.`, and
an optional `title`. Other fields (a CSRF token, a submit button) are no card's and are left alone. An empty
field is a field left out: an empty required one is "missing", an empty link is no link. Each card passes
cards.validate_card, the one set of card rules, with the same one-line errors as a card file ("form: tool
'Acme': field 'pricing.entry': ..."); the files written hold what the editor typed, so loading the run cleans
it exactly as it cleans any card file (hidden characters removed, long text cut and flagged, links checked).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from panel.cards import load_run, run_title, tool_pair, validate_card
from panel.errors import CardError

SIDES = ("left", "right")
DESK_FOLDER = "desk"  # under the project's runs folder: runs/desk/<slug>.yaml, the cards in runs/desk/cards/
WHERE = "form"  # how an error names the source, where a card file's would name its path
_NESTED = ("pricing", "links")  # card fields that are mappings: pricing.entry, links.<label>


def card_from_fields(fields: Mapping[str, object], side: str) -> dict[str, Any]:
    """The card mapping one side's fields describe (`left.pricing.entry` -> {"pricing": {"entry": ...}}).

    Raises CardError for a field that is not text.
    """
    card: dict[str, Any] = {}
    prefix = f"{side}."
    for name, value in fields.items():
        if not name.startswith(prefix):
            continue
        if not isinstance(value, str):
            raise CardError(f"{WHERE}: field '{name[:80]}' must be text")
        if value == "":  # a form sends every input, filled or not
            continue
        path = name[len(prefix) :]
        head, dot, rest = path.partition(".")
        if head in _NESTED and dot:
            nested = card.setdefault(head, {})
            if isinstance(nested, dict):
                nested[rest] = value
        else:
            card[path] = value
    return card


def add_pair(fields: Mapping[str, object], runs_dir: Path) -> Path:
    """Write the pair the form `fields` describe as a run file with its two card files; return the run file's path.

    The files go to `runs_dir`/desk/ (`<left>-vs-<right>.yaml`, cards in desk/cards/), never over an existing
    file (a name taken gets -2, -3, ...). Raises CardError with the first problem, before anything is written.
    """
    raws = [card_from_fields(fields, side) for side in SIDES]
    left, right = (validate_card(raw, WHERE, f"{side} tool") for raw, side in zip(raws, SIDES))
    pair = tool_pair(left, right, WHERE, 1)
    title = fields.get("title") or None
    run_title(title, WHERE, [pair])  # checked now; the run file keeps it as typed
    folder = runs_dir / DESK_FOLDER
    (folder / "cards").mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        card_paths = []
        for raw, card in zip(raws, (left, right)):
            path = _create(folder / "cards", _slug(card.name), yaml.safe_dump(raw, sort_keys=False))
            written.append(path)
            card_paths.append(f"cards/{path.name}")
        run = {"title": title, "pairs": [card_paths]} if title else {"pairs": [card_paths]}
        run_file = _create(folder, _slug(f"{left.name} vs {right.name}"), yaml.safe_dump(run, sort_keys=False))
        written.append(run_file)
        load_run(run_file)  # what a review will read: the same rules once more, on the files themselves
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return run_file


def _slug(text: str) -> str:
    """A readable file-name stem: lowercase ASCII letters and digits joined by hyphens."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:80].strip("-") or "tool"


def _create(folder: Path, stem: str, text: str) -> Path:
    """Create `folder/stem.yaml` (or stem-2.yaml, ... when taken) with `text`; never overwrite a file."""
    for number in range(1, 10_000):
        path = folder / (f"{stem}.yaml" if number == 1 else f"{stem}-{number}.yaml")
        try:
            with path.open("x", encoding="utf-8") as handle:
                handle.write(text)
            return path
        except FileExistsError:
            continue
    raise CardError(f"{folder}: no free file name for '{stem}'")
