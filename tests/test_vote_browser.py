"""A reader in headless Chromium votes on a page served by `panel serve` and sees the Community figure change."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from panel.store import Store
from panel.web.serve import VoteServer
from tests.browser import chromium
from tests.helpers import copy_db


@pytest.fixture
def server(reviewed_db: Path, tmp_path: Path) -> Iterator[VoteServer]:
    with VoteServer(Store(copy_db(reviewed_db, tmp_path))) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def community_figure(page: Page, tool_name: str) -> str:
    """The Community figure in a tool's card, e.g. '100% Community · 1 vote'."""
    card = page.locator("article.tool", has=page.get_by_role("heading", name=tool_name, exact=True))
    return " ".join(card.locator(".figures li").nth(1).inner_text().split())


def test_clicking_a_vote_button_changes_the_community_figure(browser: Browser, server: VoteServer) -> None:
    [target] = server.store.vote_targets()
    # Without JavaScript: the vote is a plain form post and a redirect back.
    context = browser.new_context(java_script_enabled=False)
    outside: list[str] = []
    context.on("request", lambda request: None if request.url.startswith(server.url) else outside.append(request.url))
    violations: list[str] = []
    try:
        page = context.new_page()
        page.on("console", lambda message: violations.append(message.text) if message.type == "error" else None)
        page.goto(f"{server.url}/runs/{target.run_id}/pairs/1")
        assert community_figure(page, target.left_name) == "— Community · 0 votes"
        page.get_by_role("button", name=f"Vote ship on {target.left_name}").click()
        page.wait_for_load_state()
        assert community_figure(page, target.left_name) == "100% Community · 1 vote"
        assert community_figure(page, target.right_name) == "— Community · 0 votes"
        assert "Panel vs community: −25 pts" in page.inner_text("body")  # panel 75%, readers 100%
        assert (
            page.get_by_role("button", name=f"Vote ship on {target.left_name}").get_attribute("aria-pressed") == "true"
        )

        page.get_by_role("button", name=f"Vote skip on {target.left_name}").click()  # a change, not a second vote
        page.wait_for_load_state()
        assert community_figure(page, target.left_name) == "0% Community · 1 vote"
        assert page.locator("script").count() == 0
    finally:
        context.close()
    assert outside == [] and violations == []
