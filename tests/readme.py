"""The README as data: its shell commands in order, its inline code, and the `panel` calls in both.

Also the `Example:` lines of every command's --help, and checks that a call's command and flags exist.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer.main

from panel.cli import app

PANEL_PROGRAMS = ("panel", ".venv/bin/panel")
SEPARATORS = ("&&", "||", ";", "|", "&")
REDIRECTS = (">", ">>", "<", ">&", "2>")
SHELL_BLOCK = re.compile(r"^```(?:sh|bash|shell)[ \t]*\n(.*?)^```", re.M | re.S)
ANY_FENCE = re.compile(r"^```.*?^```", re.M | re.S)
INLINE_CODE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
EXAMPLE = re.compile(r"Example:\s*(.+)")
# Path parameters a command writes rather than reads: an example may name a file that does not exist yet.
# `panel batch import`'s results file is written by an offline engine (vLLM's run_batch), never by a new project.
OUTPUT_PATHS = {("init", "folder"), ("*", "out"), ("*", "db"), ("*", "html"), ("import", "results")}


@dataclass(frozen=True)
class ShellCommand:
    """One command of a ```sh block: its text without the trailing comment, that comment, and where it is."""

    text: str
    comment: str
    line: int
    section: str

    @property
    def expected_exit(self) -> int:
        """The exit status the README promises: 0 unless its comment says `exits N`."""
        said = re.search(r"\bexits (\d+)\b", self.comment)
        return int(said.group(1)) if said else 0

    def __str__(self) -> str:
        return f"README.md:{self.line} ({self.section}): {self.text}"


def split_comment(line: str) -> tuple[str, str]:
    """(command, comment) of one shell line: the comment starts at a `#` outside quotes after a space."""
    quote, index = "", 0
    while index < len(line):
        char = line[index]
        if char == "\\" and quote != "'":
            index += 2
            continue
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index].rstrip(), line[index + 1 :].strip()
        index += 1
    return line.rstrip(), ""


def _sections(text: str) -> list[tuple[int, str]]:
    """(offset, title) of every heading outside fenced blocks (a shell comment is no heading), in order."""
    prose = ANY_FENCE.sub(lambda block: re.sub(r"[^\n]", " ", block.group()), text)  # offsets kept
    return [(m.start(), m.group(1).strip()) for m in re.finditer(r"^#{1,4} (.+)$", prose, re.M)]


def shell_commands(text: str) -> list[ShellCommand]:
    """Every command of every ```sh block, in order; whole-line comments skipped, `\\` continuations joined."""
    headings, commands = _sections(text), []
    for block in SHELL_BLOCK.finditer(text):
        section = next((title for offset, title in reversed(headings) if offset < block.start()), "")
        first_line = text.count("\n", 0, block.start(1)) + 1
        pending, start = "", 0
        for number, raw in enumerate(block.group(1).splitlines(), start=first_line):
            if not pending:
                start = number
            line = raw.strip() if pending else raw.rstrip()
            if line.endswith("\\"):
                pending += line[:-1].rstrip() + " "
                continue
            command, comment = split_comment(pending + line)
            pending = ""
            if command.strip():
                commands.append(ShellCommand(command.strip(), comment, start, section))
    return commands


def inline_code(text: str) -> list[str]:
    """Every `inline code` span outside fenced blocks."""
    return INLINE_CODE.findall(ANY_FENCE.sub("", text))


def _tokens(text: str) -> list[str]:
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        return list(lexer)
    except ValueError:  # an unbalanced quote in prose: words are enough to find flags
        return text.split()


def panel_calls(text: str) -> list[list[str]]:
    """The arguments of each `panel` (or `.venv/bin/panel`) call in a shell line, redirections dropped."""
    calls, segment = [], []
    for token in [*_tokens(text), ";"]:
        if token not in SEPARATORS:
            segment.append(token)
            continue
        if segment and segment[0] in PANEL_PROGRAMS:
            args, skip = [], False
            for word in segment[1:]:
                if skip or word in REDIRECTS:
                    skip = word in REDIRECTS
                    continue
                args.append(word)
            calls.append(args)
        segment = []
    return calls


