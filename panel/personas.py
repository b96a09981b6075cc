"""Persona files and prompt templates -> chat messages, with the content hashes every verdict records."""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import BaseModel, ConfigDict, ValidationError

from panel.cards import ToolCard
from panel.errors import PersonaError
from panel.safe_yaml import YamlProblem, load_yaml

PERSONA_ORDER = ("builder", "skeptic", "futurist", "business")
SYSTEM_TEMPLATE = "system.j2"
USER_TEMPLATE = "user.j2"


def persona_order(persona_id: str) -> tuple[int, str]:
    """Sort key: the four reference personas in PERSONA_ORDER first, then any other by id."""
    return (PERSONA_ORDER.index(persona_id) if persona_id in PERSONA_ORDER else len(PERSONA_ORDER), persona_id)


class _PersonaHeader(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    name: str
    title: str
    focus: str


@dataclass(frozen=True)
class Persona:
    """A reviewer: front-matter fields plus the brief that goes in the system role."""

    id: str
    name: str
    title: str
    focus: str
    brief: str
    path: str
    text: str

    @property
    def content_hash(self) -> str:
        """sha256 of the persona file's text: its version."""
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class PromptTemplates:
    """The jinja2 templates that turn a persona and two cards into chat messages."""

    folder: str
    sources: dict[str, str]

    @property
    def content_hash(self) -> str:
        """sha256 over every template's name and text: the templates' version."""
        blob = json.dumps(self.sources, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def parse_persona(text: str, path: str) -> Persona:
    """Parse a persona file (YAML front matter + Markdown brief); raise PersonaError naming the file."""
    if not text.startswith("---"):
        raise PersonaError(f"{path}: a persona file starts with '---' and YAML front matter")
    parts = text.split("---", 2)
    if len(parts) < 3:
        raise PersonaError(f"{path}: front matter is not closed with '---'")
    try:
        header = _PersonaHeader.model_validate(load_yaml(parts[1]) or {})
    except YamlProblem as problem:
        raise PersonaError(f"{path}: front matter is not valid YAML ({problem})") from None
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise PersonaError(f"{path}: front matter field '{field}': {first['msg']}") from None
    brief = parts[2].strip()
    if not brief:
        raise PersonaError(f"{path}: the persona brief (text after the front matter) is empty")
    return Persona(header.id, header.name, header.title, header.focus, brief, path, text)


def load_personas(folder: str | Path, only: list[str] | None = None) -> list[Persona]:
    """Load every persona file in `folder` (builder, skeptic, futurist, business first)."""
    folder = Path(folder)
    files = sorted(p for p in folder.glob("*.md") if p.name.lower() != "readme.md")
    if not files:
        raise PersonaError(f"{folder}: no persona files (*.md)")
    personas = [parse_persona(p.read_text(encoding="utf-8"), str(p)) for p in files]
    for persona in personas:
        if persona.id != Path(persona.path).stem:
            raise PersonaError(f"{persona.path}: id '{persona.id}' must match the file name")
    personas.sort(key=lambda p: persona_order(p.id))
    if only:
        known = {p.id for p in personas}
        for wanted in only:
            if wanted not in known:
                raise PersonaError(f"unknown persona '{wanted}' (have: {', '.join(sorted(known))})")
        personas = [p for p in personas if p.id in only]
    return personas


def load_templates(folder: str | Path) -> PromptTemplates:
    """Read every *.j2 template in the prompts folder."""
    folder = Path(folder)
    sources = {p.name: p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.j2"))}
    for required in (SYSTEM_TEMPLATE, USER_TEMPLATE):
        if required not in sources:
            raise PersonaError(f"{folder / required}: prompt template not found")
    return PromptTemplates(str(folder), sources)


def _quoted(value: Any) -> str:
    """Render vendor text as a JSON string literal, so it can never start a line of its own."""
    return json.dumps(value, ensure_ascii=False)


@functools.lru_cache(maxsize=1)
def _environment() -> ImmutableSandboxedEnvironment:
    # Sandboxed because maintainers' templates are edited often; StrictUndefined so a typo is an
    # error, not a blank; no autoescape because this is a chat prompt, not HTML.
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
    env.filters["quoted"] = _quoted
    return env


@functools.lru_cache(maxsize=64)
def _compiled(source: str) -> Template:
    # Planning a run renders every prompt up front: compile each template text once, not per prompt.
    return _environment().from_string(source)


def render_template(templates: PromptTemplates, name: str, variables: dict[str, Any]) -> str:
    """Render one prompt template; raise PersonaError naming the template on any template error."""
    where = str(Path(templates.folder) / name)
    try:
        template = _compiled(templates.sources[name])
        return template.render(**variables).strip()
    except TemplateSyntaxError as error:
        raise PersonaError(f"{where}: line {error.lineno}: {error.message}") from None
    except UndefinedError as error:
        raise PersonaError(f"{where}: unknown variable ({error.message})") from None
    except TemplateError as error:
        raise PersonaError(f"{where}: {error}") from None


def card_variables(card: ToolCard) -> dict[str, Any]:
    """The template variables for one tool card."""
    return card.model_dump(mode="json")


def persona_variables(persona: Persona) -> dict[str, Any]:
    """The template variables for one persona."""
    return {
        "id": persona.id,
        "name": persona.name,
        "title": persona.title,
        "focus": persona.focus,
        "brief": persona.brief,
    }


def build_messages(
    persona: Persona,
    templates: PromptTemplates,
    tool: ToolCard,
    rival: ToolCard,
    schema: dict,
    tool_first: bool = True,
) -> list[dict[str, str]]:
    """Chat messages asking `persona` for a verdict on `tool`: persona in system, vendor text in user.

    `tool_first`: whether `tool` is the pair's first (left) tool. The user template gets both cards in the pair's
    order (`first`, `second`) as well as `tool` and `rival`, so both reviews of a pair can share one prefix.
    """
    system = render_template(
        templates, SYSTEM_TEMPLATE, {"persona": persona_variables(persona), "schema": json.dumps(schema, indent=None)}
    )
    first, second = (tool, rival) if tool_first else (rival, tool)
    user = render_template(
        templates,
        USER_TEMPLATE,
        {
            "persona": persona_variables(persona),
            "tool": card_variables(tool),
            "rival": card_variables(rival),
            "first": card_variables(first),
            "second": card_variables(second),
        },
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]
