"""Juries and repeated samples (panel/jury.py) against loopback fakes that disagree in a scripted way: one always
ships, one follows the editors' labels (business skips both example tools), one answers by seed."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from panel.config import Settings
from panel.config_file import EndpointTable
from panel.errors import ConfigError
from panel.jury import consensus, majority
from panel.pipeline import draft_run
from panel.store import MemberVote, Store
from tests.fake_openai import FakeOpenAI, chair_responder, load_reference_labels, reference_responder, seeded_responder
from tests.helpers import EXAMPLE_RUN, chat_requests, reference_labels_path

PERSONAS = ["builder", "skeptic", "futurist", "business"]


def jury_settings(
    settings: Settings, *servers: FakeOpenAI, names: tuple[str, ...] = (), **overrides: object
) -> Settings:
    """`settings` with one endpoint profile per server (a, b, c, ...) and those names as the jury."""
    names = names or tuple("abcdefg"[: len(servers)])
    profiles = {
        name: EndpointTable(base_url=server.base_url, model="fake-model") for name, server in zip(names, servers)
    }
    return settings.with_overrides(jury=names, profiles=profiles, **overrides)


def closed_port_url() -> str:
    """A loopback URL nothing listens on (the port was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def verdicts_by_persona(store: Store, run_id: str) -> dict[tuple[str, str], tuple[str | None, list]]:
    """(tool name, persona) -> (consensus verdict, [(member, sample, vote)]) of a stored run."""
    run = store.load_run(run_id)
    names = {tool_id: card.name for pair, ids in zip(run.pairs, run.tool_ids) for card, tool_id in zip(pair, ids)}
    return {
        (names[tool_id], persona): (found.verdict, [(v.member, v.sample, v.verdict) for v in found.votes])
        for (_, tool_id, persona), found in run.consensus.items()
    }


@pytest.fixture
def ships() -> FakeOpenAI:
    with FakeOpenAI(responder=chair_responder(reference_responder({}))) as server:
        yield server


@pytest.fixture
def follows_labels() -> FakeOpenAI:
    labels = load_reference_labels(reference_labels_path())
    with FakeOpenAI(responder=chair_responder(reference_responder(labels))) as server:
        yield server


def test_majority_is_strict_and_a_tie_is_a_split_whatever_the_order() -> None:
    assert majority(["ship", "ship", "skip"]) == "ship"
    assert majority(["skip", "ship"]) == majority(["ship", "skip"]) == "split"
    assert majority(["ship", None, None]) == "ship"  # abstentions do not vote
    assert majority([None, None]) is None
    votes = [MemberVote("a", 0, "k1", "ship"), MemberVote("b", 0, "k2", "skip")]
    assert consensus(votes) == consensus(votes[::-1]) == "split"


def test_a_jury_of_two_that_disagree_on_business_splits_there_and_ships_elsewhere(
    settings: Settings, ships: FakeOpenAI, follows_labels: FakeOpenAI
) -> None:
    draft = draft_run(EXAMPLE_RUN, jury_settings(settings, ships, follows_labels))
    found = verdicts_by_persona(draft.store, draft.run_id)
    assert len(found) == 8
    for (tool, persona), (verdict, votes) in found.items():
        if persona == "business":
            assert (verdict, votes) == ("split", [("a", 0, "ship"), ("b", 0, "skip")]), tool
        else:
            assert (verdict, votes) == ("ship", [("a", 0, "ship"), ("b", 0, "ship")]), (tool, persona)
    assert len(chat_requests(ships)) == 8 + 1  # its verdicts and the chair (the lead asks the chair)
    assert len(chat_requests(follows_labels)) == 8
    tally = draft.tally
    assert tally is not None
    for side in tally.pairs[0].tools:
        assert side.split == ["business"] and side.ship == ["builder", "skeptic", "futurist"] and not side.missing
        assert side.ship_percent == "100%"
    html, markdown = draft.pages[0].read_text(encoding="utf-8"), draft.pages[0].with_suffix(".md").read_text("utf-8")
    assert html.count('<span class="badge tie">split</span>') == 4  # the scorecard and pricing read, both tools
    assert "No majority (models or samples split): business" in html
    assert "no majority (models or samples split) — business" in markdown


def test_a_third_model_breaks_the_tie_and_a_dead_one_abstains_in_plain_sight(
    settings: Settings, ships: FakeOpenAI, follows_labels: FakeOpenAI
) -> None:
    with FakeOpenAI(responder=reference_responder({})) as ships_too:
        draft = draft_run(EXAMPLE_RUN, jury_settings(settings, ships, follows_labels, ships_too), chair=False)
        found = verdicts_by_persona(draft.store, draft.run_id)
        assert {v for (_, p), (v, _) in found.items() if p == "business"} == {"ship"}  # 2 of 3 models

    dead = settings.with_overrides(
        jury=("a", "b", "dead"),
        profiles={
            "a": EndpointTable(base_url=ships.base_url, model="fake-model"),
            "b": EndpointTable(base_url=follows_labels.base_url, model="fake-model"),
            "dead": EndpointTable(base_url=closed_port_url(), model="fake-model"),
        },
    )
    draft = draft_run(EXAMPLE_RUN, dead, chair=False)
    assert "dead" in draft.members.faults and "cannot connect" in draft.members.faults["dead"]
    found = verdicts_by_persona(draft.store, draft.run_id)
    assert found[("SmolVLM2-2B", "business")] == ("split", [("a", 0, "ship"), ("b", 0, "skip"), ("dead", 0, None)])
    assert found[("SmolVLM2-2B", "builder")] == ("ship", [("a", 0, "ship"), ("b", 0, "ship"), ("dead", 0, None)])


def test_samples_vary_by_seed_and_raising_n_asks_only_the_new_ones(settings: Settings) -> None:
    with FakeOpenAI(responder=seeded_responder(3)) as server:
        base = settings.with_overrides(base_url=server.base_url, model="fake-model", seed=7)
        draft = draft_run(EXAMPLE_RUN, base.with_overrides(samples=3), chair=False)
        assert len(chat_requests(server)) == 24
        assert sorted({r.body["seed"] for r in chat_requests(server)}) == [7, 8, 9]
        found = verdicts_by_persona(draft.store, draft.run_id)
        assert {v for v, _ in found.values()} == {"ship"}  # seeds 7, 8 ship; 9 skips: 2 of 3
        assert [vote for _, _, vote in found[("SmolVLM2-2B", "skeptic")][1]] == ["ship", "ship", "skip"]

        draft = draft_run(EXAMPLE_RUN, base.with_overrides(samples=5), chair=False)
        assert len(chat_requests(server)) == 24 + 16  # seeds 10 and 11 only
        assert draft.members.cached == 8 * 2 and draft.members.needed == 8 * 4
        found = verdicts_by_persona(draft.store, draft.run_id)
        assert [vote for _, _, vote in found[("SmolVLM2-2B", "skeptic")][1]] == ["ship", "ship", "skip", "ship", "ship"]

        tied = draft_run(EXAMPLE_RUN, base.with_overrides(seed=8, samples=2), chair=False)  # seeds 8 ship, 9 skip
        assert {v for v, _ in verdicts_by_persona(tied.store, tied.run_id).values()} == {"split"}


def test_back_to_one_sample_clears_the_consensus(settings: Settings) -> None:
    with FakeOpenAI(responder=seeded_responder(3)) as server:
        base = settings.with_overrides(base_url=server.base_url, model="fake-model", seed=8)
        draft = draft_run(EXAMPLE_RUN, base.with_overrides(samples=2), chair=False)
        assert draft.store.load_run(draft.run_id).consensus
        again = draft_run(EXAMPLE_RUN, base, chair=False)
        assert again.run_id == draft.run_id and not again.store.load_run(again.run_id).consensus
        tally = again.tally
        assert tally is not None and tally.pairs[0].left.ship_percent == "100%"  # seed 8: ship


def test_jury_and_samples_come_from_panel_toml_and_flags(tmp_path: Path) -> None:
    from panel.config import load_settings
    from panel.project import Project

    (tmp_path / "panel.toml").write_text(
        '[endpoints.a]\nbase_url = "http://127.0.0.1:9/v1"\nmodel = "m"\n'
        '[endpoints.b]\nbase_url = "http://127.0.0.1:10/v1"\nmodel = "m"\n'
        '[run]\nsamples = 3\njury = ["a", "b"]\n',
        encoding="utf-8",
    )
    project = Project(tmp_path, tmp_path / "panel.toml")
    loaded = load_settings(project, {}, {})
    assert (loaded.samples, loaded.jury) == (3, ("a", "b"))
    assert load_settings(project, {"jury": ["b"], "samples": 5}, {}).jury == ("b",)
    with pytest.raises(ConfigError, match='no endpoint profile "nope"'):
        load_settings(project, {"jury": ["nope"]}, {})
    (tmp_path / "panel.toml").write_text("[run]\nsamples = 0\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\[run\] samples: must be an integer 1-25"):
        load_settings(project, {}, {})