# Typer's commands are its own copy of click's classes (typer._click): only their public attributes are used here.
Command = Any


def root_command() -> Command:
    """The `panel` command as Typer builds it: a group whose `commands` are the subcommands."""
    return typer.main.get_command(app)


def _is_group(command: Command) -> bool:
    return hasattr(command, "commands")


def _flags(command: Command) -> set[str]:
    """Every flag `--help` lists for this command."""
    return {
        "--help",
        *(
            opt
            for p in command.params
            if not getattr(p, "hidden", False)
            for opt in (*p.opts, *p.secondary_opts)
            if opt.startswith("-")
        ),
    }


def resolve(args: list[str]) -> tuple[list[str], Command, list[str]]:
    """(command path, the command, its own arguments) of `panel ARGS`: `labels import x` is ["labels", "import"]."""
    path, command, rest = [], root_command(), list(args)
    while _is_group(command) and rest and rest[0] in command.commands:
        path.append(rest[0])
        command = command.commands[rest.pop(0)]
    return path, command, rest


def flag_problems(args: list[str], any_command: bool = False) -> list[str]:
    """What is wrong with the command and flags of `panel ARGS` (empty when all exist).

    `any_command`: the words name no command (inline `--flag` prose), so a flag must exist on some command.
    """
    flags = [word.split("=", 1)[0] for word in args if word.startswith("--") and len(word) > 2]
    if any_command:
        known = set().union(*(_flags(c) for c in all_commands().values()))
        return [f"{flag}: no panel command has it" for flag in flags if flag not in known]
    path, command, rest = resolve(args)
    name = " ".join(["panel", *path])
    if _is_group(command) and rest and not rest[0].startswith("-"):
        return [f"{name} {rest[0]}: no such command (known: {', '.join(sorted(command.commands))})"]
    return [f"{name} {flag}: not in `{name} --help`" for flag in flags if flag not in _flags(command)]


def all_commands() -> dict[str, Command]:
    """Every command and group of `panel`, by its path ("panel", "panel labels import", ...)."""
    found: dict[str, Command] = {}

    def walk(name: str, command: Command) -> None:
        found[name] = command
        if _is_group(command):
            for sub_name, sub in command.commands.items():
                walk(f"{name} {sub_name}", sub)

    walk("panel", root_command())
    return found


def help_examples() -> Iterator[tuple[str, str]]:
    """(command path, example line) of every `Example:` in a command's help."""
    for name, command in all_commands().items():
        for line in (command.help or "").splitlines():
            if found := EXAMPLE.search(line):
                yield name, found.group(1).strip()


def example_problems(example: str, project: Path) -> list[str]:
    """What is wrong with a help example in a fresh project: unknown commands or flags, bad values, missing inputs.

    The example is parsed as click parses it (without running it); every path it reads must exist in `project`.
    """
    problems = []
    for args in panel_calls(example):
        if found := flag_problems(args):
            problems += found
            continue
        path, command, rest = resolve(args)
        try:
            context = command.make_context(" ".join(["panel", *path]), rest)
        except Exception as error:  # noqa: BLE001  (Typer's click errors; each one is a problem to report)
            message = error.format_message() if hasattr(error, "format_message") else str(error)
            problems.append(f"panel {' '.join(args)}: {message}")
            continue
        for name, value in context.params.items():
            source = context.get_parameter_source(name)
            if getattr(source, "name", "") != "COMMANDLINE" or {(path[-1], name), ("*", name)} & OUTPUT_PATHS:
                continue
            for item in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(item, Path) and not (project / item).exists():  # Typer gives Path parameters as Path
                    problems.append(f"panel {' '.join(args)}: {item} does not exist in a new project")
    return problems
