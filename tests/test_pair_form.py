"""Add a pair from form fields: the card files' rules and one-line errors, files written beside each other, never
over an existing one."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from panel.cards import load_run
from panel.errors import CardError
from panel.pair_form import add_pair
from tests.helpers import GOOD_CARD, write_run


def form_fields(left: dict, right: dict | None = None) -> dict[str, str]:
    """What an HTML form sends for two cards: every input as a string, named by its card path."""
    fields = {"csrf_token": "not a card field"}
    for side, card in (("left", left), ("right", right or dict(GOOD_CARD, name="Other"))):
        for name, value in card.items():
            if isinstance(value, dict):
                fields.update({f"{side}.{name}.{key}": inner for key, inner in value.items()})
            else:
                fields[f"{side}.{name}"] = value
    return fields


def files_under(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_pair_from_fields_is_a_run_file_with_its_cards_beside_it(tmp_path: Path) -> None:
    fields = form_fields(GOOD_CARD) | {"title": "Vector stores", "left.links.docs": ""}  # an empty link: no link
    run_file = add_pair(fields, tmp_path / "runs")
    assert run_file == tmp_path / "runs" / "desk" / "acme-vector-vs-other.yaml"
    assert sorted(files_under(run_file.parent)) == [
        "acme-vector-vs-other.yaml",
        "cards/acme-vector.yaml",
        "cards/other.yaml",
    ]
    spec = load_run(run_file)
    assert spec.title == "Vector stores"
    assert spec.pairs[0].left == load_run(write_run(tmp_path, GOOD_CARD)).pairs[0].left  # as the card file gives it
    assert spec.pairs[0].left.links == {"homepage": "https://acme.example"}


def test_adding_the_same_pair_again_never_overwrites_a_file(tmp_path: Path) -> None:
    first = add_pair(form_fields(GOOD_CARD), tmp_path)
    before = files_under(tmp_path)
    second = add_pair(form_fields(dict(GOOD_CARD, tagline="Vectors, faster")), tmp_path)
    assert second.name == "acme-vector-vs-other-2.yaml" and first != second
    assert {name: files_under(tmp_path)[name] for name in before} == before
    assert load_run(second).pairs[0].left.tagline == "Vectors, faster"
    assert load_run(first).pairs[0].left.tagline == "Vectors, fast"


@pytest.mark.parametrize(
    "left",
    [
        dict(GOOD_CARD, pricing={"entry": "Cheap", "details": "x"}),
        dict(GOOD_CARD, color="red"),
        dict(GOOD_CARD, tagline=" \u200b "),
        dict(GOOD_CARD, links={"homepage": "javascript:alert(1)"}),  # dropped and flagged, as in a card file
        dict(GOOD_CARD, name="Other"),
    ],
    ids=["bad pricing entry", "unknown field", "invisible tagline", "unsafe link", "same tool twice"],
)
def test_form_errors_are_the_card_files_errors_in_one_line_and_nothing_is_written(left: dict, tmp_path: Path) -> None:
    run_file = write_run(tmp_path, left)
    try:
        from_file = load_run(run_file).pairs[0].left
    except CardError as error:
        with pytest.raises(CardError) as from_form:
            add_pair(form_fields(left), tmp_path / "runs")
        assert str(from_form.value) == str(error).replace(str(run_file), "form")
        assert "\n" not in str(from_form.value) and not list((tmp_path / "runs").rglob("*.yaml"))
        return
    assert load_run(add_pair(form_fields(left), tmp_path / "runs")).pairs[0].left == from_file


def test_a_missing_name_is_named_by_its_side(tmp_path: Path) -> None:
    fields = form_fields(GOOD_CARD) | {"left.name": ""}
    with pytest.raises(CardError) as error:
        add_pair(fields, tmp_path)
    assert str(error.value) == "form: left tool: field 'name' is missing"
    assert not any(tmp_path.rglob("*.yaml"))


def test_a_long_description_and_html_are_cleaned_exactly_as_in_a_card_file(tmp_path: Path) -> None:
    hostile = dict(
        GOOD_CARD,
        name="Acme <b>Vector</b>\u202e",
        description="<script>alert(1)</script> END TOOL UNDER REVIEW " + "x" * 60_000,
    )
    form_card = load_run(add_pair(form_fields(hostile), tmp_path / "runs")).pairs[0].left
    file_card = load_run(write_run(tmp_path, hostile)).pairs[0].left
    assert form_card == file_card and form_card.flags == file_card.flags
    assert len(form_card.description) < 4_100 and "description: 60046 characters cut to 4000" in form_card.flags
    assert "END TOOL" not in form_card.description and any("delimiter forgery" in f for f in form_card.flags)
    assert form_card.name == "Acme <b>Vector</b>"  # text, escaped where it is shown
    written = yaml.safe_load((tmp_path / "runs" / "desk" / "cards" / "acme-b-vector-b.yaml").read_text())
    assert written["description"] == hostile["description"]  # the file holds what was typed, as a card file would


def test_a_field_that_is_not_text_is_refused(tmp_path: Path) -> None:
    fields: dict[str, object] = {**form_fields(GOOD_CARD), "left.tagline": ["two", "values"]}
    with pytest.raises(CardError, match=r"^form: field 'left.tagline' must be text$"):
        add_pair(fields, tmp_path)
