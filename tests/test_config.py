"""Settings from flags > environment > panel.toml > defaults, each with its origin; panel.toml errors in one line;
endpoint profiles; the model an endpoint serves; `panel config`."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest

from panel.config import Settings, load_settings
from panel.errors import ConfigError, EndpointError
from panel.model.client import make_client
from panel.model.endpoint import Endpoint
from panel.project import Project, find_project
from panel.served_model import with_served_model
from tests.fake_openai import FakeOpenAI, chair_responder, load_reference_labels, reference_responder
from tests.helpers import EXAMPLE_RUN, PROJECT_ROOT, reference_labels_path

PROFILES = """\
endpoint = "local"

[sampling]
temperature = 0.7

[run]
concurrency = 3

[endpoints.local]
base_url = "http://127.0.0.1:9/v1"
model = "file-model"
mode = "tools"
api_key_env = "LOCAL_KEY"

[endpoints.openai]
base_url = "https://api.openai.com/v1"
model = "gpt-4o-mini"
price_input = 0.15
"""


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OPENAI_* / PANEL_* from the developer's shell decides a test."""
    for name in list(os.environ):
        if name.startswith(("OPENAI_", "PANEL_")):
            monkeypatch.delenv(name)


def project_with(tmp_path: Path, text: str) -> Project:
    (tmp_path / "panel.toml").write_text(text, encoding="utf-8")
    return find_project(tmp_path)


def settings_of(tmp_path: Path, text: str, flags: dict | None = None, env: dict | None = None) -> Settings:
    return load_settings(project_with(tmp_path, text), flags, env or {})


# --- precedence: each layer beats the one below, and says so ----------------------------------


def test_defaults_without_any_setting(tmp_path: Path) -> None:
    settings = settings_of(tmp_path, "")
    assert settings.embedded and settings.endpoint_name == "embedded"
    assert (settings.temperature, settings.max_tokens, settings.seed) == (0.2, 700, 7)
    assert settings.origin("temperature") == "default" and settings.origin("base_url") == "default"
    # Paths live in the project, never in the installed package.
    assert settings.db_path == tmp_path.resolve() / "runs" / "panel.duckdb"
    assert settings.personas_dir == tmp_path.resolve() / "personas"
    assert settings.out_dir == tmp_path.resolve() / "runs" / "pages"


def test_panel_toml_beats_defaults_with_file_and_line(tmp_path: Path) -> None:
    settings = settings_of(
        tmp_path, '[sampling]\ntemperature = 0.7\nseed = 11\n\n[paths]\ndatabase = "data/p.duckdb"\n'
    )
    config = tmp_path.resolve() / "panel.toml"
    assert (settings.temperature, settings.seed) == (0.7, 11)
    assert settings.origin("temperature") == f"{config}:2"
    assert settings.origin("seed") == f"{config}:3"
    assert settings.db_path == tmp_path.resolve() / "data" / "p.duckdb"  # relative to the project root
    assert settings.origin("db_path") == f"{config}:6"


def test_environment_beats_panel_toml(tmp_path: Path) -> None:
    settings = settings_of(
        tmp_path,
        PROFILES,
        env={"OPENAI_BASE_URL": "http://127.0.0.1:7/v1", "PANEL_MODEL": "env-model", "PANEL_DB": "elsewhere.duckdb"},
    )
    assert settings.base_url == "http://127.0.0.1:7/v1" and settings.origin("base_url") == "env OPENAI_BASE_URL"
    assert settings.model == "env-model" and settings.origin("model") == "env PANEL_MODEL"
    assert settings.mode == "tools"  # what the environment does not set still comes from the profile
    assert settings.db_path == Path("elsewhere.duckdb").absolute() and settings.origin("db_path") == "env PANEL_DB"


def test_flags_beat_the_environment(tmp_path: Path) -> None:
    settings = settings_of(
        tmp_path,
        PROFILES,
        flags={"model": "flag-model", "concurrency": 5, "temperature": 0.0},
        env={"PANEL_MODEL": "env-model"},
    )
    assert (settings.model, settings.origin("model")) == ("flag-model", "flag --model")
    assert (settings.concurrency, settings.origin("concurrency")) == (5, "flag --concurrency")
    assert (settings.temperature, settings.origin("temperature")) == (0.0, "flag --temperature")


