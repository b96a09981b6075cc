"""The editor's workflow on a stored run: each pair's state and status, its marks, approving and publishing.

A pair's *state* is a fingerprint of what its page shows (every current verdict, quote, headline, edit and
picked answer version); an approval is of one state, so any edit or version pick after it leaves the approval
behind. A pair's status is:

* draft      no editor has changed it and nobody approved it;
* edited     an editor changed a verdict or picked an asked-again version, or it was approved or published in
             an earlier state;
* approved   approved in its current state, not yet published in it;
* published  published in its current state.

Publishing needs an approval of the current state and writes `<publish>/<tools>.html` and `.md` (the same
self-contained, script-free page `panel review` writes), replacing the files of an earlier publication of the
same comparison; every approval and publication is a new row (store/publishing.py), so the history stays.
Writes take the writer lock for that one operation, as `panel override` does.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from panel.consistency import contradiction
from panel.errors import PublishError
from panel.render import community_so_far, comparison_slug, page_tally, render_html, render_markdown
from panel.store import AnsweredVerdict, Approval, Publication, Store, StoredVerdict
from panel.tally import PairTally, RunTally, tally_run

STATUSES = ("draft", "edited", "approved", "published")


def pair_verdicts(pair: PairTally) -> list[StoredVerdict]:
    """Every current answer on the pair's page: each tool's reviewers (valid or not), then the chair."""
    found = [answer for side in pair.tools for answer in side.answers.values()]
    return found + ([pair.chair] if pair.chair else [])


def pair_state(pair: PairTally) -> str:
    """A fingerprint of what the pair's page shows: it changes with any edit, revert, version pick or new answer."""
    parts = [
        [
            v.persona_id,
            v.tool_id,
            v.verdict,
            v.confidence,
            v.headline,
            v.review,
            v.key_points,
            v.created_at.isoformat(),
            v.override_at.isoformat() if v.override_at else None,
            v.version,
        ]
        for v in pair_verdicts(pair)
    ]
    tools = [pair.left.tool_id, pair.right.tool_id]
    text = json.dumps([tools, sorted(parts, key=lambda part: (part[0], part[1]))], default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def pair_status(pair: PairTally, approvals: list[Approval], publications: list[Publication]) -> str:
    """The pair's status (one of STATUSES) from its run's approvals and publications, oldest first."""
    state = pair_state(pair)
    published = [p for p in publications if p.pair_index == pair.index]
    approved = [a for a in approvals if a.pair_index == pair.index]
    if published and published[-1].state_hash == state:
        return "published"
    if approved and approved[-1].state_hash == state:
        return "approved"
    edited = any(v.overridden or v.version != 0 for v in pair_verdicts(pair))
    return "edited" if edited or approved or published else "draft"


@dataclass(frozen=True)
class PairMarks:
    """What the desk's list flags on a pair: a 2–2 split, a verdict its own answer contradicts, a re-asked answer."""

    split: bool
    contradiction: bool
    reasked: bool


def pair_marks(pair: PairTally) -> PairMarks:
    """The pair's marks; a contradiction is what `panel check` calls one (consistency.contradiction) on an unedited
    verdict: confidence below 0.5, or a headline or quote that states the other verdict."""
    contradicted = False
    for side in pair.tools:
        for verdict in side.verdicts.values():
            if verdict.overridden:  # the model's confidence and text argued for the model's verdict, not this one
                continue
            answer = AnsweredVerdict(
                "", verdict.verdict, verdict.confidence, verdict.headline, verdict.review, verdict.valid, 0, 0
            )
            contradicted = contradicted or contradiction(answer) is not None
    return PairMarks(
        split=any(side.split_evenly for side in pair.tools),
        contradiction=contradicted,
        reasked=any(v.attempt_count > 1 for v in pair_verdicts(pair)),
    )


def find_pair(tally: RunTally, pair_number: int) -> PairTally:
    """The pair numbered `pair_number` (1-based, as pages number them); PublishError naming the range if none."""
    if not 1 <= pair_number <= len(tally.pairs):
        raise PublishError(f"--pair: run {tally.run.run_id} has pairs 1 to {len(tally.pairs)}, not {pair_number}")
    return tally.pairs[pair_number - 1]


def _check_publishable(pair: PairTally, run_id: str) -> None:
    if not any(side.verdicts for side in pair.tools):  # an empty draft would pass for a review
        raise PublishError(f"pair {pair.index + 1} of run {run_id} has no valid verdict: nothing to publish")


def approve_pair(store: Store, run_id: str, pair_number: int, editor: str) -> Approval:
    """Approve the pair's page as it is now, under the writer lock; StoreError while another process writes."""
    with store.writing():
        pair = find_pair(tally_run(store.load_run(run_id)), pair_number)
        _check_publishable(pair, run_id)
        return store.add_approval(run_id, pair.index, pair_state(pair), editor)


def published_name(pair: PairTally, run_id: str) -> str:
    """The published files' stem: the tools, e.g. 'cursor-vs-windsurf' (the run and pair when the names give none)."""
    return comparison_slug(pair) or f"pair-{pair.index + 1}-of-run-{run_id[:12]}"


def publish_pair(
    store: Store, run_id: str, pair_number: int, editor: str, publish_dir: Path, approve: bool = False
) -> Publication:
    """Write the approved pair's HTML and Markdown to `publish_dir` (replacing an earlier publication's) and record it.

    With `approve`, the current state is approved first. Raises PublishError when the pair is not approved in its
    current state or the files cannot be written, StoreError while another process writes the database.
    """
    with store.writing():
        tally = page_tally(store, run_id)
        pair = find_pair(tally, pair_number)
        _check_publishable(pair, run_id)
        state = pair_state(pair)
        if approve:
            store.add_approval(run_id, pair.index, state, editor)
        approved = [a for a in store.approvals(run_id) if a.pair_index == pair.index]
        if not approved or approved[-1].state_hash != state:
            what = "was edited since its approval" if approved else "is not approved"
            raise PublishError(
                f"pair {pair.index + 1} of run {run_id} {what}: approve it first (panel publish --approve)"
            )
        community = community_so_far(store, tally)
        html = render_html(tally, pair, community)
        stem = publish_dir / published_name(pair, run_id)
        html_path, markdown_path = stem.with_suffix(".html"), stem.with_suffix(".md")
        _write_replacing(html_path, html)
        _write_replacing(markdown_path, render_markdown(tally, pair, community))
        digest = hashlib.sha256(html.encode("utf-8")).hexdigest()
        return store.add_publication(
            run_id, pair.index, state, editor, str(html_path.resolve()), str(markdown_path.resolve()), digest
        )


def _write_replacing(path: Path, text: str) -> None:
    """Write `path` whole or not at all: a reader of the publish folder never sees half a page."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise PublishError(f"{path}: cannot write the published page ({error.strerror})") from None
