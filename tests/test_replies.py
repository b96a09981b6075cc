"""What panel makes of a reply: a completion however it is labelled, billed tokens, tool calls, server text."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import httpx2

from panel.ask import Answer, RunBudget, ask_verdict
from panel.config import Settings
from panel.model.client import make_client
from panel.model.endpoint import Endpoint
from panel.model.modes import get_mode
from panel.review import prepare_run
from tests.helpers import EXAMPLE_RUN

VERDICT = json.dumps(
    {
        "verdict": "ship",
        "confidence": 0.8,
        "headline": "A clear primitive",
        "review": "It does one job well and the API is small enough to learn in an afternoon.",
        "key_points": ["small API", "free tier"],
    }
)
USAGE = {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150}


def completion(content: str | None = VERDICT, **message: object) -> dict:
    return {
        "id": "c1",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "usage": USAGE,
        "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content, **message}}
        ],
    }


def ask_once(
    settings: Settings, respond: Callable[[httpx2.Request], httpx2.Response], mode: str = "json_schema"
) -> tuple[Answer, RunBudget]:
    """Ask the builder's first verdict of the example run from an endpoint answering with `respond`."""
    settings = settings.with_overrides(base_url="http://endpoint.test/v1", model="m", reasks=1, mode=mode)
    job = prepare_run(EXAMPLE_RUN, settings, ["builder"]).jobs[0]
    budget = RunBudget()

    async def ask() -> Answer:
        http_client = httpx2.AsyncClient(transport=httpx2.MockTransport(respond))
        async with make_client(Endpoint(settings.base_url, embedded=False), settings, http_client) as client:
            return await ask_verdict(client, job, settings, get_mode(settings.structured_mode), budget)

    return asyncio.run(ask()), budget


def test_a_completion_not_labelled_json_is_still_a_verdict(settings: Settings) -> None:
    # Some proxies send a valid completion as text/plain, or with no Content-Type at all.
    for headers in ({"Content-Type": "text/plain"}, {}):
        answer, budget = ask_once(
            settings,
            lambda request, headers=headers: httpx2.Response(
                200, content=json.dumps(completion()).encode(), headers=headers
            ),
        )
        assert answer.verdict is not None and answer.verdict.verdict == "ship", headers
        assert budget.tokens == 150


def test_tokens_of_a_reply_that_is_not_a_completion_still_count(settings: Settings) -> None:
    answer, budget = ask_once(settings, lambda request: httpx2.Response(200, json={"usage": USAGE, "choices": []}))
    assert answer.verdict is None
    assert [(a.status, a.prompt_tokens, a.completion_tokens) for a in answer.attempts] == [
        ("bad_response", 100, 50)
    ] * 2
    assert budget.tokens == 300  # --max-tokens sees what the provider billed


def test_tool_call_without_arguments_is_re_asked_with_feedback(settings: Settings) -> None:
    call = {"id": "t1", "type": "function", "function": {"name": "submit_verdict", "arguments": None}}
    answer, _ = ask_once(
        settings, lambda request: httpx2.Response(200, json=completion(None, tool_calls=[call])), mode="tools"
    )
    assert [(a.status, a.error_class) for a in answer.attempts] == [("invalid", "InvalidAnswer")] * 2
    assert answer.failure == "InvalidAnswer: The reply was empty. Reply with one JSON object."


def test_a_servers_error_text_reaches_the_terminal_without_control_characters(settings: Settings) -> None:
    hostile = {"error": {"message": "bad request\x1b]0;pwned\x07\x1b[2J", "type": "invalid_request_error"}}
    answer, _ = ask_once(settings, lambda request: httpx2.Response(400, json=hostile))
    assert answer.failure is not None and answer.failure.startswith("BadRequestError: ")
    assert "bad request" in answer.failure and not any(ord(c) < 32 or ord(c) == 127 for c in answer.failure)