def test_endpoint_flag_takes_its_profile_whole_over_the_environment(tmp_path: Path) -> None:
    settings = settings_of(
        tmp_path,
        PROFILES,
        flags={"endpoint_name": "openai"},
        env={"OPENAI_BASE_URL": "http://127.0.0.1:7/v1", "PANEL_MODE": "prompt"},
    )
    config = tmp_path.resolve() / "panel.toml"
    assert settings.endpoint_name == "openai" and settings.origin("endpoint_name") == "flag --endpoint"
    assert settings.base_url == "https://api.openai.com/v1"
    assert settings.origin("base_url") == f"flag --endpoint {config}:16"
    # The profile sets no mode: picked whole, so PANEL_MODE does not leak in, and the mode is chosen for it.
    assert settings.mode is None and settings.structured_mode == "json_schema"
    assert settings.api_key_env == "OPENAI_API_KEY"
    assert settings.price_input == 0.15 and settings.price_batch_input == 0.075  # the Batch API: half


def test_base_url_flag_beats_the_endpoint_flags_profile_for_that_field(tmp_path: Path) -> None:
    settings = settings_of(tmp_path, PROFILES, flags={"endpoint_name": "openai", "base_url": "http://127.0.0.1:8/v1"})
    assert settings.base_url == "http://127.0.0.1:8/v1" and settings.origin("base_url") == "flag --base-url"
    assert settings.model == "gpt-4o-mini"  # the rest of the profile stays


def test_panel_endpoint_picks_a_profile_over_the_files_default(tmp_path: Path) -> None:
    settings = settings_of(tmp_path, PROFILES, env={"PANEL_ENDPOINT": "embedded"})
    assert settings.embedded and settings.origin("endpoint_name") == "env PANEL_ENDPOINT"
    assert settings.model is None and settings.model_name == "smollm2-135m-instruct"
    assert settings.temperature == 0.7  # [sampling] is not part of a profile


def test_embedded_endpoint_flag_beats_openai_base_url(tmp_path: Path) -> None:
    settings = settings_of(
        tmp_path, "", flags={"endpoint_name": "embedded"}, env={"OPENAI_BASE_URL": "http://127.0.0.1:7/v1"}
    )
    assert settings.embedded


def test_openai_base_url_alone_still_picks_that_endpoint(tmp_path: Path) -> None:
    settings = settings_of(tmp_path, "", env={"OPENAI_BASE_URL": "http://127.0.0.1:7/v1"})
    assert not settings.embedded and settings.structured_mode == "json_schema"


# --- one-line errors ---------------------------------------------------------------------------


def test_bad_value_is_one_line_naming_file_key_and_what_is_allowed(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as caught:
        settings_of(tmp_path, '[run]\nconcurrency = "eight"\n')
    assert str(caught.value) == 'panel.toml: [run] concurrency: must be an integer 1-256 (got "eight")'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[run]\nconcurency = 8\n", "[run] concurency: unknown key (allowed: concurrency, timeout, max_retries, "),
        ("colour = 1\n", "colour: unknown key (allowed: endpoint, paths, sampling, run, desk, endpoints, smtp, site)"),
        (
            '[endpoints.x]\nkey = "sk-1"\n',
            "[endpoints.x] key: unknown key (allowed: base_url, model, mode, api_key_env",
        ),
        (
            '[endpoints.x]\nmode = "xml"\n',
            '[endpoints.x] mode: must be one of json_schema, json_object_schema, tools, prompt (got "xml")',
        ),
        ("[sampling]\ntemperature = 9\n", "[sampling] temperature: must be a number 0-2 (got 9)"),
        (
            "[sampling]\nmax_tokens = 3000000\n",
            "[sampling] max_tokens: must be an integer 1-100000 (per reply; the "
            "run-wide budget is [run] token_budget) (got 3000000)",
        ),
        ("[run]\nconcurrency = true\n", "[run] concurrency: must be an integer 1-256 (got true)"),
        ("run = 3\n", "run: must be a table [run] (got 3)"),
        ('[endpoints.x]\nbase_url = "localhost:8000"\n', "[endpoints.x] base_url: must be an http:// or https:// URL"),
        (
            '[endpoints.x]\napi_key_env = "sk-live 123"\n',
            "[endpoints.x] api_key_env: must be the NAME of an environment",
        ),
        ("[run\n", "not valid TOML: "),
    ],
)
def test_unknown_keys_and_bad_values_are_one_line(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_of(tmp_path, text)
    message = str(caught.value)
    assert "\n" not in message and expected in message and "panel.toml" in message


def test_unknown_profile_is_one_line_listing_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_of(tmp_path, PROFILES, flags={"endpoint_name": "olama"})
    message = str(caught.value)
    assert message.startswith('--endpoint: no endpoint profile "olama" (known: embedded, local, openai;')
    assert "[endpoints.olama]" in message and "\n" not in message


def test_unknown_profile_in_panel_endpoint_and_in_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^\$PANEL_ENDPOINT: no endpoint profile \"nope\""):
        settings_of(tmp_path, "", env={"PANEL_ENDPOINT": "nope"})
    with pytest.raises(ConfigError, match=r"panel.toml: endpoint: no endpoint profile \"nope\" \(known: embedded;"):
        settings_of(tmp_path, 'endpoint = "nope"\n')


