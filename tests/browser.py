"""Headless Chromium (Debian's, driven by Playwright) for page tests: open a page offline, report what happened."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Browser, Dialog, Request, Route, sync_playwright

from tests.helpers import PROJECT_ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = PROJECT_ROOT / "test-artifacts"


@dataclass
class PageVisit:
    """What the browser did with one page: its visible text, dialogs, outside requests, layout and screenshot."""

    text: str
    dialogs: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    scripts: int = 0
    links: list[str] = field(default_factory=list)
    handlers: int = 0
    scroll_width: int = 0
    screenshot: Path | None = None


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless; fails with the fix when it is not installed (`make test` installs it)."""
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} not found: run `make test`, which installs Debian's chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def visit(browser: Browser, page_path: Path, width: int, screenshot_name: str) -> PageVisit:
    """Open `page_path` at `width` px with every non-file request blocked and counted; screenshot the full page."""
    context = browser.new_context(viewport={"width": width, "height": 900}, java_script_enabled=True)
    page_url = page_path.resolve().as_uri()
    seen = PageVisit(text="")

    def on_request(request: Request) -> None:
        if request.url != page_url:
            seen.requests.append(request.url)

    def on_dialog(dialog: Dialog) -> None:
        seen.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def offline(route: Route) -> None:
        if route.request.url == page_url:
            route.continue_()
        else:
            route.abort()

    try:
        context.route("**/*", offline)
        page = context.new_page()
        page.on("request", on_request)
        page.on("dialog", on_dialog)
        page.on(
            "console", lambda message: seen.console_errors.append(message.text) if message.type == "error" else None
        )
        page.goto(page_url, wait_until="load")
        page.wait_for_timeout(300)  # time for anything deferred (a late onerror, a meta refresh) to fire
        seen.text = page.inner_text("body")
        # Playwright's evaluate runs in its own world, not as page script: the page's CSP does not apply to it.
        seen.scripts = page.evaluate("document.querySelectorAll('script').length")
        seen.links = page.evaluate(
            "[...document.querySelectorAll('[href],[src],[action],[formaction]')]"
            ".map(e => e.getAttribute('href') || e.getAttribute('src') || e.getAttribute('action')"
            " || e.getAttribute('formaction'))"
        )
        seen.handlers = page.evaluate(
            "[...document.querySelectorAll('*')]"
            ".filter(e => [...e.attributes].some(a => a.name.startsWith('on'))).length"
        )
        seen.scroll_width = page.evaluate("document.documentElement.scrollWidth")
        ARTIFACTS.mkdir(exist_ok=True)
        seen.screenshot = ARTIFACTS / screenshot_name
        page.screenshot(path=str(seen.screenshot), full_page=True)
    finally:
        context.close()
    return seen
