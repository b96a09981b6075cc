"""The one YAML parser for run files, cards and persona front matter: bounded aliases and depth, no duplicate keys."""

from __future__ import annotations

import pytest
import yaml

from panel.errors import PersonaError
from panel.personas import parse_persona
from panel.safe_yaml import MAX_ALIAS_NODES, MAX_DEPTH, YamlProblem, load_yaml

# 372 bytes whose aliases nest 10^9 strings: safe_load shares them, but str() of the result exhausts memory.
ALIAS_BOMB = (
    "\n".join(
        [
            'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
            *(f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 10)}]" for i in range(8)),
        ]
    )
    + "\n"
)


def test_the_alias_bomb_is_refused_once_its_aliases_pass_the_bound() -> None:
    with pytest.raises(
        YamlProblem, match=f"^line 5: aliases \\(\\*name\\) expand to more than {MAX_ALIAS_NODES:,} values$"
    ):
        load_yaml(ALIAS_BOMB)


def test_objects_safe_dump_shares_between_cards_still_load() -> None:
    pricing = {"entry": "Free", "details": "Free forever."}
    text = yaml.safe_dump({"pairs": [[{"name": "A", "pricing": pricing}, {"name": "B", "pricing": pricing}]]})
    assert "&id001" in text
    assert load_yaml(text)["pairs"][0][1]["pricing"] == pricing


def test_a_merge_key_gives_defaults_that_the_mapping_overrides() -> None:
    assert load_yaml("d: &d {entry: Free, details: x}\np: {<<: *d, entry: Paid}\n")["p"] == {
        "entry": "Paid",
        "details": "x",
    }


def test_an_undefined_alias_is_reported_without_naming_it() -> None:
    with pytest.raises(YamlProblem, match=r"^line 2: found undefined alias \(…\)$"):
        load_yaml("a: 1\nb: *sk-live-secret\n")


def test_a_duplicate_key_is_an_error_naming_the_key_and_its_line() -> None:
    with pytest.raises(YamlProblem, match=r"^line 4: duplicate key 'name'$"):
        load_yaml("name: First\ncategory: x\npricing: {entry: Free}\nname: Second\n")


def test_the_same_key_in_two_mappings_is_not_a_duplicate() -> None:
    assert load_yaml("a: {name: x}\nb: {name: y}\n") == {"a": {"name": "x"}, "b": {"name": "y"}}


def test_deep_nesting_is_one_problem_not_a_recursion_error() -> None:
    with pytest.raises(YamlProblem, match=f"nested deeper than {MAX_DEPTH} levels"):
        load_yaml("pairs: " + "[" * 3000 + "]" * 3000)


@pytest.mark.parametrize(
    "text",
    [
        "a: !sk-live-secret-token 1\n",  # PyYAML quotes an unknown tag
        "a: 1\n---\nb: sk-live-secret-token\n",  # a second document
    ],
)
def test_a_problem_never_quotes_the_file(text: str) -> None:
    with pytest.raises(YamlProblem) as error:
        load_yaml(text)
    assert "sk-live" not in str(error.value) and "\n" not in str(error.value)


def test_a_problem_keeps_the_token_names_that_explain_it() -> None:
    with pytest.raises(YamlProblem, match=r"^line 3: expected <block end>, but found '<block sequence start>'$"):
        load_yaml("a:\n  b: 1\n - c\n")


def test_a_nul_character_is_a_problem_not_an_unmarked_error() -> None:
    with pytest.raises(YamlProblem, match=r"^line 2: control character #x0000 is not allowed in YAML$"):
        load_yaml("a: 1\nb: \x00\n")


@pytest.mark.parametrize("text", ["a: " + "9" * 5000 + "\n", "a: 2024-13-45\n"])
def test_a_value_pyyaml_cannot_convert_is_a_problem_not_a_traceback(text: str) -> None:
    with pytest.raises(YamlProblem, match="quote it"):
        load_yaml(text)


def test_persona_front_matter_refuses_duplicate_keys() -> None:
    text = "---\nid: builder\nname: Builder\ntitle: The Builder\nfocus: code\nid: skeptic\n---\nA brief.\n"
    with pytest.raises(
        PersonaError, match=r"^builder\.md: front matter is not valid YAML \(line 6: duplicate key 'id'\)$"
    ):
        parse_persona(text, "builder.md")
