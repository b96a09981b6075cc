"""An editor in headless Chromium, without JavaScript, goes from the printed desk URL to a published page:
flips a verdict and sees the preview's panel ship % change, edits a quote, asks a reviewer again with a note
(against the loopback fake, the job page reloading itself), picks the new version, approves and publishes; the
files and the database hold what they did. Then adds a pair through the form and sees it land. Screenshots of
the runs list (with the add-pair form), the pair (with versions) and a job page at 1280 and 390 px."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from playwright.sync_api import Browser, Page, expect

from panel.store import Store
from panel.web.desk import DeskServer
from tests.browser import ARTIFACTS, chromium
from tests.desk_clients import desk_settings, noted_responder
from tests.fake_openai import FakeOpenAI
from tests.helpers import GOOD_CARD, chat_requests, copy_db

QUOTE = "Two billion parameters read a receipt well and a chart badly: keep it for local OCR, not for analysis."
PUBLISHED = "smolvlm2-2b-vs-perplexity-sonar-pro-2-api"
NOTE = "Weigh the price per request against the research depth."
SKEPTIC_RIGHT = "The skeptic on Perplexity Sonar Pro 2 API"


@pytest.fixture
def noted_fake() -> Iterator[FakeOpenAI]:
    """The fake endpoint: the reference labels, and a reviewer asked again with a note skips and quotes it."""
    with FakeOpenAI(responder=noted_responder(), latency=0.05) as server:
        yield server


@pytest.fixture
def desk(reviewed_db: Path, tmp_path: Path, noted_fake: FakeOpenAI) -> Iterator[DeskServer]:
    store = Store(copy_db(reviewed_db, tmp_path))
    with DeskServer(desk_settings(store, tmp_path, noted_fake.base_url)) as running:
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


def finished_job(page: Page) -> None:
    """Wait on a job page, which reloads itself without script, until it says the job finished."""
    expect(page.locator("h1 .state")).to_have_text("finished", timeout=60_000)


def test_an_editor_flips_edits_asks_again_approves_and_publishes_without_javascript(
    browser: Browser, desk: DeskServer, noted_fake: FakeOpenAI
) -> None:
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

        page.get_by_text(f"Ask {SKEPTIC_RIGHT} again", exact=True).click()  # opens its <details>
        asking = page.get_by_role("form", name=f"Ask {SKEPTIC_RIGHT} again")
        asking.get_by_label("Editor's note to the model (optional)").fill(NOTE)
        asking.get_by_role("button", name="Ask again").click()
        assert re.fullmatch(re.escape(desk.url) + r"/jobs/job-\d+", page.url)
        finished_job(page)
        assert "1 of 1" in page.inner_text("main")
        screenshot(page, "desk-job-1280.png")
        page.get_by_role("link", name="Back to the pair, to compare and pick a version").click()
        assert panel_ship(page, "Perplexity Sonar Pro 2 API") == "75%"  # the original until a version is picked
        page.get_by_role("button", name=f"Use version 1 of {SKEPTIC_RIGHT}").click()
        assert "Version picked" in page.inner_text("main")
        assert panel_ship(page, "Perplexity Sonar Pro 2 API") == "50%"
        assert f"The editor wrote: {NOTE}" in page.frame_locator("iframe").locator("body").inner_text()
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
        narrow.goto(desk.url + "/jobs/job-1")
        assert narrow.evaluate("document.documentElement.scrollWidth") <= 390
        screenshot(narrow, "desk-job-390.png")
    finally:
        context.close()
    assert outside == [] and errors == []
    asked = [r.body["messages"] for r in chat_requests(noted_fake)]
    assert len(asked) == 1 and asked[0][-1] == {"role": "user", "content": f"Editor's note: {NOTE}"}
    assert all(NOTE not in m["content"] for m in asked[0][:-1])  # its own message: not the system's, not the tool's

    html = (desk.publish_dir / f"{PUBLISHED}.html").read_text(encoding="utf-8")
    markdown = (desk.publish_dir / f"{PUBLISHED}.md").read_text(encoding="utf-8")
    assert QUOTE in html and "<script" not in html and "Edited by Ada Lovelace" in html
    assert re.search(r"<strong>100%</strong><span>Panel ship</span>", html)
    assert re.search(r"<strong>50%</strong><span>Panel ship</span>", html) and f"The editor wrote: {NOTE}" in html
    assert "keep it for local OCR" in markdown
    with duckdb.connect(str(desk.store.path), read_only=True) as con:
        edits = con.execute("SELECT persona_id, verdict, review, editor, note FROM overrides ORDER BY override_id")
        assert edits.fetchall() == [
            ("business", "ship", None, "Ada Lovelace", None),
            ("skeptic", None, QUOTE, "Ada Lovelace", "the model's quote overstated it"),
        ]
        [(editor_name, html_path)] = con.execute("SELECT editor, html_path FROM publications").fetchall()
        picks = con.execute("SELECT persona_id, number, editor FROM version_picks").fetchall()
        versions = con.execute("SELECT persona_id, number, note, editor FROM answer_versions").fetchall()
    assert picks == [("skeptic", 1, "Ada Lovelace")] and versions == [("skeptic", 1, NOTE, "Ada Lovelace")]
    assert editor_name == "Ada Lovelace" and Path(html_path) == (desk.publish_dir / f"{PUBLISHED}.html").resolve()


def test_an_editor_adds_a_pair_through_the_form_and_sees_it_land(browser: Browser, desk: DeskServer) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(desk.tokened_url)
        page.get_by_text("Add a pair", exact=True).click()  # opens its <details>
        form = page.get_by_role("form", name="Add a pair")
        for side, name in (("Left", "Acme <b>Vector</b>"), ("Right", "Other Vector")):
            tool = form.get_by_role("group", name=f"{side} tool")
            tool.get_by_label("Name").fill(name)
            tool.get_by_label("Category").fill(GOOD_CARD["category"])
            tool.get_by_label("Tagline").fill(GOOD_CARD["tagline"])
            tool.get_by_label("Description").fill(GOOD_CARD["description"])
            tool.get_by_label("Pricing entry").select_option("Freemium")
            tool.get_by_label("Pricing details").fill("Free up to 1 GB.")
            tool.get_by_label("Link: homepage (optional)").fill("https://acme.example")
        form.get_by_role("group", name="Right tool").get_by_label("Pricing entry").select_option("")
        screenshot(page, "desk-runs-add-pair-1280.png")
        form.get_by_role("button", name="Add the pair and review it").click()
        alert = page.get_by_role("alert")
        assert "tool 'Other Vector': field 'pricing.entry'" in alert.inner_text()
        form = page.get_by_role("form", name="Add a pair")  # the page came back with what was typed
        assert form.get_by_role("group", name="Left tool").get_by_label("Name").input_value() == "Acme <b>Vector</b>"
        form.get_by_role("group", name="Right tool").get_by_label("Pricing entry").select_option("Paid")
        form.get_by_role("button", name="Add the pair and review it").click()
        finished_job(page)
        assert "8 of 8" in page.inner_text("main")
        page.get_by_role("link", name="Open the new pair").click()
        assert page.locator("h1").inner_text().startswith("1. Acme <b>Vector</b> vs Other Vector")
        assert panel_ship(page, "Acme <b>Vector</b>") == "100%"  # the fake ships tools its labels do not name
        page.goto(desk.url + "/")
        assert page.get_by_role("link", name="1. Acme <b>Vector</b> vs Other Vector").count() == 1
        assert page.locator("b").count() == 0
        narrow = context.new_page()
        narrow.set_viewport_size({"width": 390, "height": 844})
        narrow.goto(desk.url + "/")
        narrow.get_by_text("Add a pair", exact=True).click()
        assert narrow.evaluate("document.documentElement.scrollWidth") <= 390
        screenshot(narrow, "desk-runs-add-pair-390.png")
    finally:
        context.close()
