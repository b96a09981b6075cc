"""The README runs as written: every command of its ```sh blocks, in order, in a new project, against the fake.

And every command and flag it names exists, as do the files and flags of every `Example:` in a command's --help.
"""

from __future__ import annotations

import os
import re
import select
import shlex
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest

from panel.scaffold import init_project
from tests.fake_openai import FakeOpenAI
from tests.helpers import PROJECT_ROOT, chat_requests
from tests.readme import (
    PANEL_PROGRAMS,
    ShellCommand,
    all_commands,
    example_problems,
    flag_problems,
    help_examples,
    inline_code,
    panel_calls,
    root_command,
    shell_commands,
)

README = PROJECT_ROOT / "README.md"
COMMAND_TIMEOUT_S = 120


def installed_panel(text: str) -> str:
    """A command line with the README's `.venv/bin/panel` as `panel`: the script on the test shell's PATH."""
    return re.sub(r"(?<![\w./-])\.venv/bin/panel(?![\w.-])", "panel", text)


def shows_rows(stdout: str) -> bool:
    """Whether `panel sql` printed a row (as a table, which ends with its row count, or as CSV/JSON lines)."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    return len(lines) >= 2 and not re.fullmatch(r"0 rows", lines[-1].strip()) and lines[-1].strip() != "[]"


class Shell:
    """A user's shell in bash: one README command at a time, keeping the working directory and exports.

    `.venv/bin/panel` and `panel` both run `python -m panel` of the Python running the tests (a script on PATH).
    """

    def __init__(self, cwd: Path, fake: FakeOpenAI, state: Path) -> None:
        self.cwd, self.state = cwd, state
        (state / "bin").mkdir(parents=True)
        script = state / "bin" / "panel"
        script.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m panel "$@"\n', encoding="utf-8")
        script.chmod(0o755)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PANEL_"))}
        self.env.update(
            OPENAI_BASE_URL=fake.base_url,
            COLUMNS="120",
            PATH=os.pathsep.join([str(state / "bin"), os.environ["PATH"]]),
            PYTHONPATH=os.pathsep.join([str(PROJECT_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
        )
        (state / "exports").write_text("", encoding="utf-8")

    def _script(self, text: str, keep_state: bool = True) -> str:
        """The bash script that runs `text` where the last command left off (and, kept, records where it ends)."""
        exports, cwd = shlex.quote(str(self.state / "exports")), shlex.quote(str(self.state / "cwd"))
        start = f". {exports}\ncd {shlex.quote(str(self.cwd))} || exit 97\n{installed_panel(text)}\n"
        return start + (f"status=$?\npwd > {cwd}\nexport -p > {exports}\nexit $status\n" if keep_state else "")

    def run(self, text: str) -> subprocess.CompletedProcess:
        """Run one command line as typed; the next one starts where it left off."""
        result = subprocess.run(
            ["bash", "-c", self._script(text)],
            capture_output=True,
            text=True,
            env=self.env,
            stdin=subprocess.DEVNULL,
            timeout=COMMAND_TIMEOUT_S,
        )
        self.cwd = Path((self.state / "cwd").read_text(encoding="utf-8").strip())
        return result

    def start(self, text: str) -> subprocess.Popen:
        """Start one command line without waiting for it (its stdout and stderr piped)."""
        return subprocess.Popen(
            ["bash", "-c", self._script(text, keep_state=False)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
        )


def serve_once(command: ShellCommand, shell: Shell) -> None:
    """Start `panel serve` on a free port, GET / once, then stop it with Ctrl-C."""
    server = shell.start(f"exec {command.text} --port 0")
    try:
        ready, _, _ = select.select([server.stdout], [], [], 60)
        line = server.stdout.readline() if ready else ""  # type: ignore[union-attr]
        found = re.search(r"serving (http://\S+?)/? ", line)
        assert found, f"{command}: no 'serving URL' line within 60 s: {line!r}"
        with urllib.request.urlopen(found.group(1) + "/", timeout=10) as page:
            assert page.status == 200 and "SmolVLM2-2B" in page.read().decode("utf-8")
    finally:
        server.send_signal(signal.SIGINT)
        out, err = server.communicate(timeout=30)
    assert server.returncode == 0 and "stopped:" in out, f"{command}: exit {server.returncode}\n{out}\n{err}"


def desk_once(command: ShellCommand, shell: Shell) -> None:
    """Start `panel desk` on a free port, open the URL it printed (token, then cookie), then stop it with Ctrl-C."""
    desk = shell.start(f"exec {command.text} --port 0")
    try:
        ready, _, _ = select.select([desk.stdout], [], [], 60)
        line = desk.stdout.readline() if ready else ""  # type: ignore[union-attr]
        found = re.search(r"desk: (http://\S+/\?token=\S+) ", line)
        assert found, f"{command}: no 'desk: URL' line within 60 s: {line!r}"
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        with browser.open(found.group(1), timeout=10) as page:  # 303 to the URL without the token, with the cookie
            assert page.status == 200 and "SmolVLM2-2B" in page.read().decode("utf-8")
    finally:
        desk.send_signal(signal.SIGINT)
        out, err = desk.communicate(timeout=30)
    assert desk.returncode == 0 and "desk stopped" in out, f"{command}: exit {desk.returncode}\n{out}\n{err}"


def edit_in_place(command: ShellCommand, shell: Shell) -> None:
    """What an editor session does to `$EDITOR FILE`: add one line to the file (a persona brief: one more ask)."""
    path = shell.cwd / command.text.split()[1]
    assert path.is_file(), f"{command}: {path} does not exist"
    path.write_text(path.read_text(encoding="utf-8") + "\nName the closest competitor.\n", encoding="utf-8")


class NotRun(NamedTuple):
    """Why the test does not run a README command as written, and what it does instead (if anything)."""

    reason: str
    instead: Callable[[ShellCommand, Shell], None] | None = None


# The one list of README commands this test does not run as written. Every other README command runs; an entry
# here that no README command matches fails the test, so the list always says what the README asks unchecked.
NOT_RUN_AS_WRITTEN: dict[str, NotRun] = {
    "make demo": NotRun("builds the venv and the embedded model (minutes); this suite runs the same review"),
    "make test": NotRun("runs this suite"),
    "pipx install .": NotRun("installs panel; the test runs the panel of the Python running it"),
    "panel setup embedded": NotRun("builds llama-cpp-python (minutes); tests/test_setup_embedded.py checks it"),
    "export OPENAI_BASE_URL=https://api.openai.com/v1 OPENAI_API_KEY=sk-...": NotRun(
        "names a real endpoint and a key; here OPENAI_BASE_URL names the loopback fake"
    ),
    "$EDITOR personas/skeptic.md": NotRun("opens an editor: add a line to the file instead", edit_in_place),
    ".venv/bin/panel serve": NotRun(
        "blocks until Ctrl-C (and port 8000 may be taken): run on a free port, GET / once, Ctrl-C", serve_once
    ),
    ".venv/bin/panel desk": NotRun(
        "blocks until Ctrl-C: run on a free port, open the printed URL once (token, cookie), Ctrl-C", desk_once
    ),
}


def test_make_test_the_readme_and_ci_command_lints_with_ruff_and_mypy_before_the_suite() -> None:
    ci = (PROJECT_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in [line.strip() for line in ci.splitlines()], ".ci/run no longer runs the README's make test"
    assert "make test" in [c.text for c in shell_commands(README.read_text(encoding="utf-8"))]
    # -n prints the recipe lines without running them; -o keeps the install stamp from being rebuilt (printed).
    planned = subprocess.run(
        ["make", "-n", "-o", ".make/test", "test"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    checks = [
        "-m ruff check panel tests bench",
        "-m ruff format --check panel tests bench",
        "-m mypy",
        "-m pytest",
    ]
    # One recipe line each, in this order: make stops at the first that exits non-zero.
    found = [next((i for i, line in enumerate(planned) if line.endswith(check)), None) for check in checks]
    assert None not in found and found == sorted(found), f"make test runs {planned}"


def test_readme_commands_join_continuations_drop_comments_and_read_a_promised_exit_status() -> None:
    text = '# Title\n\n```sh\n# a note\npanel a \\\n    --x 1   # exits 1\necho "# not a  comment" > f  # one\n```\n'
    commands = shell_commands(text)
    assert [c.text for c in commands] == ["panel a --x 1", 'echo "# not a  comment" > f']
    assert [c.expected_exit for c in commands] == [1, 0]
    assert (commands[0].line, commands[0].section, commands[1].comment) == (5, "Title", "one")
    assert panel_calls(commands[1].text) == [] and panel_calls("x && .venv/bin/panel b --y > out") == [["b", "--y"]]


def files_under(folder: Path) -> dict[str, float]:
    return {str(p.relative_to(folder)): p.stat().st_mtime for p in folder.rglob("*") if p.is_file()}


def test_every_readme_command_runs_in_order_in_a_new_project_against_the_fake(fake: FakeOpenAI, tmp_path: Path) -> None:
    commands = shell_commands(README.read_text(encoding="utf-8"))
    stale = set(NOT_RUN_AS_WRITTEN) - {c.text for c in commands}
    assert not stale, f"NOT_RUN_AS_WRITTEN names commands the README no longer has: {sorted(stale)}"
    repository_runs = files_under(PROJECT_ROOT / "runs")
    init_project(tmp_path / "project")  # what `panel init project` writes
    shell = Shell(tmp_path / "project", fake, tmp_path / "shell")
    for command in commands:
        if skipped := NOT_RUN_AS_WRITTEN.get(command.text):
            if skipped.instead:
                skipped.instead(command, shell)
            continue
        result = shell.run(command.text)
        assert result.returncode == command.expected_exit, (
            f"{command}\nexited {result.returncode} (expected {command.expected_exit}) in {shell.cwd}\n"
            f"stdout: {result.stdout[-3000:]}\nstderr: {result.stderr[-3000:]}"
        )
        if any(args[:1] == ["sql"] for args in panel_calls(command.text)):
            assert shows_rows(result.stdout), (
                f"{command}\nfound nothing: the earlier commands' data is missing\n{result.stdout}"
            )
    assert shell.cwd.is_relative_to(tmp_path), "the README's commands left the new project"
    assert list((shell.cwd / "runs" / "pages").rglob("*.html")), "the README's review wrote no page in the project"
    assert len(chat_requests(fake)) >= 9, "the README's review did not ask the fake (8 verdicts and the chair)"
    assert files_under(PROJECT_ROOT / "runs") == repository_runs, "a README command wrote the repository's runs/"


def readme_calls(text: str) -> list[tuple[list[str], bool, str]]:
    """(arguments, names no command, where) of every `panel` call in the README's code blocks and inline code.

    Inline code counts when it starts with `panel`, with a command's name (`check --sample-seed`), or with a
    flag (`--token-budget`: then some command must have it).
    """
    calls = [(args, False, str(command)) for command in shell_commands(text) for args in panel_calls(command.text)]
    names = set(root_command().commands)
    for span in inline_code(text):
        first = span.split()[0]
        if first in PANEL_PROGRAMS:
            calls += [(args, False, f"`{span}`") for args in panel_calls(span)]
        elif first in names or first.startswith("--"):
            calls.append((span.split(), first.startswith("--"), f"`{span}`"))
    return calls


def test_every_command_and_flag_the_readme_names_exists() -> None:
    calls = readme_calls(README.read_text(encoding="utf-8"))
    assert len(calls) > 30  # the scan found the README's commands, so an empty result below means something
    problems = [
        f"{where}: {problem}" for args, any_command, where in calls for problem in flag_problems(args, any_command)
    ]
    assert problems == []


def test_every_help_example_names_files_a_new_project_has_and_flags_its_command_has(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    init_project(tmp_path)
    monkeypatch.chdir(tmp_path)
    examples = list(help_examples())
    commands = {name for name, command in all_commands().items() if name != "panel"}
    assert commands - {name for name, _ in examples} == set(), "a command whose --help has no Example:"
    problems = [
        f"{name} --help: {problem}" for name, example in examples for problem in example_problems(example, tmp_path)
    ]
    assert problems == []


@pytest.mark.parametrize(
    ("example", "problem"),
    [
        (
            "panel labels import ../shared/reference/labelled-reviews.jsonl",
            "../shared/reference/labelled-reviews.jsonl does not exist in a new project",
        ),
        ("panel review runs/big.yaml", "runs/big.yaml does not exist in a new project"),
        ("panel review runs/example.yaml --max-tokns 5", "panel review --max-tokns: not in `panel review --help`"),
        ("panel labels impot x.jsonl", "panel labels impot: no such command"),
        ("panel override --persona skeptic --quote-file quote.txt", "'quote.txt' does not exist"),
    ],
)
def test_an_example_naming_a_missing_file_or_flag_is_reported(
    example: str, problem: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    init_project(tmp_path)
    monkeypatch.chdir(tmp_path)
    found = example_problems(example, tmp_path)
    assert len(found) == 1 and problem in found[0], found
