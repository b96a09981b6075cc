"""Token log-probabilities: asking for them where the endpoint allows it, and the probability of the verdict token.

OpenAI and llama.cpp's servers return, with `logprobs: true`, each generated token of the message content with
its log-probability (`choices[0].logprobs.content`: [{token, logprob, top_logprobs}, ...]). The verdict's value
("ship" or "skip" inside the answer's JSON) is found in the joined tokens, and the probability of the token that
begins it is a second confidence beside the one the model states. Tool-call arguments carry no log-probabilities,
so `tools` mode never has one. Requesting them changes no answer: they are not part of the cache key.
"""

from __future__ import annotations

import json
import math
import re
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from panel.model.replies import reply_json

if TYPE_CHECKING:  # the SDK loads in 0.3 s; analysts' commands read this module without it
    import openai

TOP_LOGPROBS = 2  # the alternatives an endpoint must return too; some refuse logprobs without top_logprobs
# A probe's length: '{"verdict": "ship' is 5 to 7 tokens for SmolLM2's tokenizer and a JSON grammar's spacing.
LOGPROB_PROBE_TOKENS = 12


class _TokenLogprob(BaseModel):
    token: str
    logprob: float


class _Logprobs(BaseModel):
    content: list[_TokenLogprob] | None = None


class _Choice(BaseModel):
    logprobs: _Logprobs | None = None


class _Reply(BaseModel):
    choices: list[_Choice]


def logprob_args(wanted: bool) -> dict[str, Any]:
    """The request fields asking for token log-probabilities, or none."""
    return {"logprobs": True, "top_logprobs": TOP_LOGPROBS} if wanted else {}


async def probe_logprobs(client: openai.AsyncOpenAI, body: dict[str, Any]) -> object:
    """The decoded reply to `body` cut at LOGPROB_PROBE_TOKENS tokens, with log-probabilities.

    For Settings.probes_logprobs: the answer itself is then asked without them. The SDK's errors propagate.
    """
    probe = body | logprob_args(True) | {"max_tokens": LOGPROB_PROBE_TOKENS}
    return reply_json(await client.post("/chat/completions", cast_to=object, body=probe))


def reply_tokens(body: object) -> list[tuple[str, float]] | None:
    """(token text, log-probability) of each content token a decoded reply reports; None when it reports none."""
    try:
        reply = _Reply.model_validate(body)
    except ValidationError:
        return None
    logprobs = reply.choices[0].logprobs if reply.choices else None
    if logprobs is None or not logprobs.content:
        return None
    return [(t.token, t.logprob) for t in logprobs.content]


def choice_probability(tokens: list[tuple[str, float]] | None, field: str, choice: str) -> float | None:
    """The probability of the token that begins `choice` as the value of `field` in the answer the tokens spell.

    None when there are no tokens, the tokens do not spell that value, or a log-probability is not a number.
    """
    if not tokens:
        return None
    text = "".join(token for token, _ in tokens)
    match = re.search(rf'"{re.escape(field)}"\s*:\s*"', text)
    if match is None or not text.startswith(json.dumps(choice)[1:-1], match.end()):
        return None
    start, position = match.end(), 0
    for token, logprob in tokens:
        position += len(token)
        if position > start:  # this token holds the value's first character
            probability = math.exp(logprob) if math.isfinite(logprob) else None
            return None if probability is None or probability > 1 else probability
    return None
