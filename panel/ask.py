"""One verdict: request, parse, re-ask. And the plan of a run: which verdicts it needs, by cache key."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any
from datetime import datetime, timezone

import openai
from openai.types.chat import ChatCompletion
from pydantic import BaseModel
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt

from panel.cards import RunSpec, ToolCard, content_hash
from panel.config import Settings
from panel.endpoints import Mode
from panel.personas import Persona, PromptTemplates, build_messages
from panel.verdict import InvalidAnswer, Verdict, parse_verdict, verdict_schema

REASK_ECHO_LIMIT = 2000


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
    status: str  # ok | invalid | bad_response | api_error
    started_at: datetime
    latency_s: float = 0.0
    http_status: int | None = None
    error_class: str | None = None
    error_message: str | None = None
    raw_text: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    sdk_retries: int = 0


@dataclass
class Answer:
    """The outcome of asking for one verdict: a valid Verdict or None, with every attempt."""

    job: VerdictJob
    verdict: Verdict | Any | None
    raw_text: str | None
    attempts: list[Attempt] = field(default_factory=list)

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
        return sum(1 + a.sdk_retries for a in self.attempts)


class MalformedResponse(Exception):
    """A 200 response that is not a chat completion (an HTML page, an empty body): retried as is."""


class RequestFailed(Exception):
    """The SDK gave up (HTTP status or transport error after its own retries): not re-asked."""


def cache_key(messages: list[dict[str, str]], settings: Settings, mode: str,
              answer_model: type[BaseModel] = Verdict) -> str:
    """Content hash of everything that decides an answer: messages, model, sampling, schema, mode."""
    return content_hash({"messages": messages, "model": settings.model_name, "sampling": settings.sampling(),
                         "schema": verdict_schema(answer_model), "mode": mode})


def plan_run(spec: RunSpec, personas: list[Persona], templates: PromptTemplates,
             settings: Settings) -> list[VerdictJob]:
    """Render every prompt of a run up front, so a template or card error costs no tokens."""
    schema = verdict_schema()
    jobs: list[VerdictJob] = []
    for index, pair in enumerate(spec.pairs):
        for tool, rival in ((pair.left, pair.right), (pair.right, pair.left)):
            for persona in personas:
                messages = build_messages(persona, templates, tool, rival, schema)
                jobs.append(VerdictJob(cache_key(messages, settings, settings.structured_mode), index,
                                       persona, tool, rival, messages, templates.content_hash))
    return jobs


async def ask_verdict(client: openai.AsyncOpenAI, job: VerdictJob, settings: Settings,
                      mode: Mode) -> Answer:
    """Ask for one verdict; re-ask (bounded) when the answer does not parse or validate."""
    answer = Answer(job, None, None)
    messages = list(job.messages)
    request_args = mode.request(verdict_schema(job.answer_model))
    try:
        async for retry in AsyncRetrying(
                stop=stop_after_attempt(settings.reasks + 1), reraise=True,
                retry=retry_if_exception_type((InvalidAnswer, MalformedResponse))):
            with retry:
                text = await _attempt(client, messages, settings, mode, request_args, answer)
                try:
                    answer.verdict = parse_verdict(text, job.answer_model)
                except InvalidAnswer as invalid:
                    answer.attempts[-1].status = "invalid"
                    answer.attempts[-1].error_class = "InvalidAnswer"
                    answer.attempts[-1].error_message = invalid.feedback
                    # Only our own validation message goes back to the model, never an API error.
                    messages = messages + [
                        {"role": "assistant", "content": (text or "")[:REASK_ECHO_LIMIT]},
                        {"role": "user", "content": invalid.feedback
                            + " Reply again with only the corrected JSON object."}]
                    raise
                answer.raw_text = text
    except (InvalidAnswer, MalformedResponse, RequestFailed):
        pass
    return answer


async def _attempt(client: openai.AsyncOpenAI, messages: list[dict[str, str]], settings: Settings,
                   mode: Mode, request_args: dict, answer: Answer) -> str | None:
    attempt = Attempt(number=len(answer.attempts) + 1, status="ok", started_at=datetime.now(timezone.utc))
    answer.attempts.append(attempt)
    start = time.monotonic()
    try:
        raw = await client.chat.completions.with_raw_response.create(
            model=settings.model_name, messages=messages, **settings.sampling(), **request_args)
        attempt.sdk_retries = raw.retries_taken
        attempt.http_status = raw.http_response.status_code
        completion = raw.parse()
    except openai.APIStatusError as error:
        _fail(attempt, "api_error", error, start, settings.max_retries)
        attempt.http_status = error.status_code
        raise RequestFailed() from None
    except openai.APIError as error:
        _fail(attempt, "api_error", error, start, settings.max_retries)
        raise RequestFailed() from None
    except ValueError as error:  # JSON decoding of a 200 body that is not JSON
        _fail(attempt, "bad_response", error, start, 0)
        raise MalformedResponse() from None
    attempt.latency_s = time.monotonic() - start
    if not isinstance(completion, ChatCompletion) or not completion.choices:
        attempt.status, attempt.error_class = "bad_response", "MalformedResponse"
        attempt.error_message = "status 200 but the body is not a chat completion"
        raise MalformedResponse()
    if completion.usage:
        attempt.prompt_tokens = completion.usage.prompt_tokens or 0
        attempt.completion_tokens = completion.usage.completion_tokens or 0
    text = mode.reply_text(completion)
    attempt.raw_text = text
    return text


def _fail(attempt: Attempt, status: str, error: Exception, start: float, retries: int) -> None:
    attempt.status = status
    attempt.error_class = type(error).__name__
    attempt.error_message = str(error)[:500]
    attempt.latency_s = time.monotonic() - start
    attempt.sdk_retries = retries if isinstance(error, (openai.APIConnectionError, openai.InternalServerError,
                                                        openai.RateLimitError)) else 0
