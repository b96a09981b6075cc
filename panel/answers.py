"""Plain data a run passes along: the verdicts it needs (jobs), what came back (answers) and each request
(attempts). No SDK import: the store, the tally, the pages and the cost read these without paying for openai."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from panel.cards import ToolCard
from panel.personas import Persona
from panel.vendor_text import strip_hidden
from panel.verdict import Verdict


@dataclass(frozen=True)
class VerdictJob:
    """One verdict a run needs: persona x tool (with its rival), its messages and its cache key."""

    cache_key: str
    pair_index: int
    persona: Persona
    tool: ToolCard
    rival: ToolCard
    messages: list[dict[str, str]]
    template_hash: str
    # What a valid answer is: a Verdict for personas; other panel calls (the chair) bring their own.
    answer_model: type[BaseModel] = Verdict


@dataclass
class Attempt:
    """One request to the model and what came of it; every attempt is stored, so retry cost shows."""

    number: int
    status: str  # ok | invalid | bad_response | api_error | over_budget
    started_at: datetime
    latency_s: float = 0.0
    http_status: int | None = None
    error_class: str | None = None
    error_message: str | None = None
    raw_text: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0  # HTTP requests this attempt sent: 1 plus the SDK's retries
    tokens: list[tuple[str, float]] | None = None  # (token, log-probability) of the reply, when the endpoint sent them

    @property
    def sdk_retries(self) -> int:
        """Requests the SDK repeated within this attempt (transport errors, 408/409/429/5xx)."""
        return max(self.requests - 1, 0)


@dataclass
class Answer:
    """The outcome of asking for one verdict: a valid Verdict or None, with every attempt."""

    job: VerdictJob
    verdict: Verdict | Any | None
    raw_text: str | None
    attempts: list[Attempt] = field(default_factory=list)
    # Why no request of the run can succeed (bad key, unknown model, nothing listening): the run stops.
    fault: str | None = None
    # The probability the model gave the token that begins its verdict (panel/model/logprobs.py); None: not returned.
    verdict_probability: float | None = None

    @property
    def prompt_tokens(self) -> int:
        """Prompt tokens over all attempts."""
        return sum(a.prompt_tokens for a in self.attempts)

    @property
    def completion_tokens(self) -> int:
        """Completion tokens over all attempts."""
        return sum(a.completion_tokens for a in self.attempts)

    @property
    def latency_s(self) -> float:
        """Seconds spent in requests over all attempts."""
        return sum(a.latency_s for a in self.attempts)

    @property
    def requests(self) -> int:
        """HTTP requests made, counting the SDK's own retries."""
        return sum(a.requests for a in self.attempts)

    @property
    def failure(self) -> str | None:
        """Why there is no verdict, from the last attempt ("APIConnectionError: Connection error."); None if valid."""
        if self.verdict is not None or not self.attempts:
            return None
        last = self.attempts[-1]
        reason = (last.error_message or "").strip().splitlines()
        if not reason:
            return last.error_class or last.status
        # The message may be a server's text: no terminal escapes or invisible characters.
        return f"{last.error_class or last.status}: " + strip_hidden(reason[0])[:120]
