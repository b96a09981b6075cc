"""The Verdict schema: what one persona says about one tool, and how an answer is validated."""

from __future__ import annotations

import json
import re
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

VerdictChoice = Literal["ship", "skip"]
# A reviewer's verdict, an editor's override of one and a reader's vote all take one of these.
VERDICTS: tuple[str, ...] = get_args(VerdictChoice)
# Below this a verdict's own confidence says it is more likely wrong than right: it contradicts the verdict
# (the page marks it, `panel check` counts it).
CONTRADICTING_CONFIDENCE = 0.5


class Verdict(BaseModel):
    """One reviewer's structured ship/skip verdict on one tool."""

    model_config = ConfigDict(extra="ignore")
    verdict: VerdictChoice
    confidence: float = Field(ge=0.0, le=1.0, description="0 to 1: how sure the reviewer is")
    headline: str = Field(min_length=3, max_length=160, description="one-line summary of the verdict")
    review: str = Field(min_length=40, max_length=3000, description="the quotable review paragraph")
    key_points: list[str] = Field(min_length=1, max_length=6, description="the reviewer's key points")


class InvalidAnswer(Exception):
    """An answer arrived but is not a valid Verdict; `feedback` is safe to send back to the model."""

    def __init__(self, feedback: str) -> None:
        super().__init__(feedback)
        self.feedback = feedback


def verdict_schema(answer_model: type[BaseModel] = Verdict) -> dict:
    """The JSON schema of `answer_model` sent to endpoints that support structured output.

    String length bounds stay in pydantic only: llama.cpp compiles them into a grammar that
    repeats a rule once per character, and a 3000-character bound crashes its server.
    """
    schema = answer_model.model_json_schema()
    schema.pop("title", None)
    for prop in schema["properties"].values():
        for key in ("title", "minLength", "maxLength"):
            prop.pop(key, None)
    schema["additionalProperties"] = False
    return schema


_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)


def parse_verdict(text: str | None, answer_model: type[BaseModel] = Verdict) -> BaseModel:
    """Parse a model's reply into `answer_model` (a Verdict by default) or raise InvalidAnswer."""
    if text is None or not text.strip():
        raise InvalidAnswer("The reply was empty. Reply with one JSON object.")
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1)
    try:
        data = json.loads(body)
    except json.JSONDecodeError as error:
        raise InvalidAnswer(f"The reply was not valid JSON ({error.msg} at character {error.pos}).") from None
    if not isinstance(data, dict):
        raise InvalidAnswer("The reply must be one JSON object, not a list or a bare value.")
    try:
        return answer_model.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'object'}: {e['msg']}" for e in error.errors()[:6]
        )
        raise InvalidAnswer(f"The JSON did not match the schema: {problems}.") from None
