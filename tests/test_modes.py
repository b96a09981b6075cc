"""Structured-output modes are named once (panel.model.modes): the table, panel.toml and the CLI all use that list."""

import pytest

from panel.config_file import EndpointTable
from panel.errors import EndpointError
from panel.model.modes import MODE_TABLE, MODES, get_mode


def test_every_mode_has_exactly_one_row_in_the_table() -> None:
    assert tuple(MODE_TABLE) == MODES
    assert all(MODE_TABLE[name].name == name for name in MODES)


def test_panel_toml_accepts_exactly_the_modes_in_the_table() -> None:
    for name in MODES:
        assert EndpointTable(mode=name).mode == name
    with pytest.raises(ValueError):
        EndpointTable(mode="xml")


def test_unknown_mode_names_every_valid_one() -> None:
    with pytest.raises(EndpointError, match="use one of: json_schema, json_object_schema, tools, prompt"):
        get_mode("xml")


@pytest.mark.parametrize("name", MODES)
def test_reask_echoes_the_answer_then_asks_for_corrected_json(name: str) -> None:
    messages = get_mode(name).reask("x" * 3000, "review: too short.")
    assert messages == [
        {"role": "assistant", "content": "x" * 2000},
        {"role": "user", "content": "review: too short. Reply again with only the corrected JSON object."},
    ]
