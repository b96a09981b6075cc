"""What a chat completion must hold to be an answer, and the tokens a reply reports even when it is not one."""

from __future__ import annotations

import json

from pydantic import BaseModel, Field, ValidationError


class _Function(BaseModel):
    arguments: str | None = None  # missing arguments are an empty answer, re-asked with feedback


class _ToolCall(BaseModel):
    function: _Function


class _Message(BaseModel):
    content: str | None = None
    tool_calls: list[_ToolCall] | None = None


class _Choice(BaseModel):
    message: _Message


class _Usage(BaseModel):
    # A count no endpoint reports (negative, or past the store's INTEGER) is no count: it would fail the write.
    prompt_tokens: int | None = Field(default=None, ge=0, le=2**31 - 1)
    completion_tokens: int | None = Field(default=None, ge=0, le=2**31 - 1)


class ChatReply(BaseModel):
    """The choices of a chat completion, validated: a 200 without them is a failed attempt.

    The SDK's own ChatCompletion is built without validation, so a reply whose choice has no message
    only failed later, on attribute access, outside any retry.
    """

    choices: list[_Choice] = Field(min_length=1)


def reply_json(body: object) -> object:
    """A reply's decoded JSON. The SDK hands back the text of a body not labelled JSON (text/plain, or no
    Content-Type, from some proxies); it is decoded here if it is JSON, and returned as it is otherwise."""
    if isinstance(body, str):
        try:
            return json.loads(body)
        except ValueError:
            return body
    return body


def reply_usage(body: object) -> tuple[int, int]:
    """(prompt, completion) tokens a decoded reply reports, even one that is not a valid completion."""
    usage = body.get("usage") if isinstance(body, dict) else None
    try:
        counted = _Usage.model_validate(usage) if isinstance(usage, dict) else _Usage()
    except ValidationError:
        counted = _Usage()
    return counted.prompt_tokens or 0, counted.completion_tokens or 0
