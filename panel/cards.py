"""Tool cards and run files: load, validate, and fail with one line naming file, tool and field."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import unicodedata
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from panel.errors import CardError
from panel.safe_yaml import YamlProblem, load_yaml
from panel.vendor_text import FIELD_LIMITS, clean_vendor_text, link_problem

MAX_CARD_BYTES = 1_000_000
MAX_SHOWN_PATH = 160
# The CLI option that lifts the card path rules; named in the error so the user knows the way out.
OUTSIDE_CARDS_FLAG = "--allow-outside-cards"
_YAML_KINDS = {str: "string", list: "list", int: "number", float: "number", bool: "boolean"}


class EmptyText(ValueError):
    """A required card text is empty once cleaned (only spaces or invisible characters)."""


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
        """Return a copy with every vendor string neutralised and capped, and flags recorded.

        Raises EmptyText when a required text is nothing but spaces and invisible characters.
        """
        flags: list[str] = []

        def take(value: str, where: str, single_line: bool = True) -> str:
            cleaned = clean_vendor_text(value, where, FIELD_LIMITS[where], single_line)
            if not cleaned.text and where != "link":
                raise EmptyText(f"field '{where}' is empty once invisible characters and spaces are removed")
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
            pricing=Pricing(
                entry=self.pricing.entry, details=take(self.pricing.details, "pricing.details", single_line=False)
            ),
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


def shown_path(path: str | Path) -> str:
    """A path as an error may print it: control and invisible characters removed, long ones cut in the middle."""
    text = clean_vendor_text(str(path), "path", 10_000, single_line=True).text or "(empty path)"
    return text if len(text) <= MAX_SHOWN_PATH else text[:40] + "…" + text[-(MAX_SHOWN_PATH - 41) :]


def _shown(value: object, limit: int = 60) -> str:
    """A name or key from a card, quoted for an error message: cleaned and cut."""
    return repr(clean_vendor_text(str(value), "name", limit, single_line=True).text)


def _os_reason(error: OSError) -> str:
    if error.errno == errno.ELOOP:
        return "symlink loop"
    return os.strerror(error.errno) if error.errno else type(error).__name__


def _read_yaml(path: Path, context: str = "") -> Any:
    """Parse a run or card file with panel's YAML rules; every error names the path, never the contents."""
    where = shown_path(path)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise CardError(f"{where}: is {kind}, not a YAML file{context}")
        if info.st_size > MAX_CARD_BYTES:
            raise CardError(f"{where}: file is larger than {MAX_CARD_BYTES} bytes{context}")
        with path.open("rb") as handle:
            blob = handle.read(MAX_CARD_BYTES + 1)
    except FileNotFoundError:
        raise CardError(f"{where}: file not found{context}") from None
    except OSError as error:
        raise CardError(f"{where}: cannot be read ({_os_reason(error)}){context}") from None
    if len(blob) > MAX_CARD_BYTES:  # grew since stat
        raise CardError(f"{where}: file is larger than {MAX_CARD_BYTES} bytes{context}")
    try:
        return load_yaml(blob.decode("utf-8"))
    except UnicodeDecodeError:
        raise CardError(f"{where}: not UTF-8 text{context}") from None
    except YamlProblem as problem:
        line = f" line {problem.line}:" if problem.line else ""
        raise CardError(f"{where}:{line} broken YAML ({problem.problem}){context}") from None


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    field = clean_vendor_text(".".join(str(part) for part in first["loc"]), "field", 80, True).text or "(card)"
    if first["type"] == "missing":
        return f"field '{field}' is missing"
    if first["type"] == "extra_forbidden":
        return f"field '{field}' is not a card field"
    return f"field '{field}': {first['msg']}"


def card_file(reference: str, run_file: Path, allow_outside: bool = False) -> Path:
    """The card file a run file's `reference` names, checked against the card path rules (docs/cards.md).

    Raises CardError unless the path is relative and resolves (symlinks followed) inside the run file's
    folder, or `allow_outside` is set; a reference to the run file itself is refused either way.
    """
    problem = None
    if not reference.strip():
        problem = "is empty"
    elif any(unicodedata.category(c) == "Cc" for c in reference):
        problem = "contains control characters"
    if problem:
        raise CardError(f"{shown_path(run_file)}: card path {problem}")
    folder = os.path.realpath(run_file.parent)
    target = os.path.realpath(os.path.join(run_file.parent, reference))
    if not allow_outside:
        if os.path.isabs(reference):
            problem = "is absolute; write it relative to the run file's folder"
        elif os.path.commonpath([folder, target]) != folder:
            lexical = os.path.normpath(os.path.join(folder, reference))
            via = "through a symlink" if os.path.commonpath([folder, lexical]) == folder else "with '..'"
            problem = f"leads outside the run file's folder {via}"
        if problem:
            raise CardError(
                f"{shown_path(run_file)}: card path {shown_path(reference)!r} {problem} (or pass {OUTSIDE_CARDS_FLAG})"
            )
    if target == os.path.realpath(run_file):
        raise CardError(f"{shown_path(run_file)}: card path {shown_path(reference)!r} is the run file itself")
    return Path(target)


