"""Gold labels: editors' ship/skip per tool and persona (or per tool overall), imported from JSONL or added by hand.

Editor overrides made on a page count as labels too (Store.gold_labels merges them); the latest label wins.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from panel.errors import LabelError
from panel.store import GoldLabel, Store
from panel.verdict import VERDICTS, VerdictChoice

LabelKey = tuple[str, str | None]  # (tool name, persona id or None for the tool overall)


class _LabelLine(BaseModel):
    model_config = ConfigDict(extra="ignore")
    tool: str = Field(min_length=1)
    persona: str | None = None
    verdict: VerdictChoice
    review: str | None = None


def read_labels_file(path: str | Path, source: str, known_personas: Iterable[str]) -> list[GoldLabel]:
    """Parse a JSONL file of {tool, persona?, verdict, review?} lines; raise LabelError naming the line."""
    path = Path(path)
    if not path.is_file():
        raise LabelError(f"{path}: file not found")
    known = set(known_personas)
    labels: list[GoldLabel] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = _LabelLine.model_validate(json.loads(line))
        except json.JSONDecodeError as error:
            raise LabelError(f"{path}:{number}: not a JSON object ({error.msg})") from None
        except ValidationError as error:
            first = error.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "line"
            raise LabelError(f"{path}:{number}: field '{field}': {first['msg']}") from None
        labels.append(
            make_label(row.tool, row.verdict, row.persona, source, known, row.review, where=f"{path}:{number}")
        )
    if not labels:
        raise LabelError(f"{path}: no labels in the file")
    return labels


def make_label(
    tool: str,
    verdict: str,
    persona: str | None,
    source: str,
    known_personas: Iterable[str],
    review: str | None = None,
    where: str = "label",
) -> GoldLabel:
    """One checked GoldLabel; raise LabelError for an unknown persona or a verdict other than ship/skip."""
    known = set(known_personas)
    if verdict not in VERDICTS:
        raise LabelError(f"{where}: verdict must be ship or skip, not {verdict!r}")
    if persona is not None and persona not in known:
        raise LabelError(f"{where}: unknown persona '{persona}' (have: {', '.join(sorted(known))})")
    if not tool.strip():
        raise LabelError(f"{where}: the tool name is empty")
    return GoldLabel(tool.strip(), persona, verdict, source, review)


def save_labels(store: Store, labels: list[GoldLabel]) -> int:
    """Store labels as the database's one writer (StoreError at once while a review or `panel serve` writes it);
    return how many were new."""
    with store.writing():
        return store.add_labels(labels)


def import_labels(store: Store, path: str | Path, source: str, known_personas: Iterable[str]) -> tuple[int, int]:
    """Import a labels file; return (labels read, labels new to the database)."""
    labels = read_labels_file(path, source, known_personas)
    return len(labels), save_labels(store, labels)


def labels_by_key(labels: Iterable[GoldLabel]) -> dict[LabelKey, str]:
    """Gold verdicts keyed by (tool name, persona id); None as persona means the tool overall."""
    return {(label.tool_name, label.persona_id): label.verdict for label in labels}


def base_rate(labels: Iterable[GoldLabel], persona_id: str | None = None) -> float | None:
    """Share of per-persona labels that say ship (one persona's, or all personas' when None); None without labels."""
    verdicts = [
        label.verdict
        for label in labels
        if label.persona_id is not None and (persona_id is None or label.persona_id == persona_id)
    ]
    return verdicts.count("ship") / len(verdicts) if verdicts else None
