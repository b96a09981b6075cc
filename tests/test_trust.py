"""The page's "how far to trust this reviewer" block (panel/trust.py): label agreement, the latest check's flips,
ship rate against editors', and each verdict's jury and sample stability, drafted with a jury of two profiles
(one answers by seed, one follows the labels) and --samples 3."""

from __future__ import annotations

from html import unescape
from pathlib import Path

import httpx2

from panel.agreement import cohen_kappa
from panel.config import Settings
from panel.config_file import EndpointTable
from panel.consistency import check
from panel.editorial import publish_pair
from panel.labels import import_labels
from panel.pipeline import draft_run
from panel.store import Store
from panel.trust import MIN_LABELS, kappa_interval, label_line, rate_line
from panel.web.serve import VoteServer
from tests.fake_openai import FakeOpenAI, chair_responder, load_reference_labels, reference_responder, seeded_responder
from tests.helpers import EXAMPLE_RUN, reference_labels_path, visible

PERSONAS = ["builder", "skeptic", "futurist", "business"]


def test_the_block_says_jury_votes_stability_labels_flips_and_leniency_in_plain_words(settings: Settings) -> None:
    import_labels(Store(settings.db_path), reference_labels_path(), "test", PERSONAS)
    labels = load_reference_labels(reference_labels_path())
    with (
        FakeOpenAI(responder=chair_responder(seeded_responder(3))) as seeded,
        FakeOpenAI(responder=reference_responder(labels)) as follows,
    ):
        profiles = {
            "sampler": EndpointTable(base_url=seeded.base_url, model="fake-model"),
            "<b>labeller</b>": EndpointTable(base_url=follows.base_url, model="fake-model"),
        }
        lead = settings.with_overrides(base_url=seeded.base_url, model="fake-model", seed=7, endpoint_name="sampler")
        check(EXAMPLE_RUN, lead, Store(settings.db_path))
        jury = settings.with_overrides(jury=("sampler", "<b>labeller</b>"), profiles=profiles, samples=3, seed=7)
        draft = draft_run(EXAMPLE_RUN, jury)
    html, markdown = draft.pages[0].read_text("utf-8"), draft.pages[0].with_suffix(".md").read_text("utf-8")
    text = unescape(visible(html))
    assert "<b>labeller</b>" not in html and "&lt;b&gt;labeller&lt;/b&gt;" in html  # a profile name is escaped
    assert text.count("How far to trust this reviewer") == 4
    # seeds 7, 8, 9: ship, ship, skip from the sampler; the labeller skips business three times out of three
    assert (
        "SmolVLM2-2B: Jury: sampler ship (2 of 3 samples), <b>labeller</b> skip (3 of 3 samples) — no majority." in text
    )
    assert (
        "SmolVLM2-2B: Jury: sampler ship (2 of 3 samples), <b>labeller</b> ship (3 of 3 samples) "
        "— majority ship." in text
    )
    assert text.count(f"Too few editor labels to judge its agreement: n = 2 (needs {MIN_LABELS}).") == 4
    assert text.count("swapping the tools' order flips 0 of 2 (0%); hiding the names flips 0 of 2 (0%).") == 4
    # business: the sampler ships 4 of its 6 answers, the labeller none: 4 of 12, editors 0%
    assert "Ships 33% of 12 tools; editors ship 0% — far more often than editors: read its ships with care." in text
    assert '<li class="warn">Ships 33% of 12 tools' in html
    assert "Ships 83% of 12 tools; editors ship 100%." in text  # builder: seed 9 skips twice, the labeller ships
    assert "_How far to trust this reviewer:_" in markdown
    assert "\\<b\\>labeller\\</b\\> skip \\(3 of 3 samples\\)" in markdown
    assert "far more often than editors: read its ships with care. (**warning**)" in markdown


def test_without_a_jury_the_block_still_shows_the_versions_evidence(settings: Settings) -> None:
    with FakeOpenAI(responder=chair_responder(reference_responder({}))) as server:
        draft = draft_run(EXAMPLE_RUN, settings.with_overrides(base_url=server.base_url, model="fake-model"))
    text = unescape(visible(draft.pages[0].read_text("utf-8")))
    assert "Jury:" not in text and "Samples:" not in text
    assert text.count("Not checked for order or name bias yet (panel check).") == 4
    assert text.count("Ships 100% of 2 tools; no editor labels to compare with.") == 4


def test_the_published_and_the_served_page_carry_the_block_too(settings: Settings, tmp_path: Path) -> None:
    with FakeOpenAI(responder=chair_responder(reference_responder({}))) as server:
        draft = draft_run(EXAMPLE_RUN, settings.with_overrides(base_url=server.base_url, model="fake-model"))
    published = publish_pair(draft.store, draft.run_id, 1, "editor", tmp_path / "publish", approve=True)
    assert visible(Path(published.html_path).read_text("utf-8")).count("How far to trust this reviewer") == 4
    assert "How far to trust this reviewer" in Path(published.markdown_path).read_text("utf-8")
    with VoteServer(Store(draft.store.path)) as served:
        page = httpx2.get(f"{served.url}/runs/{draft.run_id}/pairs/1")
    assert visible(page.text).count("How far to trust this reviewer") == 4


def test_agreement_needs_enough_labels_and_gives_kappa_with_an_interval() -> None:
    few = [("ship", "ship")] * (MIN_LABELS - 1)
    assert label_line(few).text == f"Too few editor labels to judge its agreement: n = {MIN_LABELS - 1} (needs 20)."
    gold = ["ship"] * 15 + ["skip"] * 15
    said = ["ship"] * 13 + ["skip"] * 2 + ["skip"] * 12 + ["ship"] * 3
    low, high = kappa_interval(gold, said) or (0.0, 0.0)
    kappa = cohen_kappa(gold, said)
    assert kappa is not None and low < kappa < high and 0 < low and high < 1
    line = label_line(list(zip(gold, said)))
    assert line.text == (
        f"Agrees with editors on 30 labelled tools: balanced accuracy 0.83, κ {kappa:.2f} "
        f"(95% CI {low:.2f} to {high:.2f})."
    )
    assert not line.warning
    always = label_line([(g, "ship") for g in gold])
    assert always.warning and "κ 0.00" in always.text
    assert rate_line(0.9, 10, 0.5).warning and not rate_line(0.6, 10, 0.5).warning
