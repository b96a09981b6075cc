"""What an endpoint's GET /v1/models tells: the model to ask, and whether a run's first wave may go out at once.

Which model: when an endpoint is configured without one, the one its /v1/models lists. No silent default name
(a `gpt-4o-mini` sent to Ollama or vLLM fails on every request): exactly one served model is used and said so;
none or several is one line listing them and naming --model / `model =`.

The preflight: a run asks its first verdict alone, so a refused key or an unknown model costs one request, not
one per worker (panel.ask.ask_all). The same listing, free of tokens and sent while the run is planned, proves
that in advance: when it lists the model to the run's key and refuses the same request without a key (so the
endpoint checks keys there), the first wave goes out whole. Anything else (no model list, a list anyone may
read, a refused key, the model not listed, no answer yet) leaves the first verdict alone: a preflight can only
open a run wider, never stop it.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from dataclasses import replace

import httpx2
import openai

from panel.config import Settings
from panel.config_file import EMBEDDED_PROFILE
from panel.errors import EndpointError
from panel.model.client import tls_context
from panel.model.endpoint import api_key

SHOWN_MODELS = 10
LISTED = "(the only model listed)"  # the end of the model's origin when the endpoint's listing chose it


def served_models(settings: Settings) -> list[str]:
    """The model ids the configured endpoint's GET /v1/models lists (one request, the SDK's retries aside).

    Raises EndpointError (one line) when the endpoint cannot be reached or refuses the request.
    """
    http_client = openai.DefaultHttpxClient(verify=tls_context())
    client = openai.OpenAI(
        base_url=settings.base_url,
        api_key=api_key(settings),
        timeout=settings.timeout_s,
        max_retries=settings.max_retries,
        http_client=http_client,
    )
    where = f"{(settings.base_url or '').rstrip('/')}/models"
    try:
        with client:
            return [model.id for model in client.models.list()]
    except openai.APIStatusError as error:
        hint = {
            401: f" (is {settings.api_key_env} set to a key it accepts?)",
            403: f" (may the key in {settings.api_key_env} list models?)",
            404: " (check OPENAI_BASE_URL or --base-url: it usually ends in /v1)",
        }.get(error.status_code, "")
        raise EndpointError(
            f"no model given, and {where} answered HTTP {error.status_code}{hint}: {choose_hint(settings)}"
        ) from None
    except openai.APIConnectionError:  # refused, unreachable, timed out
        raise EndpointError(
            f"no model given, and cannot connect to {where} to list the endpoint's models: check "
            f"OPENAI_BASE_URL or --base-url and that its server is running, or "
            f"{choose_hint(settings)}"
        ) from None
    except openai.APIError as error:  # a 200 whose body is not a model list
        raise EndpointError(
            f"no model given, and {where} did not answer with a model list "
            f"({error.__class__.__name__}): {choose_hint(settings)}"
        ) from None


def asks_served_model(settings: Settings) -> bool:
    """True when a model must be looked up on the endpoint (a request): an endpoint with no model configured."""
    return not (settings.embedded or settings.model)


def with_served_model(settings: Settings) -> tuple[Settings, str | None]:
    """`settings` with a model to ask, and the one line to tell the user when it was found on the endpoint.

    The embedded model and an endpoint with a model configured are returned as they are (no request).
    Raises EndpointError listing the served models when there is not exactly one.
    """
    if not asks_served_model(settings):
        return settings, None
    names = served_models(settings)
    where = f"{(settings.base_url or '').rstrip('/')}/models"
    if len(names) != 1:
        listed = ", ".join(names[:SHOWN_MODELS]) + (
            f" and {len(names) - SHOWN_MODELS} more" if len(names) > SHOWN_MODELS else ""
        )
        found = f"lists {len(names)} models ({listed})" if names else "lists no model"
        raise EndpointError(f"no model given, and {where} {found}: {choose_hint(settings)}")
    model = names[0]
    origins = {**settings.origins, "model": f"endpoint {where} {LISTED}"}
    note = f"model: {model}, the only one {where} lists (--model, or model = in panel.toml, picks another)"
    return replace(settings, model=model, origins=origins), note


def choose_hint(settings: Settings) -> str:
    """How to name the model: the flag, and where in panel.toml (a profile; --base-url alone has none)."""
    if settings.endpoint_name == EMBEDDED_PROFILE:  # the URL came from --base-url or OPENAI_BASE_URL
        return (
            'give --model NAME (or $PANEL_MODEL), or make the endpoint a profile with model = "NAME" '
            "in panel.toml ([endpoints.NAME], picked with endpoint = or --endpoint)"
        )
    return f'give --model NAME, or model = "NAME" in [endpoints.{settings.endpoint_name}] of panel.toml'


def start_preflight(settings: Settings) -> Future[bool] | None:
    """Start the preflight in the background; its Future says True once the endpoint is shown to take the run.

    True: GET /models with the run's key lists its model (or with_served_model's lookup did, so that request
    is not repeated) and the same request without a key is refused (401/403). False otherwise, never an
    exception. None for the embedded model or a concurrency of 1, where no wave waits on the first verdict.
    """
    if settings.embedded or settings.effective_concurrency <= 1:
        return None
    cleared: Future[bool] = Future()
    cleared.set_running_or_notify_cancel()  # so no waiter can cancel it: the chair may wait on it too

    def check() -> None:
        try:
            cleared.set_result(asyncio.run(_takes_the_run(settings)))
        except Exception:  # noqa: BLE001 - whatever went wrong, the run only loses the head start
            cleared.set_result(False)

    threading.Thread(target=check, name="panel-preflight", daemon=True).start()
    return cleared


async def _takes_the_run(settings: Settings) -> bool:
    """The preflight's two requests, sent together: the listing with the key, and without one."""
    model, url = settings.model_name, f"{(settings.base_url or '').rstrip('/')}/models"
    timeout = min(settings.timeout_s, 30.0)
    async with httpx2.AsyncClient(verify=tls_context(), timeout=timeout) as anonymous:
        if settings.origin("model").endswith(LISTED):
            return (await anonymous.get(url)).status_code in (401, 403)
        # The SDK sends the key as chat requests carry it (with any organisation or project header); no retries.
        listing = openai.AsyncOpenAI(
            base_url=settings.base_url,
            api_key=api_key(settings),
            timeout=timeout,
            max_retries=0,
            http_client=openai.DefaultAsyncHttpxClient(verify=tls_context()),
        )
        async with listing:
            refused, listed = await asyncio.gather(anonymous.get(url), listing.models.list(), return_exceptions=True)
    if isinstance(refused, BaseException) or isinstance(listed, BaseException):
        return False
    return refused.status_code in (401, 403) and any(entry.id == model for entry in listed.data)
