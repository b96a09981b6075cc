"""The desk's forms as the library's requests: an edit panel's fields become the OverrideRequest `panel override`
makes, an "Ask again" form the AskAgainRequest `panel ask-again` makes, a version pick its number.

A field that still shows what the page shows is no change (so flipping a verdict does not also store the
model's quote as an edit); a field cleared on purpose is a change, and the override rules (panel/overrides.py)
name what is wrong with it. Names and notes are neutralised like every other text that reaches a page. The
"Add a pair" form's fields are named as panel/pair_form.py reads them (`left.name`, `left.pricing.entry`,
`left.links.homepage`, ...); pair_form checks them with the card files' rules.
"""

from __future__ import annotations

import re

from panel.answer_kinds import CHAIR_ID
from panel.ask_again import AskAgainRequest
from panel.errors import AskAgainError, OverrideError, PanelError
from panel.overrides import OverrideRequest
from panel.pair_form import SIDES
from panel.render import neutralise
from panel.store import StoredVerdict
from panel.tally import PairTally
from panel.web.guards import Rejected

EDIT_FIELDS = frozenset({"csrf", "persona", "tool", "verdict", "headline", "quote", "note", "action"})
EDITOR_FIELDS = frozenset({"csrf", "editor", "next"})
PAIR_ACTION_FIELDS = frozenset({"csrf"})
ASK_AGAIN_FIELDS = frozenset({"csrf", "persona", "tool", "note", "force"})
VERSION_FIELDS = frozenset({"csrf", "persona", "tool", "version"})
LINK_LABELS = ("homepage", "docs", "pricing")  # the form's link fields; a card file may name any label
CARD_FIELDS = (
    "name",
    "category",
    "tagline",
    "description",
    "pricing.entry",
    "pricing.details",
    *(f"links.{label}" for label in LINK_LABELS),
)
PAIR_FIELDS = frozenset({"csrf", "title", *(f"{side}.{name}" for side in SIDES for name in CARD_FIELDS)})
MAX_EDITOR_CHARS = 80
MAX_NOTE_CHARS = 1000
# The CLI's option names in the override and ask-again rules' messages, as the desk's fields are labelled.
_FIELD_NAMES = {
    "--quote-file": "quote",
    "--verdict": "verdict",
    "--quote": "quote",
    "--headline": "headline",
    "--note": "note",
    "--version": "version",
}
_VERSION = re.compile(r"[0-9]{1,6}")


def _text(value: str | None) -> str | None:
    return None if value is None else value.replace("\r\n", "\n").strip()


def _changed(given: str | None, shown: str | None) -> str | None:
    """`given` when it differs from what the page shows now, else None (no change)."""
    return None if given is None or given == (shown or "") else given


def editor_name(raw: str | None) -> str:
    """The editor's name as stored and shown; OverrideError when it is empty or too long."""
    name = neutralise(" ".join((raw or "").split()))
    if not 1 <= len(name) <= MAX_EDITOR_CHARS:
        raise OverrideError(f"editor: give your name (1 to {MAX_EDITOR_CHARS} characters) in the Editor field")
    return name


def edited_item(fields: dict[str, str], pair: PairTally) -> tuple[str, str | None, StoredVerdict | None]:
    """(persona id, tool id or None for the chair, the answer shown now) a form names; Rejected 400 for another."""
    persona = fields.get("persona", "")
    if persona == CHAIR_ID:
        return persona, None, pair.chair
    side = next((side for side in pair.tools if side.tool_id == fields.get("tool")), None)
    if side is None or persona not in side.personas:
        raise Rejected(400, "this form names no reviewer of this pair")
    return persona, side.tool_id, side.answers.get(persona)


def edit_request(fields: dict[str, str], pair: PairTally, editor: str) -> OverrideRequest:
    """The override an edit panel's post asks for (Save, Revert or a one-click flip)."""
    persona, tool_id, shown = edited_item(fields, pair)
    note = _text(fields.get("note")) or None
    if note is not None and len(note) > MAX_NOTE_CHARS:
        raise OverrideError(f"note: {len(note)} characters; give at most {MAX_NOTE_CHARS}")
    number = pair.index + 1
    if fields.get("action") == "revert":
        return OverrideRequest(persona, editor, tool_id, number, note=note, revert=True)
    return OverrideRequest(
        persona,
        editor,
        tool_id,
        number,
        verdict=_changed(fields.get("verdict"), shown.verdict if shown else None),
        quote=_changed(_text(fields.get("quote")), shown.review if shown else None),
        headline=_changed(_text(fields.get("headline")), shown.headline if shown else None),
        note=note,
    )


def ask_again_request(fields: dict[str, str], pair: PairTally, editor: str) -> AskAgainRequest:
    """The ask-again an "Ask again" form's post asks for: whom, about which tool of the pair, with what note."""
    persona, tool_id, _ = edited_item(fields, pair)
    note = _text(fields.get("note")) or None
    force = fields.get("force") == "yes"
    return AskAgainRequest(persona, editor, tool_id, pair.index + 1, note=note, force=force)


def version_number(fields: dict[str, str]) -> int:
    """The version a "Use this version" form names; Rejected 400 for anything but a number."""
    given = fields.get("version", "")
    if _VERSION.fullmatch(given) is None:
        raise Rejected(400, "this form names no version")
    return int(given)


def desk_message(error: PanelError) -> str:
    """A library error as the desk shows it: one line, naming the desk's fields rather than the CLI's options."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    if isinstance(error, OverrideError | AskAgainError):
        for option, name in _FIELD_NAMES.items():
            text = text.replace(option, name)
        text = text.replace(
            "nothing to change: give verdict, quote, quote or headline (or --revert)", "nothing changed"
        )
    return text
