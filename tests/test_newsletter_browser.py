"""A reader in headless Chromium signs up on a served page; the digest's HTML part as a mail client shows it."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from panel.config import Settings
from panel.mail.digest import build_digest, write_preview
from panel.store import Store
from panel.web.serve import VoteServer
from tests.browser import ARTIFACTS, chromium, visit
from tests.helpers import copy_db, publish_every_pair
from tests.smtp_sink import SmtpSink


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def test_the_sign_up_form_on_a_served_page_sends_a_confirmation(
    browser: Browser, reviewed_db: Path, tmp_path: Path
) -> None:
    sink = SmtpSink().start()
    mail = Settings(smtp_host="127.0.0.1", smtp_port=sink.port)
    try:
        with VoteServer(Store(copy_db(reviewed_db, tmp_path)), mail=mail) as server:
            [target] = server.store.vote_targets()
            context = browser.new_context(java_script_enabled=False)
            outside: list[str] = []
            context.on("request", lambda r: None if r.url.startswith(server.url) else outside.append(r.url))
            try:
                page = context.new_page()
                page.goto(f"{server.url}/runs/{target.run_id}/pairs/1")
                page.get_by_label("Email address").fill("browser@example.org")
                page.get_by_role("checkbox").check()
                page.get_by_role("button", name="Sign up").click()
                page.wait_for_load_state()
                assert page.get_by_role("heading", name="Check your inbox").is_visible()
                deadline = time.monotonic() + 10
                while not sink.to("browser@example.org"):
                    assert time.monotonic() < deadline, "no confirmation mail"
                    time.sleep(0.05)
                text = sink.to("browser@example.org")[0].part("plain")
                link = re.search(r"http://\S+/newsletter/confirm\?token=\S+", text)
                assert link and link.group(0).startswith(server.url)  # no --site-url: the server's own address
                page.goto(link.group(0))
                page.get_by_role("button", name="Confirm").click()
                page.wait_for_load_state()
                assert page.get_by_role("heading", name="Signed up").is_visible()
            finally:
                context.close()
        assert outside == []
        assert Store(server.store.path).confirmed_subscribers() == ["browser@example.org"]
    finally:
        sink.stop()


def test_the_digest_html_runs_nothing_loads_nothing_and_fits_a_phone(
    browser: Browser, reviewed_db: Path, tmp_path: Path
) -> None:
    store = Store(copy_db(reviewed_db, tmp_path))
    publish_every_pair(store, tmp_path / "published")
    now = datetime.now(timezone.utc)
    digest = build_digest(store, now - timedelta(days=7), now, "https://verdicts.example")
    _, html = write_preview(digest, ARTIFACTS, "panel@localhost", "https://verdicts.example")
    for width, name in ((390, "digest-390.png"), (1280, "digest-1280.png")):
        seen = visit(browser, html, width, name)
        assert seen.requests == [] and seen.scripts == 0 and seen.handlers == 0
        assert seen.scroll_width <= width
        assert "Read the comparison" in seen.text and "75% ship" in seen.text
