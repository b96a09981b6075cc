"""Which model to ask when an endpoint is configured without one: the one its GET /v1/models lists.

No silent default name (a `gpt-4o-mini` sent to Ollama or vLLM fails on every request): exactly one served
model is used and said so; none or several is one line listing them and naming --model / `model =`.
"""

from __future__ import annotations

from dataclasses import replace

import openai

from panel.config import Settings
from panel.config_file import EMBEDDED_PROFILE
from panel.errors import EndpointError
from panel.model.client import tls_context
from panel.model.endpoint import api_key

SHOWN_MODELS = 10


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
    origins = {**settings.origins, "model": f"endpoint {where} (the only model listed)"}
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
