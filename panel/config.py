"""Settings: the one home of configuration, from flags > environment > panel.toml > defaults.

Each value keeps where it came from (`flag --model`, `env OPENAI_BASE_URL`, `/path/panel.toml:12`, `default`),
which `panel config` prints. Endpoint profiles ([endpoints.NAME]) are picked by `--endpoint`, then
`$PANEL_ENDPOINT`, then `endpoint =` in panel.toml, else the built-in `embedded`. A profile sits at the layer
that picked it: its values beat every lower layer, and the single values of its own layer beat it
(`--endpoint openai --base-url URL` is the openai profile with that URL; `OPENAI_BASE_URL` beats the base_url
of the panel.toml default profile, but not the one of a profile picked with `--endpoint`).
Secrets are never here: `api_key_env` names the variable read when a client is made.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from panel.config_file import (
    EMBEDDED_PROFILE,
    MAX_REPLY_TOKENS,
    ConfigFile,
    DeskTable,
    EndpointTable,
    PathsTable,
    RunTable,
    SamplingTable,
    SiteTable,
    SmtpSecurity,
    SmtpTable,
    check_value,
    got,
    read_config_file,
    shown_path,
)
from panel.config_keys import KEYS, PROFILE
from panel.errors import ConfigError
from panel.model.modes import StructuredMode
from panel.project import Project, find_project

__all__ = ["EMBEDDED_MODEL_NAME", "Settings", "load_settings", "project_settings"]

EMBEDDED_MODEL_NAME = "smollm2-135m-instruct"
DEFAULT_ORIGIN = "default"


@dataclass(frozen=True)
class Settings:
    """Everything that decides how a run talks to a model and where it writes.

    `base_url` None means the embedded llama.cpp server. `origins` says where each field's value came from
    (fields not in it: `default`). Paths built by hand are relative to the working directory; load_settings
    makes them absolute, inside the project.
    """

    endpoint_name: str = EMBEDDED_PROFILE
    base_url: str | None = None
    model: str | None = None
    mode: StructuredMode | None = None
    logprobs: bool | None = None  # ask for token log-probabilities; None: only of the embedded model
    logprobs_probe: bool | None = None  # ask them in a short request of their own; None: only of the embedded model
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = 0.2
    max_tokens: int = 700  # per reply
    seed: int | None = 7
    concurrency: int | None = None
    timeout_s: float = 120.0
    max_retries: int = 2
    reasks: int = 3
    max_requests: int | None = None
    token_budget: int | None = None  # run-wide prompt+completion tokens
    samples: int = 1  # answers per persona and model, each with its own seed (panel/jury.py)
    jury: tuple[str, ...] = ()  # endpoint profiles that each answer every persona; () = the endpoint alone
    price_input: float | None = None  # USD per million tokens; None = unknown
    price_output: float | None = None
    price_batch_input: float | None = None
    price_batch_output: float | None = None
    db_path: Path = Path("runs/panel.duckdb")
    personas_dir: Path = Path("personas")
    prompts_dir: Path = Path("prompts")
    runs_dir: Path = Path("runs")
    out_dir: Path = Path("runs/pages")
    publish_dir: Path = Path("publish")  # where `panel publish` and the desk write the final pages
    editor: str | None = None  # who edits and publishes; None: the login name (the desk asks in a form)
    # Mail (panel digest, panel serve's confirmations): a plain SMTP server on this machine needs no settings.
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_security: SmtpSecurity = "none"
    smtp_user: str | None = None
    smtp_password_env: str = "PANEL_SMTP_PASSWORD"
    smtp_sender: str = "panel@localhost"
    smtp_max_per_minute: int = 60
    site_url: str | None = None  # None: the server's own address (panel digest: serve's default one)
    signup_url: str | None = None  # None: the site's /newsletter page, when site_url is set
    # Card paths may leave the run file's folder (absolute, '..', symlinks): --allow-outside-cards.
    allow_outside_cards: bool = False
    origins: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False, repr=False)
    # Every endpoint profile of panel.toml (and the built-in embedded one), for a jury's members.
    profiles: Mapping[str, EndpointTable] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def embedded(self) -> bool:
        """True when no endpoint is configured and the bundled model is used."""
        return self.base_url is None

    @property
    def model_name(self) -> str:
        """The model name sent in requests; raise ConfigError when a configured endpoint has none.

        The CLI asks the endpoint's /v1/models first (panel.served_model.with_served_model), so a command
        only gets here without a model when called from Python.
        """
        if self.model:
            return self.model
        if self.embedded:
            return EMBEDDED_MODEL_NAME
        where = (
            "a profile's model = in panel.toml"
            if self.endpoint_name == EMBEDDED_PROFILE
            else f"model = in [endpoints.{self.endpoint_name}] of panel.toml"
        )
        raise ConfigError(f"no model for the endpoint {self.base_url}: give --model, or {where}")

    @property
    def structured_mode(self) -> str:
        """The structured-output mode: llama-cpp-python's server rejects json_schema, so it gets json_object+schema."""
        return self.mode or ("json_object_schema" if self.embedded else "json_schema")

    @property
    def wants_logprobs(self) -> bool:
        """Whether requests ask for token log-probabilities (panel/model/logprobs.py): off for an unknown endpoint."""
        return self.embedded if self.logprobs is None else self.logprobs

    @property
    def probes_logprobs(self) -> bool:
        """Whether log-probabilities come from a short probe request before each answer, not the answer itself.

        llama-cpp-python's server sorts the whole vocabulary (49,152 tokens for SmolLM2) in Python for every token
        it returns log-probabilities for: asked on the answer, they made the embedded run 2.4x slower. The verdict
        is the answer's first field, so a probe of LOGPROB_PROBE_TOKENS tokens (same prompt, seed and schema, the
        prompt then cached for the answer) carries the one log-probability the calibration needs.
        """
        probe = self.embedded if self.logprobs_probe is None else self.logprobs_probe
        return self.wants_logprobs and probe

    @property
    def effective_concurrency(self) -> int:
        """How many verdict requests may be in flight: the embedded server answers one at a time."""
        return self.concurrency or (1 if self.embedded else 8)

    @property
    def signup_link(self) -> str | None:
        """Where static pages send readers to sign up: signup_url, else the site's /newsletter page, else None."""
        if self.signup_url:
            return self.signup_url
        return f"{self.site_url.rstrip('/')}/newsletter" if self.site_url else None

    def sampling(self) -> dict[str, object]:
        """The sampling parameters that, with the messages, decide an answer (part of its cache key)."""
        return {"temperature": self.temperature, "max_tokens": self.max_tokens, "seed": self.seed}

    def origin(self, name: str) -> str:
        """Where the value of field `name` came from."""
        return self.origins.get(name, DEFAULT_ORIGIN)

    def with_overrides(self, **changes: object) -> "Settings":
        """A copy with the non-None `changes` applied (their origin: `set in code`)."""
        given: dict[str, Any] = {k: v for k, v in changes.items() if v is not None}
        return replace(self, **given, origins={**self.origins, **{k: "set in code" for k in given}})


