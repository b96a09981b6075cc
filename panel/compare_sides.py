"""The two sides of `panel compare`: which persona and template versions each side runs, and where they are.

A side is a set of persona texts plus template sources, from the working tree or from stored versions
(prompt_versions keeps every text once per hash). The base defaults to the version each prompt's latest review used,
the candidate to the working tree; a side that differs from the working tree is written to a folder of its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from panel.config import Settings
from panel.errors import CompareError
from panel.personas import PromptTemplates, load_personas, load_templates, parse_persona
from panel.store import PromptVersion, Store

WORKING_TREE = "working tree"
TEMPLATES = "templates"
MIN_REF_LENGTH = 4


@dataclass(frozen=True)
class PromptSet:
    """One side of a comparison: persona file texts by id, template sources, and where each came from."""

    personas: dict[str, str]
    templates: dict[str, str]
    origins: dict[str, str]  # persona id or "templates" -> "working tree" | "stored"

    def persona_hash(self, persona_id: str) -> str:
        """The content hash of this side's version of a persona."""
        return parse_persona(self.personas[persona_id], persona_id).content_hash

    @property
    def templates_hash(self) -> str:
        """The content hash of this side's template set."""
        return PromptTemplates("", self.templates).content_hash

    def describe(self, name: str) -> str:
        """'stored 3f2a9c1b' or 'working tree e81b07aa' for a persona id or 'templates'."""
        digest = self.templates_hash if name == TEMPLATES else self.persona_hash(name)
        return f"{self.origins[name]} {digest[:8]}"


def _working_set(settings: Settings) -> PromptSet:
    personas = {p.id: p.text for p in load_personas(settings.personas_dir)}
    templates = load_templates(settings.prompts_dir).sources
    return PromptSet(personas, templates, {**{p: WORKING_TREE for p in personas}, TEMPLATES: WORKING_TREE})


def resolve_version(versions: list[PromptVersion], ref: str) -> PromptVersion:
    """The stored version whose hash starts with `ref`; raise CompareError when none or several match."""
    if len(ref) < MIN_REF_LENGTH:
        raise CompareError(f"version '{ref}': give at least {MIN_REF_LENGTH} characters of the hash")
    found = [v for v in versions if v.content_hash.startswith(ref.lower())]
    if not found:
        raise CompareError(f"no stored persona or templates version starts with '{ref}' (see `panel personas`)")
    if len(found) > 1:
        raise CompareError(f"version '{ref}' is ambiguous: give more characters")
    return found[0]


def _with_version(side: PromptSet, version: PromptVersion) -> PromptSet:
    personas, templates = dict(side.personas), dict(side.templates)
    if version.kind == "persona":
        personas[version.name] = version.text
        name = version.name
    else:
        templates = json.loads(version.text)
        name = TEMPLATES
    return PromptSet(personas, templates, {**side.origins, name: "stored"})


def _latest_used(versions: list[PromptVersion], kind: str, name: str | None) -> PromptVersion | None:
    mine = [v for v in versions if v.kind == kind and (name is None or v.name == name)]
    return max(mine, key=_recency, default=None)


def _recency(version: PromptVersion) -> tuple[int, datetime]:
    """The version the latest review used wins, then the latest to produce verdicts, then the latest recorded.

    A compare's or a check's own answers do not make a version the base, so a compare stopped halfway (or
    collected from a batch) compares the same two sides when it is rerun.
    """
    if version.last_reviewed_at is not None:
        return 2, version.last_reviewed_at
    if version.last_used_at is not None:
        return 1, version.last_used_at
    return 0, version.first_seen_at


def choose_sides(
    store: Store, settings: Settings, base_refs: list[str], candidate_refs: list[str], persona_ids: list[str] | None
) -> tuple[PromptSet, PromptSet, list[str]]:
    """Both sides and the personas to compare; the base defaults to the version each prompt's latest review used."""
    versions = store.prompt_versions()
    candidate = _working_set(settings)
    for ref in candidate_refs:
        candidate = _with_version(candidate, resolve_version(versions, ref))
    base = candidate
    explicit = [resolve_version(versions, ref) for ref in base_refs]
    named = {v.name if v.kind == "persona" else TEMPLATES for v in explicit}
    for persona_id in candidate.personas:
        latest = _latest_used(versions, "persona", persona_id)
        if persona_id not in named and latest:
            base = _with_version(base, latest)
    latest_templates = _latest_used(versions, "templates", None)
    if TEMPLATES not in named and latest_templates:
        base = _with_version(base, latest_templates)
    for version in explicit:
        base = _with_version(base, version)
    unknown = [p for p in persona_ids or [] if p not in candidate.personas]
    if unknown:
        raise CompareError(f"unknown persona '{unknown[0]}' (have: {', '.join(sorted(candidate.personas))})")
    changed = [p for p in candidate.personas if base.personas.get(p) != candidate.personas[p]]
    compared = persona_ids or (list(candidate.personas) if base.templates != candidate.templates else changed)
    if not compared and not versions:
        raise CompareError("no stored prompt versions to compare with: run `panel review` first")
    if not compared:
        raise CompareError(
            "nothing changed: the working tree matches the latest stored versions; "
            "pass --base <hash> (see `panel personas`) or --persona"
        )
    return base, candidate, compared


def materialise(side: PromptSet, personas: list[str], settings: Settings, folder: Path) -> Settings:
    """Settings whose personas/prompts folders hold this side's texts (the real folders when unchanged)."""
    working = _working_set(settings)
    changes: dict[str, Path] = {}
    if any(side.personas[p] != working.personas.get(p) for p in personas):
        changes["personas_dir"] = folder / "personas"
        changes["personas_dir"].mkdir(parents=True)
        for persona_id in personas:
            (folder / "personas" / f"{persona_id}.md").write_text(side.personas[persona_id], encoding="utf-8")
    if side.templates != working.templates:
        changes["prompts_dir"] = folder / "prompts"
        changes["prompts_dir"].mkdir(parents=True)
        for name, source in side.templates.items():
            (folder / "prompts" / name).write_text(source, encoding="utf-8")
    return settings.with_overrides(**changes)
