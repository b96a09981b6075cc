"""The loopback fake endpoint behaves like OpenAI to the real SDK, faults included."""

from __future__ import annotations

import json
import time

import openai
import pytest
from openai.types.chat import ChatCompletion

from panel.consistency import BLIND_NAMES
from tests.fake_openai import (
    BLINDED_NAMES,
    FAULT_429,
    FAULT_EMPTY200,
    FAULT_HANG,
    FAULT_HTML200,
    FakeOpenAI,
    load_reference_labels,
    random_faults,
    reference_responder,
)
from tests.helpers import reference_labels_path

LABELS_PATH = reference_labels_path()
MESSAGES = [
    {"role": "system", "content": "You review AI tools.\nPersona id: business"},
    {"role": "user", "content": "Review this.\nBEGIN TOOL UNDER REVIEW\nName: SmolVLM2-2B\nTagline: a small VLM"},
]


def client(fake: FakeOpenAI, **options: float) -> openai.OpenAI:
    """Return a real SDK client pointed at the fake."""
    return openai.OpenAI(base_url=fake.base_url, api_key="x", **{"max_retries": 0, **options})


def test_healthy_reply_parses_as_chat_completion_with_the_labelled_verdict() -> None:
    with FakeOpenAI(reference_responder(load_reference_labels(LABELS_PATH))) as fake:
        reply = client(fake).chat.completions.create(model="some-model", messages=MESSAGES)
    assert isinstance(reply, ChatCompletion)
    assert reply.model == "some-model" and reply.choices[0].finish_reason == "stop"
    verdict = json.loads(reply.choices[0].message.content or "")
    assert verdict["verdict"] == "skip" and "SmolVLM2-2B" in verdict["review"]
    assert reply.usage is not None and reply.usage.total_tokens > 0


def test_a_blinded_tool_gets_its_personas_verdict_when_the_labels_agree_on_every_tool() -> None:
    assert BLINDED_NAMES == BLIND_NAMES
    respond = reference_responder(load_reference_labels(LABELS_PATH))  # business: skip both; the others: ship both
    for persona, verdict in (("business", "skip"), ("skeptic", "ship")):
        body = {
            "messages": [
                {"role": "system", "content": f"Persona id: {persona}"},
                {"role": "user", "content": "BEGIN TOOL UNDER REVIEW\nName: Tool A\nTagline: hidden"},
            ]
        }
        assert json.loads(respond(body))["verdict"] == verdict
    split = reference_responder({("X", "business"): "skip", ("Y", "business"): "ship"})
    body = {
        "messages": [
            {"role": "system", "content": "Persona id: business"},
            {"role": "user", "content": "BEGIN TOOL UNDER REVIEW\nName: Tool B"},
        ]
    }
    assert json.loads(split(body))["verdict"] == "ship"


def test_rate_limit_then_success_is_retried_by_the_sdk() -> None:
    with FakeOpenAI(faults=[FAULT_429]) as fake:
        reply = client(fake, max_retries=2).chat.completions.create(model="m", messages=MESSAGES)
        assert [request.fault for request in fake.requests] == [FAULT_429, None]
    assert reply.choices[0].message.content


def test_html_200_comes_back_as_a_plain_string_not_an_exception() -> None:
    with FakeOpenAI(faults=[FAULT_HTML200]) as fake:
        reply = client(fake).chat.completions.create(model="m", messages=MESSAGES)
    assert reply == "<html><body>Gateway</body></html>"  # type: ignore[comparison-overlap]


def test_empty_200_raises_a_json_decode_error_not_an_openai_error() -> None:
    with FakeOpenAI(faults=[FAULT_EMPTY200]) as fake:
        with pytest.raises(json.JSONDecodeError):
            client(fake, max_retries=2).chat.completions.create(model="m", messages=MESSAGES)
        assert len(fake.requests) == 1  # a 200 is never retried, whatever its body


def test_tools_request_gets_a_tool_call_carrying_the_answer() -> None:
    tool = {"type": "function", "function": {"name": "record_verdict", "parameters": {"type": "object"}}}
    with FakeOpenAI() as fake:
        reply = client(fake).chat.completions.create(model="m", messages=MESSAGES, tools=[tool])  # type: ignore[list-item]
    message = reply.choices[0].message
    assert message.content is None and reply.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls and message.tool_calls[0].function.name == "record_verdict"  # type: ignore[union-attr]
    assert json.loads(message.tool_calls[0].function.arguments)["verdict"] == "ship"  # type: ignore[union-attr]


def test_hang_times_out_on_the_client_and_stop_is_fast() -> None:
    fake = FakeOpenAI(faults=[FAULT_HANG])
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        client(fake, timeout=0.5).chat.completions.create(model="m", messages=MESSAGES)
    assert time.monotonic() - started < 2
    started = time.monotonic()
    fake.stop()
    assert time.monotonic() - started < 2


def test_random_faults_depend_only_on_seed_and_index() -> None:
    plan = random_faults(0.5, seed=7)
    first = [plan(index, {}) for index in range(50)]
    assert first == [plan(index, {}) for index in reversed(range(50))][::-1]
    assert any(first) and not all(first)
