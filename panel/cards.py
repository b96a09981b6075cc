"""Tool cards and run files: load, validate, and fail with one line naming file, tool and field."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from panel.errors import CardError
from panel.vendor_text import FIELD_LIMITS, clean_vendor_text, link_problem

MAX_CARD_BYTES = 1_000_000


class Pricing(BaseModel):
    """How a tool is priced: the entry tier shown on the page and the details the business reviewer reads."""

    model_config = ConfigDict(extra="forbid")
    entry: Literal["Free", "Paid", "Freemium"]
    details: str = Field(min_length=1)


class ToolCard(BaseModel):
    """One tool under review, as its vendor describes it (all text is untrusted data)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    category: str = Field(min_length=1)
    tagline: str = Field(min_length=1)
    description: str = Field(min_length=1)
    pricing: Pricing
    links: dict[str, str] = Field(default_factory=dict)
    # Filled by load_card, never by the card author: what cleaning found (injection, truncation...).
    flags: list[str] = Field(default_factory=list, exclude=True)

    @field_validator("links")
    @classmethod
    def _links_are_strings(cls, links: dict[str, str]) -> dict[str, str]:
        for label, url in links.items():
            if not url.strip():
                raise ValueError(f"link {label!r} is empty")
        return links

    @property
    def card_hash(self) -> str:
        """Content hash of the cleaned card: the tool's identity in the database."""
        return content_hash(self.model_dump(mode="json"))

    def clean(self) -> "ToolCard":
        """Return a copy with every vendor string neutralised and capped, and flags recorded."""
        flags: list[str] = []

        def take(value: str, where: str, single_line: bool = True) -> str:
            cleaned = clean_vendor_text(value, where, FIELD_LIMITS[where], single_line)
            flags.extend(cleaned.flags)
            return cleaned.text

        links: dict[str, str] = {}
        for label, url in self.links.items():
            url = take(url, "link").replace(" ", "%20").replace("{", "%7B").replace("}", "%7D")
            label = clean_vendor_text(label, "link", 60, True).text
            problem = link_problem(url)
            if problem is None:
                links[label] = url
            else:
                flags.append(f"link {label!r}: {problem}, dropped")
        return ToolCard(
            name=take(self.name, "name"),
            category=take(self.category, "category"),
            tagline=take(self.tagline, "tagline"),
            description=take(self.description, "description", single_line=False),
            pricing=Pricing(entry=self.pricing.entry,
                            details=take(self.pricing.details, "pricing.details", single_line=False)),
            links=links,
            flags=flags,
        )


class ToolPair(BaseModel):
    """Two tools reviewed side by side; each is the other's rival for context."""

    left: ToolCard
    right: ToolCard

    @property
    def tools(self) -> tuple[ToolCard, ToolCard]:
        """Both tools, left first."""
        return (self.left, self.right)


class RunSpec(BaseModel):
    """A run file: a title and one or more tool pairs."""

    path: str
    title: str
    pairs: list[ToolPair]


def content_hash(value: Any) -> str:
    """Stable sha256 of a JSON-able value (sorted keys, UTF-8)."""
    blob = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _read_yaml(path: Path) -> Any:
    if not path.is_file():
        raise CardError(f"{path}: file not found")
    if path.stat().st_size > MAX_CARD_BYTES:
        raise CardError(f"{path}: file is larger than {MAX_CARD_BYTES} bytes")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise CardError(f"{path}: not UTF-8 text") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise CardError(f"{path}:{where}: broken YAML ({problem})") from None


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "(card)"
    if first["type"] == "missing":
        return f"field '{field}' is missing"
    if first["type"] == "extra_forbidden":
        return f"field '{field}' is not a card field"
    return f"field '{field}': {first['msg']}"


def load_card(raw: Any, source: Path, label: str) -> ToolCard:
    """Validate one card (a mapping, or a path relative to `source`) and return it cleaned."""
    if isinstance(raw, str):
        card_path = (source.parent / raw).resolve()
        return load_card(_read_yaml(card_path), card_path, label)
    if not isinstance(raw, dict):
        raise CardError(f"{source}: {label}: expected a card mapping or a path to a card file")
    name = raw.get("name") if isinstance(raw.get("name"), str) else label
    if "flags" in raw:
        raise CardError(f"{source}: tool {name!r}: field 'flags' is not a card field")
    try:
        card = ToolCard.model_validate(raw)
    except ValidationError as error:
        raise CardError(f"{source}: tool {name!r}: {_first_error(error)}") from None
    return card.clean()


def load_run(path: str | Path) -> RunSpec:
    """Load a run file and every card it names; raise CardError on the first problem."""
    path = Path(path)
    data = _read_yaml(path)
    if not isinstance(data, dict) or "pairs" not in data:
        raise CardError(f"{path}: a run file needs a 'pairs' list")
    unknown = set(data) - {"title", "pairs"}
    if unknown:
        raise CardError(f"{path}: unknown key '{sorted(unknown)[0]}' (allowed: title, pairs)")
    pairs_raw = data["pairs"]
    if not isinstance(pairs_raw, list) or not pairs_raw:
        raise CardError(f"{path}: 'pairs' must be a non-empty list")
    pairs: list[ToolPair] = []
    for index, pair in enumerate(pairs_raw, start=1):
        if not isinstance(pair, list) or len(pair) != 2:
            raise CardError(f"{path}: pair {index} must be a list of exactly two tools")
        left = load_card(pair[0], path, f"pair {index} tool 1")
        right = load_card(pair[1], path, f"pair {index} tool 2")
        pairs.append(ToolPair(left=left, right=right))
    title = data.get("title") or pairs[0].left.name + " vs " + pairs[0].right.name
    return RunSpec(path=str(path), title=str(title), pairs=pairs)