_BY_FIELD = {key.field: key for key in KEYS}
_TABLES: dict[str, type[BaseModel]] = {
    "sampling": SamplingTable,
    "run": RunTable,
    "paths": PathsTable,
    "desk": DeskTable,
    "smtp": SmtpTable,
    "site": SiteTable,
    PROFILE: EndpointTable,
}
_PATHS = {"db_path", "personas_dir", "prompts_dir", "runs_dir", "out_dir", "publish_dir"}
_PROFILE_KEYS = [key for key in KEYS if key.table == PROFILE]
# Picking a profile with --endpoint or $PANEL_ENDPOINT takes it whole: what it leaves out is its default.
_DEFAULTS = {f.name: f.default for f in fields(Settings) if f.name not in ("origins", "profiles")}


class _Layers:
    """The values chosen so far and where each came from; each layer applied overwrites the ones below."""

    def __init__(self, project: Project) -> None:
        # Any: one value per Settings field, each of its field's type (checked by _checked as it is set), which
        # only Settings(**values) itself can state.
        self.values: dict[str, Any] = dict(_DEFAULTS)
        for name in _PATHS:
            self.values[name] = project.root / self.values[name]
        self.origins: dict[str, str] = {}

    def set(self, name: str, value: object, origin: str) -> None:
        self.values[name] = value
        self.origins[name] = origin


