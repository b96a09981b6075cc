"""Where each setting can be set: its Settings field, its panel.toml table and key, its variable and its flag.

config.py layers the values in this order of precedence (flags > environment > panel.toml > defaults);
`panel config` prints each with where it came from.
"""

from __future__ import annotations

from dataclasses import dataclass

PROFILE = "endpoints.NAME"  # a Key's table when the value comes from the picked endpoint profile


@dataclass(frozen=True)
class Key:
    """One setting: its Settings field, its panel.toml table and key, its environment variable and flag."""

    field: str
    table: str | None = None  # "run", "sampling", "paths", "" (top level), PROFILE; None: not in the file
    key: str | None = None
    env: str | None = None
    flag: str | None = None


KEYS: tuple[Key, ...] = (
    Key("endpoint_name", "", "endpoint", "PANEL_ENDPOINT", "--endpoint"),
    Key("base_url", PROFILE, "base_url", "OPENAI_BASE_URL", "--base-url"),
    Key("model", PROFILE, "model", "PANEL_MODEL", "--model"),
    Key("mode", PROFILE, "mode", "PANEL_MODE", "--mode"),
    Key("api_key_env", PROFILE, "api_key_env"),
    Key("price_input", PROFILE, "price_input", flag="--price-input"),
    Key("price_output", PROFILE, "price_output", flag="--price-output"),
    Key("price_batch_input", PROFILE, "price_batch_input"),
    Key("price_batch_output", PROFILE, "price_batch_output"),
    Key("logprobs", PROFILE, "logprobs"),
    Key("logprobs_probe", PROFILE, "logprobs_probe"),
    Key("temperature", "sampling", "temperature", flag="--temperature"),
    Key("max_tokens", "sampling", "max_tokens", flag="--max-tokens"),
    Key("seed", "sampling", "seed", flag="--seed"),
    Key("concurrency", "run", "concurrency", flag="--concurrency"),
    Key("timeout_s", "run", "timeout", flag="--timeout"),
    Key("max_retries", "run", "max_retries", flag="--max-retries"),
    Key("reasks", "run", "reasks"),
    Key("max_requests", "run", "max_requests", flag="--max-requests"),
    Key("token_budget", "run", "token_budget", flag="--token-budget"),
    Key("samples", "run", "samples", flag="--samples"),
    Key("jury", "run", "jury", flag="--jury"),
    Key("db_path", "paths", "database", "PANEL_DB", "--db"),
    Key("personas_dir", "paths", "personas", flag="--personas-dir"),
    Key("prompts_dir", "paths", "prompts", flag="--prompts-dir"),
    Key("runs_dir", "paths", "runs"),
    Key("out_dir", "paths", "pages", flag="--out"),
    Key("publish_dir", "paths", "publish"),
    Key("editor", "desk", "editor", "PANEL_EDITOR", "--editor"),
    Key("smtp_host", "smtp", "host", "PANEL_SMTP_HOST", "--smtp-host"),
    Key("smtp_port", "smtp", "port", "PANEL_SMTP_PORT", "--smtp-port"),
    Key("smtp_security", "smtp", "security"),
    Key("smtp_user", "smtp", "user"),
    Key("smtp_password_env", "smtp", "password_env"),
    Key("smtp_sender", "smtp", "sender"),
    Key("smtp_max_per_minute", "smtp", "max_per_minute"),
    Key("site_url", "site", "url", flag="--site-url"),
    Key("signup_url", "site", "signup_url"),
    Key("allow_outside_cards", flag="--allow-outside-cards"),
)
