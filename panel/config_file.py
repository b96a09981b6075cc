"""panel.toml: what a team shares to get the same runs, read with tomllib and checked with pydantic.

Every key is optional. An unknown key or a bad value is one ConfigError line naming the file, the key and
what is allowed: `panel.toml: [run] concurrency: must be an integer 1-256 (got "eight")`.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from panel.errors import ConfigError
from panel.model.modes import MODES, StructuredMode

EMBEDDED_PROFILE = "embedded"
# A per-reply limit above this is surely the run-wide budget under its old name.
MAX_REPLY_TOKENS = 100_000
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_URL = r"^https?://[^\s/?#]+[^\s]*$"
_HOST = r"^([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])$"
SmtpSecurity = Literal["none", "starttls", "tls"]


class _Table(BaseModel):
    # strict: TOML has types, so "8" for an integer is a mistake to report, not to coerce.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class PathsTable(_Table):
    """[paths]: folders and files of the project, relative to its root."""

    personas: str | None = Field(default=None, min_length=1, description="a folder path (a string)")
    prompts: str | None = Field(default=None, min_length=1, description="a folder path (a string)")
    runs: str | None = Field(default=None, min_length=1, description="a folder path (a string)")
    database: str | None = Field(default=None, min_length=1, description="a file path (a string)")
    pages: str | None = Field(default=None, min_length=1, description="a folder path (a string)")
    publish: str | None = Field(default=None, min_length=1, description="a folder path (a string)")


class SamplingTable(_Table):
    """[sampling]: sent with every request; part of each answer's cache key."""

    temperature: float | None = Field(default=None, ge=0, le=2, description="a number 0-2")
    max_tokens: int | None = Field(
        default=None,
        ge=1,
        le=MAX_REPLY_TOKENS,
        description=(f"an integer 1-{MAX_REPLY_TOKENS} (per reply; the run-wide budget is [run] token_budget)"),
    )
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1, description="a whole number 0 or more")


class RunTable(_Table):
    """[run]: how a run asks: concurrency, timeouts, retries, re-asks, budgets."""

    concurrency: int | None = Field(default=None, ge=1, le=256, description="an integer 1-256")
    timeout: float | None = Field(default=None, gt=0, le=3600, description="a number of seconds above 0, at most 3600")
    max_retries: int | None = Field(default=None, ge=0, le=10, description="an integer 0-10")
    reasks: int | None = Field(default=None, ge=0, le=10, description="an integer 0-10")
    max_requests: int | None = Field(default=None, ge=1, description="an integer 1 or more")
    token_budget: int | None = Field(default=None, ge=1, description="an integer 1 or more")
    samples: int | None = Field(
        default=None, ge=1, le=25, description="an integer 1-25 (answers per persona and model)"
    )
    jury: list[str] | None = Field(
        default=None, min_length=1, max_length=9, description="a list of 1-9 endpoint profile names"
    )


class DeskTable(_Table):
    """[desk]: the editor's desk (`panel desk`) and publishing."""

    editor: str | None = Field(
        default=None, min_length=1, max_length=80, pattern=r"\S", description="a name of 1-80 characters (who edits)"
    )


class EndpointTable(_Table):
    """[endpoints.NAME]: one endpoint profile; no base_url means the embedded model."""

    base_url: str | None = Field(default=None, pattern=_URL, description="an http:// or https:// URL")
    model: str | None = Field(default=None, min_length=1, description="a model name (a string)")
    mode: StructuredMode | None = Field(default=None, description=f"one of {', '.join(MODES)}")
    api_key_env: str | None = Field(
        default=None,
        pattern=_ENV_NAME,
        description=("the NAME of an environment variable (letters, digits, _), never a key"),
    )
    price_input: float | None = Field(default=None, ge=0, description="USD per million tokens, 0 or more")
    price_output: float | None = Field(default=None, ge=0, description="USD per million tokens, 0 or more")
    price_batch_input: float | None = Field(default=None, ge=0, description="USD per million tokens, 0 or more")
    price_batch_output: float | None = Field(default=None, ge=0, description="USD per million tokens, 0 or more")
    logprobs: bool | None = Field(default=None, description="true or false (ask for token log-probabilities)")
    logprobs_probe: bool | None = Field(
        default=None, description="true or false (ask log-probabilities in a short request before each answer)"
    )


class SmtpTable(_Table):
    """[smtp]: where `panel digest` and `panel serve` send mail; the password is read from `password_env`."""

    host: str | None = Field(default=None, pattern=_HOST, description="a host name or address (no scheme or port)")
    port: int | None = Field(default=None, ge=1, le=65535, description="a port number 1-65535")
    security: SmtpSecurity | None = Field(default=None, description="one of none, starttls, tls")
    user: str | None = Field(default=None, min_length=1, max_length=254, description="a user name (a string)")
    password_env: str | None = Field(
        default=None,
        pattern=_ENV_NAME,
        description="the NAME of an environment variable (letters, digits, _), never a password",
    )
    sender: str | None = Field(
        default=None, min_length=3, max_length=254, description="the From address, e.g. news@example.org"
    )
    max_per_minute: int | None = Field(
        default=None, ge=1, le=6000, description="an integer 1-6000 (mails sent per minute)"
    )


