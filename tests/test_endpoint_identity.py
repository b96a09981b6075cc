"""The endpoint is part of every cache key: another server's answers are never passed off as this one's."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from panel.config import Settings
from panel.errors import EndpointError
from panel.model.endpoint import Endpoint, normalise_base_url
from panel.model.identity import gguf_sha256, hash_cache_path
from panel.review import prepare_run, review
from panel.store import Store
from tests.fake_openai import FakeOpenAI, chair_responder, reference_responder
from tests.helpers import EXAMPLE_RUN, chat_requests, make_draft, review_against


def test_same_model_name_on_another_server_is_asked_again_chair_included(settings: Settings) -> None:
    with (
        FakeOpenAI(responder=chair_responder(reference_responder({}))) as first,
        FakeOpenAI(responder=chair_responder(reference_responder({}))) as second,
    ):
        before = make_draft(first, settings, EXAMPLE_RUN)
        after = make_draft(second, settings, EXAMPLE_RUN)
        assert len(chat_requests(first)) == len(chat_requests(second)) == 8 + 1
    assert (before.review.asked, after.review.cached, after.review.asked) == (8, 0, 8)
    assert (after.chair.cached, len(after.chair.answers)) == (0, 1)
    assert after.review.run_id != before.review.run_id


def test_the_same_base_url_written_another_way_is_cached(settings: Settings) -> None:
    with FakeOpenAI() as server:
        _, first = review_against(server, settings)
        port = server.base_url.split(":")[-1].split("/")[0]
        for spelling in (server.base_url + "/", f"HTTP://127.0.0.1:{port}/v1/"):
            respelled = settings.with_overrides(base_url=spelling, model="fake-model")
            outcome = review(
                prepare_run(EXAMPLE_RUN, respelled),
                respelled,
                Store(respelled.db_path),
                endpoint=Endpoint(spelling, embedded=False),
            )
            assert (outcome.cached, outcome.asked, outcome.run_id) == (8, 0, first.run_id), spelling
        assert len(chat_requests(server)) == 8


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("http://127.0.0.1:8080/v1", "http://127.0.0.1:8080/v1/"),
        ("https://API.OpenAI.com/v1", "https://api.openai.com:443/v1"),
        ("http://host/v1", "http://host:80"),
        ("http://host:8000/", "http://host:8000/v1"),
        ("https://user:secret@host/v1", "https://host/v1"),
        ("http://[::1]:8000/v1", "http://[::1]:8000"),
    ],
)
def test_spellings_of_one_endpoint_normalise_alike(one: str, other: str) -> None:
    assert normalise_base_url(one) == normalise_base_url(other)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("http://127.0.0.1:8080/v1", "http://127.0.0.1:8081/v1"),
        ("http://host/v1", "https://host/v1"),
        ("https://host:8443/v1", "https://host/v1"),
        ("https://gateway/openai/v1", "https://gateway/anthropic/v1"),
        ("https://api.a.com/v1", "https://api.b.com/v1"),
    ],
)
def test_different_endpoints_stay_different(one: str, other: str) -> None:
    assert normalise_base_url(one) != normalise_base_url(other)


def test_the_normalised_url_never_keeps_credentials() -> None:
    assert "secret" not in normalise_base_url("https://user:secret@host/v1")


def test_a_base_url_with_a_broken_port_is_a_one_line_error() -> None:
    with pytest.raises(EndpointError, match="OPENAI_BASE_URL or --base-url"):
        normalise_base_url("http://host:80a/v1")


def test_model_file_hash_is_kept_by_path_size_and_mtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    model = tmp_path / "model.gguf"
    model.write_bytes(b"weights-1" * 1000)
    stat = model.stat()
    expected = hashlib.sha256(model.read_bytes()).hexdigest()
    assert gguf_sha256(model, stat.st_size, stat.st_mtime_ns) == expected
    kept = json.loads(hash_cache_path().read_text(encoding="utf-8"))
    assert kept[str(model.resolve())]["sha256"] == expected
    # Same size and mtime in a new process: the kept hash is used, the file is not read again.
    gguf_sha256.cache_clear()
    model.write_bytes(b"weights-2" * 1000)
    os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert gguf_sha256(model, stat.st_size, stat.st_mtime_ns) == expected
    # A new mtime: hashed again.
    gguf_sha256.cache_clear()
    os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    changed = model.stat()
    assert gguf_sha256(model, changed.st_size, changed.st_mtime_ns) == hashlib.sha256(b"weights-2" * 1000).hexdigest()


def test_cache_keys_differ_by_endpoint_and_not_by_spelling(settings: Settings) -> None:
    def keys(base_url: str | None) -> list[str]:
        return [
            job.cache_key
            for job in prepare_run(EXAMPLE_RUN, settings.with_overrides(base_url=base_url, model="same-model")).jobs
        ]

    assert keys("http://127.0.0.1:9/v1") == keys("http://127.0.0.1:9/v1/")
    assert set(keys("http://127.0.0.1:9/v1")).isdisjoint(keys("http://127.0.0.1:10/v1"))
    assert set(keys("http://127.0.0.1:9/v1")).isdisjoint(keys(None))  # the embedded model is another endpoint
