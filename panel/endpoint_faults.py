"""What to fix when an endpoint cannot answer a run: one line each for a refused key, denied access, an unknown
model or URL, and a server that cannot be reached. ask.py stops the run at the first (RunBudget.fault)."""

from __future__ import annotations

import json
import os

import openai

from panel.answers import Answer
from panel.config import Settings


def refusal(error: openai.APIStatusError, settings: Settings) -> str | None:
    """The one line naming what to fix when `error` means no request of the run can succeed, else None."""
    model = "".join(c for c in settings.model_name[:80] if c.isprintable())
    if error.status_code == 401:
        unset = "" if os.environ.get(settings.api_key_env) else " (it is not set)"
        return f"the endpoint refused the API key (HTTP 401): set {settings.api_key_env}{unset} to a key it accepts"
    if error.status_code == 403:
        return (
            f"the endpoint denied access (HTTP 403): check that the key in {settings.api_key_env} may use model "
            f"'{model}', or pick another with --model"
        )
    if error.status_code == 404:
        # An unknown model (OpenAI: code model_not_found; vLLM, Ollama: a message naming the model) or a wrong URL.
        if error.code == "model_not_found" or "model" in json.dumps(error.body, default=str).lower():
            return f"the endpoint has no model '{model}' (HTTP 404): pass one it serves with --model"
        return (
            "the endpoint's URL has no chat-completions API (HTTP 404): check OPENAI_BASE_URL or --base-url "
            "(it usually ends in /v1)"
        )
    return None


def unreachable(answer: Answer, settings: Settings) -> str | None:
    """The fault of an answer whose every request failed to connect (refused, reset, unknown host), else None."""
    if (
        answer.verdict is not None
        or not answer.attempts
        or any(a.error_class != "APIConnectionError" for a in answer.attempts)
    ):  # a timeout is a slow server, not none
        return None
    tries = f"{answer.requests} request{'s' if answer.requests != 1 else ''}"
    if settings.embedded:
        return (
            f"cannot connect to the embedded model server ({tries} failed): "
            "see logs/embedded-server.log beside the database"
        )
    return (
        f"cannot connect to the endpoint ({tries} failed): check OPENAI_BASE_URL or --base-url, "
        "and that its server is running"
    )
