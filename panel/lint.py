"""Lint personas and prompt templates without calling a model: render every persona x template x card and check.

Checks: templates and persona files load; no undefined variable (against the run's cards and a deliberately
sparse card); no vendor text in the system role; vendor text stays between its BEGIN/END lines and cannot
start a line of its own; prompts fit the token budget; the chosen structured-output mode can express the schema.
Templates render in jinja2's sandbox (panel.personas), so a hostile template is an error, not an exploit.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from panel.cards import ToolCard, load_card, load_run
from panel.config import Settings
from panel.errors import PanelError, PersonaError
from panel.model.modes import get_mode
from panel.personas import (
    SYSTEM_TEMPLATE,
    USER_TEMPLATE,
    Persona,
    PromptTemplates,
    build_messages,
    load_templates,
    parse_persona,
)
from panel.vendor_text import CARD_LAYOUTS, FIRST_DELIMITERS, RIVAL_DELIMITERS, SECOND_DELIMITERS, TOOL_DELIMITERS
from panel.verdict import verdict_schema

EMBEDDED_CONTEXT_TOKENS = 4096  # the embedded server's n_ctx (panel.model.embedded.embedded_server)
CHARS_PER_TOKEN = 3.5  # measured ~4.0 on our prompts with SmolLM2's tokenizer; 3.5 errs on the safe side
TOKENS_PER_MESSAGE = 4
CANARY = "lintcanary"
# llama.cpp compiles a length bound into one grammar rule per character; thousands crash its server.
GRAMMAR_BOUND_LIMIT = 500
# JSON-schema keywords llama.cpp's grammar converter ignores: the server cannot enforce them.
LLAMA_IGNORED_KEYWORDS = frozenset(
    {
        "not",
        "if",
        "then",
        "else",
        "dependentRequired",
        "dependentSchemas",
        "patternProperties",
        "propertyNames",
        "uniqueItems",
        "contains",
        "minProperties",
        "maxProperties",
        "multipleOf",
    }
)

SPARSE_CARD: dict[str, Any] = {
    "name": "S",
    "category": "c",
    "tagline": "t",
    "description": "d",
    "pricing": {"entry": "Free", "details": "-"},
}


@dataclass(frozen=True)
class LintFinding:
    """One problem: error (fails the lint) or warning, where it is, and what to fix."""

    severity: str
    where: str
    message: str
    example: str = ""  # the first render that hit it (persona and card)


@dataclass
class LintReport:
    """All findings of one lint, deduplicated, with how many renders were checked."""

    renders: int = 0
    findings: list[LintFinding] = field(default_factory=list)
    token_counter: str = f"estimate (1 token per {CHARS_PER_TOKEN} characters)"
    largest_prompt: int = 0

    @property
    def errors(self) -> list[LintFinding]:
        """Findings that fail the lint."""
        return [f for f in self.findings if f.severity == "error"]

    def add(self, severity: str, where: str, message: str, example: str = "") -> None:
        """Record a finding once, however many renders hit it (the first render is kept as the example)."""
        if not any((f.severity, f.where, f.message) == (severity, where, message) for f in self.findings):
            self.findings.append(LintFinding(severity, where, message, example))


def estimate_tokens(messages: list[dict[str, str]]) -> int:
    """A conservative token count for chat messages (no tokenizer needed)."""
    return sum(math.ceil(len(m["content"]) / CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE for m in messages)


def default_token_budget(settings: Settings) -> int:
    """The embedded model's context minus the reply's max_tokens."""
    return EMBEDDED_CONTEXT_TOKENS - settings.max_tokens


def canary_card(role: str) -> ToolCard:
    """A card whose every vendor field is a unique marker (with a line break), to trace where vendor text lands."""
    mark = f"{CANARY}{role}"
    return load_card(
        {
            "name": f"{mark}name",
            "category": f"{mark}category",
            "tagline": f"{mark}tagline",
            "description": f"{mark}description\n{mark}description line two",
            "pricing": {"entry": "Paid", "details": f"{mark}pricing\n{mark}pricing line two"},
            "links": {"website": f"https://example.com/{mark}link"},
        },
        Path("<canary card>"),
        f"{role} canary card",
    )


def _vendor_fields(card: ToolCard) -> dict[str, str]:
    fields = {
        "name": card.name,
        "category": card.category,
        "tagline": card.tagline,
        "description": card.description,
        "pricing.details": card.pricing.details,
    }
    fields.update({f"links.{label}": url for label, url in card.links.items()})
    return fields


def _load_personas(folder: Path, report: LintReport) -> list[Persona]:
    personas: list[Persona] = []
    files = sorted(p for p in folder.glob("*.md") if p.name.lower() != "readme.md")
    if not files:
        report.add("error", str(folder), "no persona files (*.md)")
    for path in files:
        try:
            persona = parse_persona(path.read_text(encoding="utf-8"), str(path))
        except PersonaError as error:
            report.add("error", str(path), str(error).removeprefix(f"{path}: "))
            continue
        if persona.id != path.stem:
            report.add("error", str(path), f"id '{persona.id}' must match the file name")
            continue
        if re.search(r"\{\{|\{%|\{#", persona.brief):
            report.add(
                "warning",
                str(path),
                "the brief contains jinja syntax; it is sent as plain text, "
                "never evaluated (personas/README.md forbids it)",
            )
        personas.append(persona)
    return personas


def _card_pairs(
    run_files: list[Path], report: LintReport, allow_outside: bool = False
) -> Iterator[tuple[str, ToolCard, ToolCard]]:
    sparse = load_card(SPARSE_CARD, Path("<sparse card>"), "sparse card")
    for run_file in run_files:
        try:
            spec = load_run(run_file, allow_outside)
        except PanelError as error:
            report.add("error", str(run_file), str(error))
            continue
        for pair in spec.pairs:
            for tool, rival in ((pair.left, pair.right), (pair.right, pair.left)):
                yield str(run_file), tool, rival
            yield "sparse card", sparse, pair.right
            yield "sparse card", pair.left, sparse
    yield "sparse card", sparse, sparse


def _render_each_template(
    persona: Persona,
    templates: PromptTemplates,
    tool: ToolCard,
    rival: ToolCard,
    schema: dict,
    report: LintReport,
    where: str,
) -> list[dict[str, str]] | None:
    """Render with build_messages, isolating each template (others blanked) so every broken one is named."""
    try:
        return build_messages(persona, templates, tool, rival, schema)
    except PersonaError:
        pass
    for name in (SYSTEM_TEMPLATE, USER_TEMPLATE):
        alone = PromptTemplates(
            templates.folder,
            {**templates.sources, **{other: "" for other in (SYSTEM_TEMPLATE, USER_TEMPLATE) if other != name}},
        )
        try:
            build_messages(persona, alone, tool, rival, schema)
        except PersonaError as error:
            path = str(Path(templates.folder) / name)
            report.add("error", path, str(error).removeprefix(f"{path}: "), f"persona {persona.id}, {where}")
    return None


def _block(lines: list[str], delimiters: tuple[str, str]) -> tuple[int, int] | None:
    begin, end = delimiters
    if lines.count(begin) != 1 or lines.count(end) != 1 or lines.index(begin) > lines.index(end):
        return None
    return lines.index(begin), lines.index(end)


_NEEDS_BLOCKS = (
    f"the user message needs the lines {FIRST_DELIMITERS[0]!r}, {FIRST_DELIMITERS[1]!r}, {SECOND_DELIMITERS[0]!r} "
    f"and {SECOND_DELIMITERS[1]!r} (or, in the older layout, {TOOL_DELIMITERS[0]!r} ... {RIVAL_DELIMITERS[1]!r}) "
    "exactly once each, each block opened before it is closed"
)


def _card_blocks(lines: list[str]) -> list[tuple[int, int]] | None:
    """(BEGIN, END) line numbers of every block vendor text may sit in, or None when neither layout is whole."""
    for layout in CARD_LAYOUTS:
        spans = [_block(lines, delimiters) for delimiters in layout]
        if all(span is not None for span in spans):
            # The pair layout's TOOL UNDER REVIEW block holds a name too (the older layout's is one of its two).
            return [span for span in (*spans, _block(lines, TOOL_DELIMITERS)) if span is not None]
    return None


def check_messages(
    messages: list[dict[str, str]], tool: ToolCard, rival: ToolCard, persona_brief: str = ""
) -> list[tuple[str, str]]:
    """(culprit, problem) for vendor text out of place; culprit is 'persona', 'system' or 'user' (the file to fix)."""
    problems: list[tuple[str, str]] = []
    system = "\n".join(m["content"] for m in messages if m["role"] == "system")
    user = "\n".join(m["content"] for m in messages if m["role"] != "system")
    for card in (tool, rival):
        for name, value in _vendor_fields(card).items():
            if len(value) >= 4 and value in system:
                culprit = "persona" if value in persona_brief else "system"
                problems.append((culprit, f"vendor text reaches the system role ({name} of {card.name!r})"))
    lines = user.splitlines()
    spans = _card_blocks(lines)
    if spans is None:
        problems.append(("user", _NEEDS_BLOCKS))
    else:
        outside = [line for number, line in enumerate(lines) if not any(b <= number <= e for b, e in spans)]
        for role, card in (("tool", tool), ("rival", rival)):
            mark = f"{CANARY}{role}"
            if card.name.startswith(mark) and any(mark in line for line in outside):
                problems.append(("user", f"{role} vendor text appears outside the BEGIN ... END lines of its block"))
    for line in lines:
        if line.lstrip().startswith(CANARY):
            field_name = line.lstrip()[len(CANARY) :].split()[0]
            problems.append(
                ("user", f"vendor text can start a line of its own ({field_name}): render it with the `quoted` filter")
            )
    return problems


def _walk(schema: Any, path: str = "") -> Iterator[tuple[str, dict]]:
    if isinstance(schema, dict):
        yield path or "(root)", schema
        for key, value in schema.items():
            yield from _walk(value, f"{path}.{key}" if path else key)
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            yield from _walk(value, f"{path}[{index}]")


def schema_findings(schema: dict, mode: str, prompt_text: str) -> list[tuple[str, str]]:
    """(severity, message) for what `mode` cannot express of `schema`; prompt mode needs every key in the prompt."""
    get_mode(mode)
    findings: list[tuple[str, str]] = []
    if schema.get("type") != "object":
        findings.append(("error", f"mode {mode}: the answer schema must be a JSON object at the root"))
    if mode == "prompt":
        for key in schema.get("properties", {}):
            if f'"{key}"' not in prompt_text:
                findings.append(
                    (
                        "error",
                        f"mode prompt sends no schema, but the prompt never names the key "
                        f'"{key}": describe it in the system template',
                    )
                )
    if mode == "json_object_schema":
        for path, node in _walk(schema):
            for bound in ("minLength", "maxLength", "minItems", "maxItems"):
                if isinstance(node.get(bound), int) and node[bound] > GRAMMAR_BOUND_LIMIT:
                    findings.append(
                        (
                            "error",
                            f"mode json_object_schema: {path}.{bound} = {node[bound]} becomes "
                            f"a llama.cpp grammar rule per unit (limit {GRAMMAR_BOUND_LIMIT}); "
                            "keep the bound in pydantic only",
                        )
                    )
            ignored = sorted(LLAMA_IGNORED_KEYWORDS & set(node))
            if ignored and "properties" not in path.split(".")[-1:]:
                findings.append(
                    (
                        "warning",
                        f"mode json_object_schema: llama.cpp ignores {', '.join(ignored)} "
                        f"at {path}; only pydantic enforces it (answers get re-asked)",
                    )
                )
    return findings


def lint(run_files: list[Path], settings: Settings, token_budget: int | None = None) -> LintReport:
    """Render every persona x template x card of `run_files` (plus sparse and canary cards) and check it all."""
    report = LintReport()
    budget = token_budget or default_token_budget(settings)
    personas = _load_personas(Path(settings.personas_dir), report)
    try:
        templates = load_templates(settings.prompts_dir)
    except PersonaError as error:
        report.add("error", str(settings.prompts_dir), str(error))
        return report
    schema = verdict_schema()
    combos = list(_card_pairs(run_files, report, settings.allow_outside_cards))
    combos.append(("canary cards", canary_card("tool"), canary_card("rival")))
    first_prompt = ""
    for persona in personas:
        for where, tool, rival in combos:
            report.renders += 1
            messages = _render_each_template(
                persona, templates, tool, rival, schema, report, f"{where}: {tool.name[:40]}"
            )
            if messages is None:
                continue
            first_prompt = first_prompt or "\n".join(m["content"] for m in messages)
            example = f"persona {persona.id}, {where}: {tool.name[:40]}"
            culprits = {
                "persona": persona.path,
                "system": str(Path(templates.folder) / SYSTEM_TEMPLATE),
                "user": str(Path(templates.folder) / USER_TEMPLATE),
            }
            for culprit, problem in check_messages(messages, tool, rival, persona.brief):
                report.add("error", culprits[culprit], problem, example)
            tokens = estimate_tokens(messages)
            report.largest_prompt = max(report.largest_prompt, tokens)
            if tokens > budget:
                report.add(
                    "error",
                    persona.path,
                    f"prompt is over the token budget of {budget} (--token-budget)",
                    f"~{tokens} tokens: {example}",
                )
    if first_prompt or not personas:
        for severity, message in schema_findings(schema, settings.structured_mode, first_prompt):
            report.add(severity, f"answer schema in mode {settings.structured_mode}", message)
    return report