def load_settings(
    project: Project, flags: Mapping[str, object] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Settings for `project`: `flags` (Settings field -> value; None = not given) over `environ` (default
    os.environ) over the project's panel.toml over defaults. Raise ConfigError (one line) on a bad value."""
    flags = {name: value for name, value in (flags or {}).items() if value is not None}
    if flags.get("allow_outside_cards") is False:  # a switch left off is not a choice
        del flags["allow_outside_cards"]
    unknown = sorted(set(flags) - set(_BY_FIELD) - {"endpoint_name"})
    if unknown:
        raise TypeError(f"load_settings: no setting called {', '.join(unknown)}")
    environ = os.environ if environ is None else environ
    env = {key.field: environ[key.env] for key in KEYS if key.env and environ.get(key.env)}
    config = read_config_file(project.config_file)
    layers = _Layers(project)
    name, picked_by = _pick_profile(config, flags, env)
    profile = _profiles(config)[name]
    layers.set("endpoint_name", name, _profile_origin(config, picked_by))
    if picked_by in ("default", "file"):
        _apply_profile(layers, config, name, profile, whole=False, prefix="")
    _apply_file(layers, config, project)
    for layer, given in (("env", env), ("flag", flags)):
        if picked_by == layer:  # below this layer's single values, above everything under it
            _apply_profile(layers, config, name, profile, whole=True, prefix=_profile_origin(config, layer))
        for field_name, value in given.items():
            if field_name != "endpoint_name":
                key = _BY_FIELD[field_name]
                origin = f"env {key.env}" if layer == "env" else f"flag {key.flag}"
                layers.set(field_name, _checked(field_name, value, origin), origin)
    for batch, single in (("price_batch_input", "price_input"), ("price_batch_output", "price_output")):
        if layers.values[batch] is None and layers.values[single] is not None:  # the Batch API costs half
            layers.set(batch, layers.values[single] / 2, f"default (half of {single})")
    layers.values["jury"] = tuple(layers.values["jury"])
    if unknown_members := [m for m in layers.values["jury"] if m not in _profiles(config)]:
        raise ConfigError(
            f"{layers.origins['jury']}: no endpoint profile {got(unknown_members[0])} in the jury "
            f"(known: {', '.join(_profiles(config))})"
        )
    return Settings(**layers.values, origins=layers.origins, profiles=_profiles(config))


def project_settings(start: Path | str | None = None, **flags: object) -> Settings:
    """Settings of the project at or above `start` (default: the working directory), for Python callers:
    `flags` (Settings field names, as the CLI's flags) over the environment over panel.toml over defaults."""
    return load_settings(find_project(Path(start) if start is not None else None), flags)


def _profiles(config: ConfigFile) -> dict[str, EndpointTable]:
    # The built-in embedded profile is empty: no base_url is the bundled model; panel.toml may restate it.
    return {EMBEDDED_PROFILE: EndpointTable(), **config.content.endpoints}


def _pick_profile(config: ConfigFile, flags: Mapping[str, object], env: Mapping[str, str]) -> tuple[str, str]:
    """(profile name, the layer that picked it: flag, env, file or default); ConfigError for an unknown name."""
    known = _profiles(config)
    for layer, name, where in (
        ("flag", flags.get("endpoint_name"), "--endpoint"),
        ("env", env.get("endpoint_name"), "$PANEL_ENDPOINT"),
        ("file", config.content.endpoint, f"{shown_path(config.path)}: endpoint"),
    ):
        if name is None:
            continue
        if name not in known:
            raise ConfigError(
                f"{where}: no endpoint profile {got(name)} (known: {', '.join(known)}; "
                f"define it as [endpoints.{name}] in {shown_path(config.path)})"
            )
        return str(name), layer
    return EMBEDDED_PROFILE, "default"


def _profile_origin(config: ConfigFile, picked_by: str) -> str:
    return {"flag": "flag --endpoint", "env": "env PANEL_ENDPOINT", "default": DEFAULT_ORIGIN}.get(
        picked_by, config.where("", "endpoint")
    )


def _apply_profile(
    layers: _Layers, config: ConfigFile, name: str, profile: EndpointTable, whole: bool, prefix: str
) -> None:
    """The profile's values; with `whole`, its unset keys too (as their defaults), so nothing below leaks in."""
    table = f"endpoints.{name}"
    for key in _PROFILE_KEYS:
        value = getattr(profile, key.key or "")
        where = config.where(table, key.key or "") if name in config.content.endpoints else f"built-in [{table}]"
        if value is not None:
            layers.set(key.field, value, f"{prefix} {where}".strip() if prefix else where)
        elif whole:
            unset = f"not set in [{table}]" if name in config.content.endpoints else f"the built-in {name} profile"
            layers.set(key.field, _DEFAULTS[key.field], f"{prefix} ({unset})")


def _apply_file(layers: _Layers, config: ConfigFile, project: Project) -> None:
    for key in KEYS:
        if key.table in (None, "", PROFILE):
            continue
        value = getattr(getattr(config.content, key.table), key.key or "")
        if value is not None:
            layers.set(
                key.field, project.path(value) if key.field in _PATHS else value, config.where(key.table, key.key or "")
            )


def _checked(name: str, value: object, origin: str) -> object:
    """A flag's or environment variable's value, held to the same rule as in panel.toml."""
    key = _BY_FIELD[name]
    if name == "max_tokens" and isinstance(value, int) and value > MAX_REPLY_TOKENS:
        raise ConfigError(
            f"{key.flag} {value}: that is the per-reply limit (at most {MAX_REPLY_TOKENS}); "
            "the run-wide budget is --token-budget (token_budget in [run] of panel.toml)"
        )
    if name in _PATHS:
        return Path(str(value)).expanduser().absolute()
    if key.table in _TABLES and key.key:
        return check_value(_TABLES[key.table], key.key, value, origin)
    return value
