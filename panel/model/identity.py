"""What answers a run, for its cache key: the normalised base URL, or the embedded model's GGUF sha256."""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

from panel.config import EMBEDDED_MODEL_NAME, Settings
from panel.errors import EndpointError
from panel.model.embedded import embedded_model_path
from panel.model.endpoint import normalise_base_url


def endpoint_identity(settings: Settings) -> str:
    """What answers a run, for its cache key: the normalised base URL, or the embedded model's GGUF hash.

    The embedded server gets a new port each run, so its identity is its weights, not its URL.
    """
    if settings.embedded:
        return _embedded_identity()
    return "url:" + normalise_base_url(settings.base_url or "")


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
    if (
        isinstance(cached, dict)
        and (cached.get("size"), cached.get("mtime_ns")) == (size, mtime_ns)
        and isinstance(cached.get("sha256"), str)
    ):
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