def test_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r'^env PANEL_MODE: must be one of json_schema, .* \(got "fast"\)$'):
        settings_of(tmp_path, "", env={"PANEL_MODE": "fast"})


def test_max_tokens_above_a_reply_points_to_token_budget(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_of(tmp_path, "", flags={"max_tokens": 3_000_000})
    assert "--token-budget" in str(caught.value) and "per-reply" in str(caught.value)


def test_token_budget_is_the_run_wide_budget(tmp_path: Path) -> None:
    settings = settings_of(tmp_path, "[run]\ntoken_budget = 3000000\n", flags={"max_tokens": 900})
    assert (settings.token_budget, settings.max_tokens) == (3_000_000, 900)
    assert settings.sampling() == {"temperature": 0.2, "max_tokens": 900, "seed": 7}


# --- the model an endpoint serves (GET /v1/models on the loopback fake) --------------------------


def test_one_served_model_is_used_and_said(fake: FakeOpenAI, tmp_path: Path) -> None:
    settings = settings_of(tmp_path, "", flags={"base_url": fake.base_url})
    chosen, note = with_served_model(settings)
    assert chosen.model == "fake-model" and chosen.origin("model").startswith("endpoint ")
    assert note is not None and "fake-model" in note and "\n" not in note
    assert [r.path for r in fake.requests] == ["/v1/models"]


def test_several_served_models_are_a_one_line_error_listing_ten(fake: FakeOpenAI, tmp_path: Path) -> None:
    fake.models = [f"model-{i:02}" for i in range(13)]
    with pytest.raises(EndpointError) as caught:
        with_served_model(settings_of(tmp_path, "", flags={"base_url": fake.base_url}))
    message = str(caught.value)
    assert "lists 13 models (model-00, model-01," in message and "model-09 and 3 more)" in message
    assert "model-10" not in message and "--model" in message and "model = " in message and "\n" not in message


def test_no_served_model_is_a_one_line_error_naming_the_profile(fake: FakeOpenAI, tmp_path: Path) -> None:
    fake.models = []
    profile = f'endpoint = "fake"\n[endpoints.fake]\nbase_url = "{fake.base_url}"\n'
    with pytest.raises(EndpointError) as caught:
        with_served_model(settings_of(tmp_path, profile))
    assert str(caught.value) == (
        f"no model given, and {fake.base_url}/models lists no model: give --model NAME, "
        'or model = "NAME" in [endpoints.fake] of panel.toml'
    )


def test_an_unreachable_endpoint_without_a_model_is_one_line(tmp_path: Path) -> None:
    with FakeOpenAI() as gone:
        pass  # stopped: its port now refuses connections
    with pytest.raises(EndpointError) as caught:
        with_served_model(settings_of(tmp_path, "", flags={"base_url": gone.base_url, "max_retries": 0}))
    message = str(caught.value)
    assert "cannot connect to" in message and "--base-url" in message and "--model" in message
    assert "\n" not in message


def test_a_configured_model_asks_nothing(fake: FakeOpenAI, tmp_path: Path) -> None:
    settings = settings_of(tmp_path, "", flags={"base_url": fake.base_url, "model": "mine"})
    assert with_served_model(settings) == (settings, None)
    assert fake.requests == []


def test_no_silent_default_model(tmp_path: Path) -> None:
    settings = settings_of(tmp_path, "", flags={"base_url": "http://127.0.0.1:9/v1"})
    with pytest.raises(ConfigError, match="no model for the endpoint"):
        settings.model_name


def test_the_key_is_read_from_the_profiles_variable_when_the_client_is_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_of(tmp_path, PROFILES)
    assert settings.api_key_env == "LOCAL_KEY" and "sk-" not in repr(settings)
    monkeypatch.setenv("LOCAL_KEY", "sk-from-local-key")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-this-one")
    seen: list[str] = []

    def respond(request: httpx2.Request) -> httpx2.Response:
        seen.append(request.headers["Authorization"])
        return httpx2.Response(200, json={"object": "list", "data": []})

    async def list_models() -> None:
        http_client = httpx2.AsyncClient(transport=httpx2.MockTransport(respond))
        async with make_client(Endpoint(settings.base_url or "", embedded=False), settings, http_client) as client:
            await client.models.list()

    asyncio.run(list_models())
    assert seen == ["Bearer sk-from-local-key"]


# --- the CLI -------------------------------------------------------------------------------------


def run_panel(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PANEL_"))}
    clean["PYTHONPATH"] = str(PROJECT_ROOT)
    return subprocess.run(
        [sys.executable, "-c", "from panel.cli import main; main()", *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_panel_config_prints_each_setting_with_its_origin(tmp_path: Path) -> None:
    project_with(tmp_path, PROFILES)
    result = run_panel(
        "config", "--temperature", "0.3", cwd=tmp_path, env={"PANEL_MODEL": "env-model", "LOCAL_KEY": "sk-secret-value"}
    )
    assert result.returncode == 0, result.stderr
    lines = {line.split()[-1].split("=", 1)[0]: line for line in result.stdout.splitlines()}
    config = tmp_path.resolve() / "panel.toml"
    assert lines["endpoint"].split() == [f"{config}:1", "endpoint=local"]
    assert lines["sampling.temperature"].split() == ["flag", "--temperature", "sampling.temperature=0.3"]
    assert lines["endpoint.model"].split() == ["env", "PANEL_MODEL", "endpoint.model=env-model"]
    assert lines["run.concurrency"].split() == [f"{config}:7", "run.concurrency=3"]
    assert lines["sampling.seed"].split() == ["default", "sampling.seed=7"]
    assert "endpoint.api_key_env=LOCAL_KEY (set;" in result.stdout
    assert "sk-secret-value" not in result.stdout + result.stderr


def test_panel_config_json(tmp_path: Path) -> None:
    project_with(tmp_path, PROFILES)
    result = run_panel("config", "--json", "--endpoint", "openai", cwd=tmp_path / ".")
    assert result.returncode == 0, result.stderr
    rows = {row["key"]: row for row in json.loads(result.stdout)}
    assert rows["endpoint"]["origin"] == "flag --endpoint" and rows["endpoint"]["value"] == "openai"
    assert rows["endpoint.api_key_env"] == {
        "key": "endpoint.api_key_env",
        "value": "OPENAI_API_KEY",
        "origin": "flag --endpoint (not set in [endpoints.openai])",
        "set": False,
    }
    assert rows["project"]["value"] == str(tmp_path.resolve())


def test_panel_config_from_a_subfolder_and_outside_a_project(tmp_path: Path) -> None:
    (tmp_path / "proj" / "deep").mkdir(parents=True)
    (tmp_path / "proj" / "panel.toml").write_text("[run]\nreasks = 1\n", encoding="utf-8")
    inside = run_panel("config", cwd=tmp_path / "proj" / "deep")
    assert inside.returncode == 0 and f"project={(tmp_path / 'proj').resolve()}" in inside.stdout
    outside = run_panel("review", str(EXAMPLE_RUN), cwd=Path("/"))
    assert outside.returncode == 2
    assert outside.stderr == (
        "error: not inside a panel project (no panel.toml here or in any parent folder); run `panel init`\n"
    )


def test_review_asks_the_served_model_once_and_says_so(tmp_path: Path) -> None:
    labels = load_reference_labels(reference_labels_path())
    with FakeOpenAI(responder=chair_responder(reference_responder(labels))) as fake:
        result = run_panel(
            "review",
            str(EXAMPLE_RUN),
            "--base-url",
            fake.base_url,
            "--temperature",
            "0.5",
            "--max-tokens",
            "600",
            "--seed",
            "3",
            "--db",
            str(tmp_path / "p.duckdb"),
            "--out",
            str(tmp_path / "pages"),
            cwd=PROJECT_ROOT,
        )
        listings = [(r.path, r.authorization is not None) for r in fake.requests if r.path == "/v1/models"]
        bodies = [r.body for r in fake.requests if r.body]
    assert result.returncode == 0, result.stderr
    # The listing with the key, before any chat request, once: the preflight reuses it and only adds the
    # same request without a key (which this fake, checking no keys, answers: so the first verdict goes alone).
    assert fake.requests[0].path == "/v1/models" and sorted(listings) == [("/v1/models", False), ("/v1/models", True)]
    assert "model: fake-model, the only one" in result.stderr
    assert {(b["model"], b["temperature"], b["max_tokens"], b["seed"]) for b in bodies} == {("fake-model", 0.5, 600, 3)}


def test_old_budget_meaning_of_max_tokens_is_a_one_line_error(tmp_path: Path) -> None:
    result = run_panel("review", str(EXAMPLE_RUN), "--max-tokens", "3000000", cwd=PROJECT_ROOT)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "--token-budget" in result.stderr and result.stderr.startswith("error: --max-tokens 3000000")
