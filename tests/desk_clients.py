"""An editor at `panel desk` (panel.web.desk.DeskServer on loopback) without a browser: the desk's settings
against the loopback fake, a signed-in client, the pair it edits, the CSRF token of a page, a job waited for,
and the "Add a pair" form's fields.

Not a test module: the tests are the test_desk*.py files.
"""

from __future__ import annotations

import json
import re
import ssl
import time
from pathlib import Path
from typing import Any

import httpx2

from panel.ask_again import NOTE_PREFIX
from panel.config import Settings
from panel.store import Store
from panel.web.desk import DeskServer
from tests.fake_openai import Responder, chair_responder, load_reference_labels, reference_responder
from tests.helpers import GOOD_CARD, reference_labels_path

# The loopback desk is plain HTTP: one shared TLS context saves building one per client.
TLS = ssl.create_default_context()
ASKED_AGAIN_HEADLINE = "Asked again: skip for now"


def desk_settings(store: Store, folder: Path, base_url: str | None, **changes: Any) -> Settings:
    """The desk's settings over `store`: publishing, runs and pages under `folder`, asking `base_url` as fake-model."""
    settings = Settings(
        db_path=store.path,
        publish_dir=folder / "publish",
        runs_dir=folder / "runs",
        out_dir=folder / "pages",
        base_url=base_url,
        model="fake-model",
        max_retries=1,
        timeout_s=10,
    )
    return settings.with_overrides(**changes) if changes else settings


def noted_responder() -> Responder:
    """The fake's answers: the reference labels (business: skip, others: ship) and the chair; a reviewer asked
    again with an editor's note skips and quotes the note."""
    reviewers = chair_responder(reference_responder(load_reference_labels(reference_labels_path())))

    def respond(body: dict[str, Any]) -> str:
        notes = [m["content"] for m in body["messages"] if m["role"] == "user" and m["content"].startswith(NOTE_PREFIX)]
        if not notes or "BEGIN PANEL VERDICTS" in json.dumps(body["messages"]):
            return reviewers(body)
        return json.dumps(
            {
                "verdict": "skip",
                "confidence": 0.9,
                "headline": ASKED_AGAIN_HEADLINE,
                "review": f"Asked again, this reviewer now skips it. The editor wrote: {notes[-1][len(NOTE_PREFIX) :]}",
                "key_points": ["asked again"],
            }
        )

    return respond


def signed_in(desk: DeskServer) -> httpx2.Client:
    """A client that opened the printed URL: its token traded for the session cookie (the 303 checked)."""
    client = httpx2.Client(base_url=desk.url, timeout=20, verify=TLS)
    traded = client.get(desk.tokened_url)
    assert traded.status_code == 303 and traded.headers["location"] == "/", traded.text
    return client


def first_pair_path(store: Store) -> str:
    """The desk's path of the latest run's first pair."""
    return f"/runs/{store.resolve_run_id(None)}/pairs/1"


def csrf_of(html: str) -> str:
    """The CSRF token a desk page's forms carry."""
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, "the page has no form"
    return found.group(1)


def job_page_when_done(
    client: httpx2.Client, job_path: str, timeout: float = 60, also: str | None = None
) -> tuple[str, list[str]]:
    """The job page once it stops reloading itself (the job ended), and each progress line it showed on the way;
    `also`, a desk page fetched (and checked to answer 200) between reloads, to read while the job writes."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page = client.get(job_path)
        assert page.status_code == 200, page.text
        line = re.search(r'<p class="progress" role="status">(.*?)</p>', page.text)
        if line and (not seen or seen[-1] != line.group(1)):
            seen.append(line.group(1))
        if 'http-equiv="refresh"' not in page.text:
            return page.text, seen
        if also is not None:
            read = client.get(also)
            assert read.status_code == 200, read.text
        else:
            time.sleep(0.05)
    raise AssertionError(f"{job_path} still running after {timeout} s: {seen}")


def pair_form(left: str = "Acme Vector", right: str = "Other Vector") -> dict[str, str]:
    """The "Add a pair" form filled in for two tools (GOOD_CARD's fields), as a browser sends it."""
    fields = {"title": ""}
    for side, name in (("left", left), ("right", right)):
        fields |= {f"{side}.{key}": value for key, value in GOOD_CARD.items() if isinstance(value, str)}
        fields |= {
            f"{side}.name": name,
            f"{side}.pricing.entry": "Freemium",
            f"{side}.pricing.details": "Free up to 1 GB.",
            f"{side}.links.homepage": "https://acme.example",
            f"{side}.links.docs": "",
            f"{side}.links.pricing": "",
        }
    return fields