def load_card(raw: Any, source: Path, label: str, allow_outside: bool = False) -> ToolCard:
    """Validate one card (a mapping, or a card file path relative to the run file `source`); return it cleaned."""
    if isinstance(raw, str):
        path = card_file(raw, source, allow_outside)
        raw = _read_yaml(path, f" ({label} of {shown_path(source)})")
        if not isinstance(raw, dict):
            got = "empty" if raw is None else f"a {_YAML_KINDS.get(type(raw), 'value')}"
            raise CardError(f"{shown_path(path)}: a card file must be a YAML mapping of card fields (it is {got})")
        source = path
    elif not isinstance(raw, dict):
        raise CardError(f"{shown_path(source)}: {label}: expected a card mapping or a path to a card file")
    return validate_card(raw, shown_path(source), label)


def validate_card(raw: dict[str, Any], where: str, label: str) -> ToolCard:
    """Validate one card mapping and return it cleaned; a CardError reads '<where>: tool 'Name': <problem>'.

    `label` names the card while it has no name ('pair 1 tool 1'). The one set of card rules: card files, inline
    cards and the desk's form all pass here.
    """
    shown_name = _shown(raw["name"]) if isinstance(raw.get("name"), str) else "''"
    tool = f"tool {shown_name}" if shown_name != "''" else label
    if "flags" in raw:
        raise CardError(f"{where}: {tool}: field 'flags' is not a card field")
    try:
        return ToolCard.model_validate(raw).clean()
    except ValidationError as error:
        raise CardError(f"{where}: {tool}: {_first_error(error)}") from None
    except EmptyText as error:
        raise CardError(f"{where}: {tool}: {error}") from None


def tool_pair(left: ToolCard, right: ToolCard, where: str, index: int) -> ToolPair:
    """Pair `index` (1-based) of two validated cards; CardError when both name the same tool."""
    if left.name.casefold() == right.name.casefold():
        raise CardError(
            f"{where}: pair {index} names the tool {_shown(left.name)} twice; a pair compares two different tools"
        )
    return ToolPair(left=left, right=right)


def run_title(raw: Any, where: str, pairs: list[ToolPair]) -> str:
    """The run's title (None: '<left> vs <right>'), cleaned and capped like vendor text (the index page shows it)."""
    if raw is None:
        raw = f"{pairs[0].left.name} vs {pairs[0].right.name}"
    elif isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise CardError(f"{where}: 'title' must be text")
    title = clean_vendor_text(str(raw), "title", FIELD_LIMITS["title"], single_line=True).text
    if not title:
        raise CardError(
            f"{where}: 'title' is empty once invisible characters and spaces are removed "
            "(leave it out for '<left> vs <right>')"
        )
    return title


def load_run(path: str | Path, allow_outside: bool = False) -> RunSpec:
    """Load a run file and every card it names; raise CardError on the first problem.

    `allow_outside` lets card paths leave the run file's folder (absolute, '..', symlinks).
    """
    path = Path(path)
    where = shown_path(path)
    data = _read_yaml(path)
    if not isinstance(data, dict) or "pairs" not in data:
        raise CardError(f"{where}: a run file needs a 'pairs' list")
    unknown = sorted(str(key) for key in set(data) - {"title", "pairs"})
    if unknown:
        raise CardError(f"{where}: unknown key {_shown(unknown[0], 40)} (allowed: title, pairs)")
    pairs_raw = data["pairs"]
    if not isinstance(pairs_raw, list) or not pairs_raw:
        raise CardError(f"{where}: 'pairs' must be a non-empty list")
    pairs: list[ToolPair] = []
    for index, pair in enumerate(pairs_raw, start=1):
        if not isinstance(pair, list) or len(pair) != 2:
            raise CardError(f"{where}: pair {index} must be a list of exactly two tools")
        left = load_card(pair[0], path, f"pair {index} tool 1", allow_outside)
        right = load_card(pair[1], path, f"pair {index} tool 2", allow_outside)
        pairs.append(tool_pair(left, right, where, index))
    return RunSpec(path=str(path), title=run_title(data.get("title"), where, pairs), pairs=pairs)
