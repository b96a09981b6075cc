"""An editor in headless Chromium, without JavaScript, goes from the printed desk URL to a published page:
flips a verdict and sees the preview's panel ship % change, edits a quote, approves and publishes; the files
and the database hold what they did. Screenshots of the runs list and the pair at 1280 and 390 px."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from playwright.sync_api import Browser, Page

from panel.store import Store
from panel.web.desk import DeskServer
from tests.browser import ARTIFACTS, chromium
from tests.desk_clients import desk_settings
from tests.helpers import copy_db

QUOTE = "Two billion parameters read a receipt well and a chart badly: keep it for local OCR, not for analysis."
PUBLISHED = "smolvlm2-2b-vs-perplexity-sonar-pro-2-api"


@pytest.fixture
def desk(reviewed_db: Path, tmp_path: Path) -> Iterator[DeskServer]:
    with DeskServer(desk_settings(Store(copy_db(reviewed_db, tmp_path)), tmp_path, None)) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def panel_ship(page: Page, tool_name: str) -> str:
    """The Panel ship figure of a tool's card in the preview frame."""
    preview = page.frame_locator("iframe")
    card = preview.locator("article.tool", has=preview.get_by_role("heading", name=tool_name, exact=True))
    return card.locator(".figures li").first.locator("strong").inner_text()


def screenshot(page: Page, name: str) -> Path:
    """A full-page screenshot in test-artifacts/, once the preview (if any) has painted."""
    if page.locator("iframe").count():
        page.frame_locator("iframe").locator("h1").wait_for()
    page.wait_for_timeout(300)  # headless Chromium paints a fresh frame's content a moment after it loads
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def test_an_editor_flips_edits_approves_and_publishes_without_javascript(browser: Browser, desk: DeskServer) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, java_script_enabled=False)
    outside: list[str] = []
    errors: list[str] = []
    context.on("request", lambda request: None if request.url.startswith(desk.url) else outside.append(request.url))
    try:
        page = context.new_page()
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.goto(desk.tokened_url)
        assert page.url == desk.url + "/"  # the token is traded for the cookie and leaves the address bar
        page.get_by_label("Editor", exact=True).fill("Ada Lovelace")
        page.get_by_role("button", name="Save name").click()
        assert "Name saved" in page.inner_text("main")
        assert page.get_by_text("draft", exact=True).count() == 1
        screenshot(page, "desk-runs-1280.png")

        page.get_by_role("link", name="1. SmolVLM2-2B vs Perplexity Sonar Pro 2 API").click()
        assert panel_ship(page, "SmolVLM2-2B") == "75%"
        page.get_by_role("button", name="Flip The business analyst on SmolVLM2-2B to ship").click()
        assert "Saved" in page.inner_text("main")
        assert panel_ship(page, "SmolVLM2-2B") == "100%"
        assert panel_ship(page, "Perplexity Sonar Pro 2 API") == "75%"

        editor = page.get_by_role("form", name="Edit The skeptic on SmolVLM2-2B")
        page.get_by_text("Edit The skeptic on SmolVLM2-2B", exact=True).click()  # opens its <details>
        editor.get_by_label("Quote").fill(QUOTE)
        editor.get_by_label("Note (why; kept with the edit)").fill("the model's quote overstated it")
        editor.get_by_role("button", name="Save").click()
        assert QUOTE in page.frame_locator("iframe").locator("body").inner_text()
        assert page.locator("h1 .status").text_content() == "edited"
        screenshot(page, "desk-pair-1280.png")

        page.get_by_role("button", name="Approve").click()
        assert page.locator("h1 .status").text_content() == "approved"
        page.get_by_role("button", name="Publish").click()
        assert page.locator("h1 .status").text_content() == "published"
        assert "published by Ada Lovelace" in page.inner_text("main")
        assert page.locator("script").count() == 0

        narrow = context.new_page()
        narrow.set_viewport_size({"width": 390, "height": 844})
        narrow.goto(desk.url + "/")
        assert narrow.evaluate("document.documentElement.scrollWidth") <= 390
        screenshot(narrow, "desk-runs-390.png")
        narrow.get_by_role("link", name="1. SmolVLM2-2B vs Perplexity Sonar Pro 2 API").click()
        assert narrow.evaluate("document.documentElement.scrollWidth") <= 390
        screenshot(narrow, "desk-pair-390.png")
    finally:
        context.close()
    assert outside == [] and errors == []

    html = (desk.publish_dir / f"{PUBLISHED}.html").read_text(encoding="utf-8")
    markdown = (desk.publish_dir / f"{PUBLISHED}.md").read_text(encoding="utf-8")
    assert QUOTE in html and "<script" not in html and "Edited by Ada Lovelace" in html
    assert re.search(r"<strong>100%</strong><span>Panel ship</span>", html)
    assert "keep it for local OCR" in markdown
    with duckdb.connect(str(desk.store.path), read_only=True) as con:
        edits = con.execute("SELECT persona_id, verdict, review, editor, note FROM overrides ORDER BY override_id")
        assert edits.fetchall() == [
            ("business", "ship", None, "Ada Lovelace", None),
            ("skeptic", None, QUOTE, "Ada Lovelace", "the model's quote overstated it"),
        ]
        [(editor_name, html_path)] = con.execute("SELECT editor, html_path FROM publications").fetchall()
    assert editor_name == "Ada Lovelace" and Path(html_path) == (desk.publish_dir / f"{PUBLISHED}.html").resolve()
