"""The one YAML parser for files a user hands panel: run files, tool cards, persona front matter.

On top of yaml.SafeLoader it bounds what aliases expand to (a 400-byte alias bomb is 10^9 strings),
refuses duplicate keys (PyYAML keeps the last one silently) and bounds nesting depth (PyYAML composes
recursively: 3,000 brackets are a RecursionError). Anchors and aliases within the bound stay legal:
yaml.safe_dump writes them for any object a generated run file shares between cards.
Every problem is a YamlProblem with a line number and a description that never quotes the file.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

import yaml
from yaml.nodes import MappingNode

# A run file nests run > pairs > pair > card > pricing > value; persona front matter is flatter.
MAX_DEPTH = 32
# Nodes that aliases may add in all: a shared pricing block in every pair of a 10,000-pair run is 30,000.
MAX_ALIAS_NODES = 100_000
_MERGE_TAG = "tag:yaml.org,2002:merge"
# PyYAML's problems quote the offending text (an alias, a tag, a character); a quoted run longer
# than one escaped character is file content, and an error message never echoes file content.
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_TOKEN_NAME = re.compile(r"'<[a-z ]+>'")  # "expected <block end>, but found '<scalar>'": grammar, not content


class YamlProblem(ValueError):
    """A YAML text panel refuses: `line` (1-based, or None) and `problem`, which quotes nothing from the file."""

    def __init__(self, problem: str, line: int | None = None) -> None:
        super().__init__(f"line {line}: {problem}" if line else problem)
        self.problem = problem
        self.line = line


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader with bounded alias expansion and depth, and no duplicate keys."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0  # nodes composed so far, each alias counted as the nodes it stands for
        self._alias_nodes = 0
        self._anchor_sizes: dict[str, int] = {}

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            size = self._anchor_sizes.get(event.anchor or "", 0)  # 0: undefined or recursive, which PyYAML reports
            self._nodes += size
            self._alias_nodes += size
            if self._alias_nodes > MAX_ALIAS_NODES:
                raise YamlProblem(
                    f"aliases (*name) expand to more than {MAX_ALIAS_NODES:,} values", _line(event.start_mark)
                )
            return super().compose_node(parent, index)
        if self._depth >= MAX_DEPTH:
            raise YamlProblem(f"nested deeper than {MAX_DEPTH} levels", _line(event.start_mark))
        before = self._nodes
        self._nodes += 1
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if event.anchor is not None:
            self._anchor_sizes[event.anchor] = self._nodes - before
        return node

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue  # `<<: *defaults`: its keys are defaults that this mapping's own keys override
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:
                continue  # an unhashable key: SafeConstructor reports it below
            if duplicate:
                raise YamlProblem(f"duplicate key {_key_label(key)}", _line(key_node.start_mark))
            seen.add(key)
        return super().construct_mapping(node, deep)


class _Mark(Protocol):
    # PyYAML's pure-Python Mark and libyaml's C one: both carry the 0-based line.
    line: int


def _line(mark: _Mark | None) -> int | None:
    return mark.line + 1 if mark else None


def _key_label(key: Any) -> str:
    """A duplicate key is named so it can be found: cut, and only printable characters kept."""
    text = "".join(c for c in str(key) if c.isprintable())[:40]
    return f"'{text}'" if text else "(unprintable)"


def _unquoted(problem: str) -> str:
    """PyYAML's problem text with anything it quoted from the file removed (one character or a token name may stay)."""

    def keep(match: re.Match[str]) -> str:
        quoted = match.group(0)
        return quoted if len(quoted) <= 4 or _TOKEN_NAME.fullmatch(quoted) else "(…)"

    return _QUOTED.sub(keep, problem)


def load_yaml(text: str) -> Any:
    """Parse one YAML document strictly; raise YamlProblem (line and what is wrong) on anything refused."""
    loader = None
    try:
        loader = _StrictLoader(text)  # the reader refuses control characters here, before parsing
        return loader.get_single_data()
    except YamlProblem:
        raise
    except yaml.MarkedYAMLError as error:
        problem = error.problem or error.context or "invalid YAML"
        if error.context and problem.startswith("but "):  # "expected a single document..., but found another"
            problem = f"{error.context}, {problem}"
        problem = _unquoted(problem)
        raise YamlProblem(problem, _line(error.problem_mark or error.context_mark)) from None
    except yaml.reader.ReaderError as error:
        line = text.count("\n", 0, error.position) + 1
        raise YamlProblem(f"control character #x{error.character:04x} is not allowed in YAML", line) from None
    except yaml.YAMLError:
        raise YamlProblem("invalid YAML") from None
    except (ValueError, OverflowError):
        # int("9" * 5000) and date(2024, 13, 45) fail inside PyYAML's constructors, without a mark.
        raise YamlProblem("a value looks like a number or date but is not one; quote it") from None
    finally:
        if loader is not None:
            loader.dispose()
