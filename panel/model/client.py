"""The OpenAI client: the SDK owns transport and HTTP-status retries; our hooks see every request it sends."""

from __future__ import annotations

import contextlib
import functools
import ssl
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass

import httpx2
import openai

from panel.config import Settings
from panel.errors import EndpointError
from panel.model.endpoint import Endpoint, api_key


@dataclass
class RequestCount:
    """HTTP requests one task sent while count_requests() was active (the SDK's retries included).

    `last_status` is the HTTP status of the last response received.
    """

    sent: int = 0
    last_status: int | None = None


_COUNTING: ContextVar[RequestCount | None] = ContextVar("panel_request_count", default=None)


@contextlib.contextmanager
def count_requests() -> Iterator[RequestCount]:
    """Count the requests this task sends through a make_client() client while the block runs (and their statuses)."""
    count = RequestCount()
    token = _COUNTING.set(count)
    try:
        yield count
    finally:
        _COUNTING.reset(token)


@functools.cache
def tls_context() -> ssl.SSLContext:
    """httpx2's default verifying context, built once per process."""
    # Loading the CA bundle takes 20-40 ms, and a review opens a client for the panel and another for the chair
    # (compare: one per side).
    return httpx2.create_ssl_context()


def make_client(
    endpoint: Endpoint,
    settings: Settings,
    http_client: httpx2.AsyncClient | None = None,
    before_request: Callable[[], None] | None = None,
) -> openai.AsyncOpenAI:
    """An async OpenAI client: the SDK owns transport and HTTP-status retries (max_retries).

    Every request it sends (retries too) first calls `before_request`, which may refuse it by raising
    an openai.OpenAIError (the SDK passes those through without retrying), and is then counted.
    """

    async def on_request(request: httpx2.Request) -> None:
        if before_request is not None:
            before_request()
        count = _COUNTING.get()
        if count is not None:
            count.sent += 1

    async def on_response(response: httpx2.Response) -> None:
        count = _COUNTING.get()
        if count is not None:
            count.last_status = response.status_code

    if http_client is None:
        # The SDK's own defaults (timeouts, connection limits, redirects), plus our hooks. Not its aiohttp
        # transport: 1% faster here, but it reports a refused connection as a timeout.
        http_client = openai.DefaultAsyncHttpxClient(
            verify=tls_context(), event_hooks={"request": [on_request], "response": [on_response]}
        )
    else:
        hooks = http_client.event_hooks
        http_client.event_hooks = {
            **hooks,
            "request": [*hooks.get("request", []), on_request],
            "response": [*hooks.get("response", []), on_response],
        }
    return openai.AsyncOpenAI(
        base_url=endpoint.base_url,
        api_key=api_key(settings),
        timeout=settings.timeout_s,
        max_retries=settings.max_retries,
        http_client=http_client,
    )


def make_batch_client(settings: Settings) -> openai.OpenAI:
    """A blocking OpenAI client for the Files and Batches API of the settings' endpoint (panel/batch/).

    The SDK retries what it may (max_retries); creating a batch turns that off itself, since a retried
    create could start the same requests twice.
    """
    if settings.base_url is None:
        raise EndpointError(
            "--batch needs an endpoint with the Batch API (OpenAI's, or a server that speaks it): give --base-url "
            "or --endpoint; for vLLM or another offline engine use `panel batch export`"
        )
    return openai.OpenAI(
        base_url=settings.base_url,
        api_key=api_key(settings),
        timeout=settings.timeout_s,
        max_retries=settings.max_retries,
        http_client=openai.DefaultHttpxClient(verify=tls_context()),
    )
