"""Everyone's command: `panel config` prints the effective settings and where each came from."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from panel.cli.app import (
    BaseUrlOption,
    ConcurrencyOption,
    DbOption,
    EndpointOption,
    MaxRequestsOption,
    MaxRetriesOption,
    MaxTokensOption,
    ModelOption,
    ModeOption,
    OutOption,
    PersonasDirOption,
    PromptsDirOption,
    SeedOption,
    TemperatureOption,
    TimeoutOption,
    TokenBudgetOption,
    app,
    console,
)
from panel.config import Settings, load_settings
from panel.config_keys import KEYS, PROFILE
from panel.project import PROJECT_ENV, Project, find_project


def _name(table: str | None, key: str) -> str:
    """A setting's name as `panel config` shows it: its panel.toml spelling (`run.concurrency`, `endpoint.model`)."""
    if table == PROFILE:
        return f"endpoint.{key}"
    return f"{table}.{key}" if table else key


def _shown(settings: Settings, name: str, value: object) -> str:
    """A value for a person: what None means for this setting, the API key's variable with set / not set."""
    if name in ("api_key_env", "smtp_password_env"):
        secret = "key" if name == "api_key_env" else "password"
        return f"{value} ({'set' if os.environ.get(str(value)) else 'not set'}; the {secret} itself is never shown)"
    if value is not None:
        return str(value)
    return {
        "base_url": "none (the embedded model)",
        "model": (
            f"{settings.model_name} (the embedded model)"
            if settings.embedded
            else "none (asked from the endpoint's /v1/models when a command calls the model)"
        ),
        "mode": f"{settings.structured_mode} (chosen for the endpoint)",
        "concurrency": f"{settings.effective_concurrency} (chosen for the endpoint)",
        "seed": "none",
        "editor": "none (your login name; the desk asks in a form)",
        "max_requests": "none (no budget)",
        "token_budget": "none (no budget)",
        "smtp_user": "none (no login)",
        "site_url": "none (panel serve's own address; panel digest: http://127.0.0.1:8000)",
        "signup_url": "none (the site's /newsletter page when site.url is set; else no link on static pages)",
    }.get(name, "unknown")


def config_entries(project: Project, settings: Settings) -> list[dict[str, object]]:
    """The effective settings as {key, value, shown, origin} rows, the project first; never a key's value."""
    origin = f"env {PROJECT_ENV}" if os.environ.get(PROJECT_ENV) else f"found from {Path.cwd()}"
    rows: list[dict[str, object]] = [
        {"key": "project", "value": str(project.root), "shown": str(project.root), "origin": origin}
    ]
    for key in KEYS:
        if key.table is None or key.key is None:  # flag-only switches are not settings to share
            continue
        value = getattr(settings, key.field)
        row: dict[str, object] = {
            "key": _name(key.table, key.key),
            "value": str(value) if isinstance(value, Path) else value,
            "shown": _shown(settings, key.field, value),
            "origin": settings.origin(key.field),
        }
        if key.field in ("api_key_env", "smtp_password_env"):
            row["set"] = bool(os.environ.get(str(value)))
        rows.append(row)
    return rows


@app.command("config")
def config_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list of {key, value, origin} instead.")] = False,
    endpoint: EndpointOption = None,
    base_url: BaseUrlOption = None,
    model: ModelOption = None,
    mode: ModeOption = None,
    temperature: TemperatureOption = None,
    max_tokens: MaxTokensOption = None,
    seed: SeedOption = None,
    concurrency: ConcurrencyOption = None,
    timeout: TimeoutOption = None,
    max_retries: MaxRetriesOption = None,
    max_requests: MaxRequestsOption = None,
    token_budget: TokenBudgetOption = None,
    personas_dir: PersonasDirOption = None,
    prompts_dir: PromptsDirOption = None,
    db: DbOption = None,
    out: OutOption = None,
) -> None:
    """Print the effective settings, one per line, with where each came from (flag, env, panel.toml:LINE, default).

    Takes the same flags as the commands, to show what they would use. The API key is never printed: only the
    name of its variable and whether it is set. No model is asked.

    Example: panel config --json
    """
    project = find_project()
    settings = load_settings(
        project,
        {
            "endpoint_name": endpoint,
            "base_url": base_url,
            "model": model,
            "mode": mode,
            "temperature": temperature,
            "max_tokens": max_tokens,
            "seed": seed,
            "concurrency": concurrency,
            "timeout_s": timeout,
            "max_retries": max_retries,
            "max_requests": max_requests,
            "token_budget": token_budget,
            "personas_dir": personas_dir,
            "prompts_dir": prompts_dir,
            "db_path": db,
            "out_dir": out,
        },
    )
    rows = config_entries(project, settings)
    if as_json:
        console.print(json.dumps([{k: v for k, v in row.items() if k != "shown"} for row in rows], indent=2))
        return
    width = max(len(str(row["origin"])) for row in rows)
    for row in rows:
        console.print(f"{str(row['origin']):<{width}}  {row['key']}={row['shown']}")
