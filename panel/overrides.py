"""Editors' corrections: the rules an override must meet, and applying one beside the model's answer.

An override changes a reviewer's verdict, quote or headline, or the chair's pick, summary or headline, on one
stored run item; the model's answer stays stored. The rules live here, so the CLI and a Python caller share
them and the store only writes what passed: the choice is one its answer kind allows, a text fits the bound
the model's own answer had to meet, the tool and pair name exactly one item, and where the model gave no
valid answer the override supplies what the page needs. Each broken rule is an OverrideError naming the option.
"""

from __future__ import annotations

from dataclasses import dataclass

from panel.answer_kinds import CHAIR_ID, kind_for
from panel.errors import OverrideError
from panel.store import Override, Store, StoredRun, StoredVerdict


@dataclass(frozen=True)
class OverrideTarget:
    """The run item an override applies to: its pair, the tool it is stored under, and how to name it."""

    pair_index: int
    tool_id: str
    subject: str


@dataclass(frozen=True)
class OverrideRequest:
    """What an editor asks to change on one item; None leaves that part as it is."""

    persona_id: str
    editor: str
    tool_ref: str | None = None  # the tool's name on the page, or a tool id prefix of 6 or more characters
    pair_number: int | None = None  # 1-based, as the pages number pairs
    verdict: str | None = None  # a verdict, or the chair's pick
    quote: str | None = None
    headline: str | None = None
    note: str | None = None
    revert: bool = False

    def check(self) -> None:
        """Raise OverrideError when the request changes nothing, or gives a choice or text the page cannot show."""
        if self.revert and (self.verdict or self.quote or self.headline):
            raise OverrideError("--revert takes no --verdict, --quote or --headline")
        if not self.revert and self.verdict is None and self.quote is None and self.headline is None:
            raise OverrideError("nothing to change: give --verdict, --quote, --quote-file or --headline (or --revert)")
        kind = kind_for(self.persona_id)
        if self.verdict is not None and self.verdict not in kind.choices:
            raise OverrideError(
                f"--verdict: '{self.verdict}' is not a {kind.choice_noun} (use one of: {', '.join(kind.choices)})"
            )
        for option, text, field_name in (
            ("--quote", self.quote, kind.quote_field),
            ("--headline", self.headline, "headline"),
        ):
            limit = kind.text_limit(field_name)
            if text is not None and not 1 <= len(text) <= limit:
                raise OverrideError(f"{option}: {len(text)} characters; give 1 to {limit}")


def find_target(run: StoredRun, tool_ref: str | None, persona_id: str, pair_number: int | None) -> OverrideTarget:
    """The item an override of `persona_id` on `tool_ref` (a name or id prefix) in pair `pair_number` applies to.

    The chair's summary belongs to its pair, stored under the pair's left tool: either tool's name finds it, or
    --pair alone. Raises OverrideError when the tool or pair is unknown, or the tool is in several pairs.
    """
    if pair_number is not None and not 1 <= pair_number <= len(run.pairs):
        raise OverrideError(f"--pair: run {run.run_id} has pairs 1 to {len(run.pairs)}, not {pair_number}")
    indexes = range(len(run.pairs)) if pair_number is None else [pair_number - 1]
    if tool_ref is None:
        if persona_id != CHAIR_ID or pair_number is None:
            raise OverrideError("--tool: give the tool's name (the chair's summary also takes --pair N alone)")
        found = [(pair_number - 1, run.tool_ids[pair_number - 1][0])]
    else:
        wanted = tool_ref.strip().casefold()
        found = [
            (index, tool_id)
            for index in indexes
            for card, tool_id in zip(run.pairs[index], run.tool_ids[index])
            if card.name.casefold() == wanted or (len(wanted) >= 6 and tool_id.startswith(wanted))
        ]
    if not found:
        names = ", ".join(sorted({card.name for index in indexes for card in run.pairs[index]}))
        where = f"pair {pair_number} of run" if pair_number is not None else "run"
        raise OverrideError(f"--tool: {where} {run.run_id} has no tool '{tool_ref}' (tools: {names})")
    pairs = sorted({index for index, _ in found})
    if len(pairs) > 1:
        raise OverrideError(
            f"--pair: '{tool_ref}' is in pairs {', '.join(str(i + 1) for i in pairs)} "
            f"of run {run.run_id}; give --pair N"
        )
    index, tool_id = found[0]
    left, right = run.pairs[index]
    if persona_id == CHAIR_ID:
        return OverrideTarget(index, run.tool_ids[index][0], f"pair {index + 1} ({left.name} vs {right.name})")
    name = next(card.name for card, card_id in zip(run.pairs[index], run.tool_ids[index]) if card_id == tool_id)
    return OverrideTarget(index, tool_id, name + (f" in pair {index + 1}" if len(run.pairs) > 1 else ""))


def check_complete(current: StoredVerdict, verdict: str | None, quote: str | None) -> None:
    """OverrideError when the model gave no valid answer and the page would be left without a verdict or quote."""
    if current.valid:
        return
    # With no valid answer, what the page shows can only come from this override or an earlier one.
    shown = (("--verdict", verdict, current.verdict), ("--quote", quote, current.review))
    missing = [option for option, given, kept in shown if given is None and kept is None]
    if missing:
        raise OverrideError(f"{' and '.join(missing)}: the model gave no valid answer here, so the page needs yours")


def apply_override(store: Store, run_id: str, request: OverrideRequest) -> tuple[Override, OverrideTarget]:
    """Store `request` on run `run_id` once it meets every rule; return the stored override and what it changed.

    Raises OverrideError for a broken rule, StoreError while another process writes the database.
    """
    request.check()
    run = store.load_run(run_id)
    target = find_target(run, request.tool_ref, request.persona_id, request.pair_number)
    current = run.verdicts.get((target.pair_index, target.tool_id, request.persona_id))
    if current is None:
        raise OverrideError(f"--persona: run {run_id} has no verdict by '{request.persona_id}' on {target.subject}")
    if not request.revert:
        check_complete(current, request.verdict, request.quote)
    with store.writing():  # refused at once while a review or `panel serve` writes this database
        saved = store.add_override(
            run_id,
            target.tool_id,
            request.persona_id,
            request.editor,
            pair_index=target.pair_index,
            verdict=request.verdict,
            review=request.quote,
            note=request.note,
            revert=request.revert,
            headline=request.headline,
        )
    return saved, target