class SiteTable(_Table):
    """[site]: the public address of the served pages, which links in mails and static pages point to."""

    url: str | None = Field(default=None, pattern=_URL, description="an http:// or https:// URL")
    signup_url: str | None = Field(default=None, pattern=_URL, description="an http:// or https:// URL")


class PanelFile(_Table):
    """The whole of panel.toml."""

    endpoint: str | None = Field(default=None, min_length=1, description="the name of an [endpoints.NAME] profile")
    paths: PathsTable = PathsTable()
    sampling: SamplingTable = SamplingTable()
    run: RunTable = RunTable()
    desk: DeskTable = DeskTable()
    endpoints: dict[str, EndpointTable] = Field(default_factory=dict, description="tables [endpoints.NAME]")
    smtp: SmtpTable = SmtpTable()
    site: SiteTable = SiteTable()


@dataclass(frozen=True)
class ConfigFile:
    """A checked panel.toml: its content, and the line each key was set on (for `panel config`)."""

    path: Path
    content: PanelFile
    lines: dict[tuple[str, str], int] = field(default_factory=dict)

    def where(self, table: str, key: str) -> str:
        """Where `key` of `table` ('' = top level) was set: `/path/panel.toml:12`, or `/path/panel.toml [table]`."""
        line = self.lines.get((table, key))
        if line is not None:
            return f"{self.path}:{line}"
        return f"{self.path} [{table}]" if table else str(self.path)


def shown_path(path: Path) -> str:
    """How a user sees a file in an error: relative to the working directory when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def got(value: object) -> str:
    """A value as the user wrote it, for `(got ...)`: strings quoted, tables and lists as JSON."""
    try:
        return json.dumps(value, ensure_ascii=False, default=str)[:80]
    except (TypeError, ValueError):
        return repr(value)[:80]


def read_config_file(path: Path) -> ConfigFile:
    """The checked content of `path`; raise ConfigError (one line) when it is unreadable, not TOML, or wrong."""
    name = shown_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{name}: cannot be read ({error.__class__.__name__}: {error})") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{name}: not valid TOML: {error}") from None
    try:
        content = PanelFile.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(f"{name}: {describe_error(error)}") from None
    return ConfigFile(path, content, key_lines(text))


def describe_error(error: ValidationError) -> str:
    """The first problem of a failed PanelFile check, as `[table] key: must be ... (got ...)`."""
    problem = error.errors()[0]
    loc = [str(part) for part in problem["loc"]]
    model: type[BaseModel] = PanelFile
    tables: list[str] = []
    # Walk down to the table that holds the key: [run], [endpoints.NAME], ...
    while len(loc) > 1:
        annotation = model.model_fields[loc[0]].annotation
        if loc[0] == "endpoints":
            if len(loc) == 2:  # [endpoints.NAME] = 5: the profile itself is not a table
                return f"[endpoints.{loc[1]}]: must be a table of {_keys(EndpointTable)} (got {got(problem['input'])})"
            tables, model, loc = ["endpoints", loc[1]], EndpointTable, loc[2:]
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            tables, model, loc = [loc[0]], annotation, loc[1:]
        else:  # a key that is not a table, e.g. an item of a list: name the key itself
            break
    key = loc[0]
    where = f"[{'.'.join(tables)}] {key}" if tables else key
    if problem["type"] == "extra_forbidden":
        return f"{where}: unknown key (allowed: {_keys(model)})"
    info = model.model_fields[key]
    if key == "endpoints" or (isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel)):
        allowed = f"a table [{key}]" if key != "endpoints" else "tables [endpoints.NAME]"
        return f"{where}: must be {allowed} (got {got(problem['input'])})"
    return f"{where}: must be {info.description} (got {got(problem['input'])})"


def _keys(model: type[BaseModel]) -> str:
    return ", ".join(model.model_fields)


_HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
_KEY = re.compile(r'^\s*("[^"]*"|\'[^\']*\'|[A-Za-z0-9_-]+(?:\s*\.\s*[A-Za-z0-9_-]+)*)\s*=')


def key_lines(text: str) -> dict[tuple[str, str], int]:
    """(table, key) -> line number for the simple `key = value` lines of a TOML text (table '' = top level).

    Only for showing where a value came from: a key this does not find is shown by its table instead.
    """
    lines: dict[tuple[str, str], int] = {}
    table = ""
    for number, line in enumerate(text.splitlines(), start=1):
        if header := _HEADER.match(line):
            table = ".".join(part.strip().strip("\"'") for part in header.group(1).split("."))
        elif key := _KEY.match(line):
            parts = [part.strip().strip("\"'") for part in key.group(1).split(".")]
            # `run.concurrency = 8` at the top level, or `openai.model = ...` under [endpoints]
            full_table = ".".join(filter(None, [table, *parts[:-1]]))
            lines.setdefault((full_table, parts[-1]), number)
    return lines


def check_value(table: type[BaseModel], key: str, value: Any, origin: str) -> Any:
    """`value` checked against the rule for `key` of `table`; raise ConfigError `origin: must be ... (got ...)`."""
    try:
        return table.model_validate({key: value}, strict=False).__dict__[key]
    except ValidationError as error:
        problem = error.errors()[0]
        description = table.model_fields[key].description
        raise ConfigError(f"{origin}: must be {description} (got {got(problem['input'])})") from None
