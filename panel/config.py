"""Settings: the one home of configuration (flags over environment over defaults)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

StructuredMode = Literal["json_schema", "json_object_schema", "tools", "prompt"]
MODES: tuple[str, ...] = ("json_schema", "json_object_schema", "tools", "prompt")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
EMBEDDED_MODEL_NAME = "smollm2-135m-instruct"


@dataclass(frozen=True)
class Settings:
    """Everything that decides how a run talks to a model and where it writes.

    `base_url` None means the embedded llama.cpp server. Secrets are read when a client is made,
    never stored here.
    """

    base_url: str | None = None
    model: str | None = None
    mode: StructuredMode | None = None
    temperature: float = 0.2
    max_tokens: int = 700
    seed: int | None = 7
    timeout_s: float = 120.0
    max_retries: int = 2
    reasks: int = 3
    concurrency: int | None = None
    max_requests: int | None = None
    max_tokens_total: int | None = None
    # USD per million prompt (input) and completion (output) tokens; None: unknown. Batch: the Batch API's price.
    price_input: float | None = None
    price_output: float | None = None
    price_batch_input: float | None = None
    price_batch_output: float | None = None
    db_path: Path = PROJECT_ROOT / "runs" / "panel.duckdb"
    personas_dir: Path = PROJECT_ROOT / "personas"
    prompts_dir: Path = PROJECT_ROOT / "prompts"
    out_dir: Path = PROJECT_ROOT / "runs" / "pages"
    # Card paths may leave the run file's folder (absolute, '..', symlinks): --allow-outside-cards.
    allow_outside_cards: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def embedded(self) -> bool:
        """True when no endpoint is configured and the bundled model is used."""
        return self.base_url is None

    @property
    def model_name(self) -> str:
        """The model name sent in requests."""
        return self.model or (EMBEDDED_MODEL_NAME if self.embedded else "gpt-4o-mini")

    @property
    def structured_mode(self) -> str:
        """The structured-output mode: llama-cpp-python's server rejects json_schema, so it gets json_object+schema."""
        return self.mode or ("json_object_schema" if self.embedded else "json_schema")

    @property
    def effective_concurrency(self) -> int:
        """How many verdict requests may be in flight: the embedded server answers one at a time."""
        return self.concurrency or (1 if self.embedded else 8)

    def sampling(self) -> dict[str, object]:
        """The sampling parameters that, with the messages, decide an answer (part of its cache key)."""
        return {"temperature": self.temperature, "max_tokens": self.max_tokens, "seed": self.seed}

    def with_overrides(self, **changes: object) -> "Settings":
        """A copy with the non-None `changes` applied."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def settings_from_env(**flags: object) -> Settings:
    """Settings from PANEL_*/OPENAI_BASE_URL environment variables, then explicit flags."""
    env: dict[str, object] = {}
    if os.environ.get("OPENAI_BASE_URL"):
        env["base_url"] = os.environ["OPENAI_BASE_URL"]
    if os.environ.get("PANEL_MODEL"):
        env["model"] = os.environ["PANEL_MODEL"]
    if os.environ.get("PANEL_MODE"):
        env["mode"] = os.environ["PANEL_MODE"]
    if os.environ.get("PANEL_DB"):
        env["db_path"] = Path(os.environ["PANEL_DB"])
    return Settings().with_overrides(**env).with_overrides(**flags)
