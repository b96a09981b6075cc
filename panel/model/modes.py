"""Structured-output modes, the one list of their names: per mode, how to ask for the schema (build_request),
where the answer text is in a reply (parse_reply), and what to send back when it did not validate (reask).

Adding an endpoint's quirk touches one row of MODE_TABLE (Instructor's mode -> functions table).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, get_args

from panel.errors import EndpointError
from panel.model.replies import ChatReply

StructuredMode = Literal["json_schema", "json_object_schema", "tools", "prompt"]
MODES: tuple[StructuredMode, ...] = get_args(StructuredMode)
TOOL_NAME = "submit_verdict"
# How much of an invalid answer is echoed back when re-asking.
REASK_ECHO_LIMIT = 2000


def _request_json_schema(schema: dict) -> dict[str, Any]:
    return {
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "verdict", "schema": schema, "strict": False},
        }
    }


def _request_json_object_schema(schema: dict) -> dict[str, Any]:
    return {"response_format": {"type": "json_object", "schema": schema}}


def _request_tools(schema: dict) -> dict[str, Any]:
    return {
        "tools": [
            {
                "type": "function",
                "function": {"name": TOOL_NAME, "description": "Submit your verdict.", "parameters": schema},
            }
        ],
        "tool_choice": {"type": "function", "function": {"name": TOOL_NAME}},
    }


def _request_prompt(schema: dict) -> dict[str, Any]:
    return {}


def _reply_content(reply: ChatReply) -> str | None:
    return reply.choices[0].message.content


def _reply_tool_arguments(reply: ChatReply) -> str | None:
    message = reply.choices[0].message
    if message.tool_calls:
        return message.tool_calls[0].function.arguments
    return message.content


def _reask_with_echo(text: str | None, feedback: str) -> list[dict[str, str]]:
    # The answer goes back as the assistant's turn (tool arguments too: the request forces the tool again), then
    # only our own validation message, never an API error.
    return [
        {"role": "assistant", "content": (text or "")[:REASK_ECHO_LIMIT]},
        {"role": "user", "content": feedback + " Reply again with only the corrected JSON object."},
    ]


@dataclass(frozen=True)
class Mode:
    """A structured-output strategy: request arguments from a schema, answer text from a reply, re-ask messages."""

    name: StructuredMode
    build_request: Callable[[dict], dict[str, Any]]
    parse_reply: Callable[[ChatReply], str | None]
    reask: Callable[[str | None, str], list[dict[str, str]]]


MODE_TABLE: dict[str, Mode] = {
    mode.name: mode
    for mode in (
        Mode("json_schema", _request_json_schema, _reply_content, _reask_with_echo),
        Mode("json_object_schema", _request_json_object_schema, _reply_content, _reask_with_echo),
        Mode("tools", _request_tools, _reply_tool_arguments, _reask_with_echo),
        Mode("prompt", _request_prompt, _reply_content, _reask_with_echo),
    )
}


def get_mode(name: str) -> Mode:
    """The Mode called `name`; raise EndpointError listing the valid ones."""
    if name not in MODE_TABLE:
        raise EndpointError(f"unknown structured-output mode '{name}' (use one of: {', '.join(MODES)})")
    return MODE_TABLE[name]
