"""Vendor text is data: neutralise invisible characters, cap its length, flag injection attempts and unsafe links.

Detection reads a folded view of the text (compatibility forms such as full-width letters, Cyrillic and Greek
look-alikes, accents, case and format characters folded away), so `ＥＮＤ ＴＯＯＬ`, `ЕND TOOL` (Cyrillic Е),
`Ignorez` and `ignorez` are one spelling to it. The text
itself keeps its spelling; only forged prompt delimiters are cut out of it, because those could close the
delimited block a prompt wraps vendor text in.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass, field
from urllib.parse import urlsplit

TRUNCATION_MARKER = " […truncated]"
DELIMITER_PLACEHOLDER = "[delimiter removed]"

# Documented limits (docs/cards.md); longer text is cut and flagged, never silently dropped.
FIELD_LIMITS: dict[str, int] = {
    "name": 120,
    "category": 80,
    "tagline": 240,
    "description": 4000,
    "pricing.details": 1200,
    "link": 500,
    "title": 200,  # a run file's title: not vendor text, but it reaches the served index page the same way
}

# The blocks prompts/user.j2 and prompts/chair_user.j2 wrap data in ("BEGIN <name>" ... "END <name>"): the one
# definition, which the forged-delimiter detector below and `panel lint`/`panel check` read. The templates are
# the user's files, so they spell the lines out; tests/test_injection.py fails when they and these disagree.
# The shipped user.j2 lays a pair out for prefix caches: both cards in the pair's order (FIRST TOOL, SECOND TOOL),
# the same text for either tool's review, then a short TOOL UNDER REVIEW block naming the one under review.
# Templates from before that layout put the tool under review first and a RIVAL TOOL block after it; `panel lint`
# and `panel check` accept both layouts, and the detector cuts forgeries of every name.
TOOL_BLOCK, RIVAL_BLOCK, VERDICTS_BLOCK = "TOOL UNDER REVIEW", "RIVAL TOOL", "PANEL VERDICTS"
FIRST_BLOCK, SECOND_BLOCK = "FIRST TOOL", "SECOND TOOL"
PROMPT_DELIMITER_NAMES = (TOOL_BLOCK, FIRST_BLOCK, SECOND_BLOCK, VERDICTS_BLOCK, RIVAL_BLOCK)
# The block names of the shipped templates (RIVAL TOOL is only in older projects' templates).
SHIPPED_DELIMITER_NAMES = (TOOL_BLOCK, FIRST_BLOCK, SECOND_BLOCK, VERDICTS_BLOCK)


def delimiters(block: str) -> tuple[str, str]:
    """The BEGIN and END lines of a block."""
    return f"BEGIN {block}", f"END {block}"


TOOL_DELIMITERS = delimiters(TOOL_BLOCK)
RIVAL_DELIMITERS = delimiters(RIVAL_BLOCK)
FIRST_DELIMITERS = delimiters(FIRST_BLOCK)
SECOND_DELIMITERS = delimiters(SECOND_BLOCK)
# The two layouts of a user template's two card blocks, the shipped one first: `panel lint` accepts either and
# `panel check` swaps the cards in either.
PAIR_LAYOUT = (FIRST_DELIMITERS, SECOND_DELIMITERS)
OLDER_LAYOUT = (TOOL_DELIMITERS, RIVAL_DELIMITERS)
CARD_LAYOUTS = (PAIR_LAYOUT, OLDER_LAYOUT)

# One character a reader cannot see or a terminal acts on: C0 and C1 controls and DEL (newline and tab
# kept), zero-width, bidi marks/overrides/isolates, BOM and Unicode tag characters. These are the usual
# carriers of text that reads one way to an editor and another way to a model (or that rewrites a terminal).
HIDDEN_CHARACTER = re.compile(
    r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff"
    r"\U000e0000-\U000e007f]"
)
# A whole terminal escape sequence: CSI (colours, cursor moves) or an OSC/DCS/APC/PM string ended by BEL or ST
# (OSC 8 is a hyperlink), in 7-bit or 8-bit form; removed whole so no fragment such as a hidden URL is left.
_ESCAPE_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|(?:\x1b[\]P^_X]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)"
)
_TAG_CHARS = re.compile("[\U000e0000-\U000e007f]")


def _spaced(word: str) -> str:
    """A pattern for `word` that also matches it split by spaces, underscores or hyphens between its letters."""
    return r"[\s_-]*".join(re.escape(letter) for letter in word.replace(" ", "").lower())


_DELIMITER = re.compile(
    r"\b(?:%s)[\s_-]*(?:%s)\b"
    % ("|".join(_spaced(word) for word in ("BEGIN", "END")), "|".join(_spaced(name) for name in PROMPT_DELIMITER_NAMES))
)

# "Forget everything above" in the languages vendors have tried it in: a verb, then what to forget (the generic
# English pattern below catches "ignore all previous instructions"). Phrases are lowercase and accent-free (the
# folded view has none); a space matches any whitespace. Verbs stay off the list when their everyday use is
# benign ("skip the above steps", "forget your rules engine").
_OVERRIDE_PHRASES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "English": (
        ("ignore", "disregard", "forget", "override"),
        (
            "the above",
            "all the above",
            "all of the above",
            "everything above",
            "anything above",
            "what is above",
            "what's above",
            "the text above",
            "everything before this",
            "all prior text",
        ),
    ),
    "French": (
        (
            "ignore",
            "ignorez",
            "ignorer",
            "oublie",
            "oubliez",
            "oublier",
            "ne tiens pas compte de",
            "ne tenez pas compte de",
            "ne tiens pas compte des",
            "ne tenez pas compte des",
            "faites abstraction de",
            "faites abstraction des",
            "fais abstraction de",
            "fais abstraction des",
        ),
        (
            "les instructions precedentes",
            "toutes les instructions precedentes",
            "instructions precedentes",
            "les consignes precedentes",
            "toutes les consignes precedentes",
            "consignes precedentes",
            "tout ce qui precede",
            "ce qui precede",
            "les instructions ci-dessus",
            "tout ce qui est ci-dessus",
            "tout ce qui est au-dessus",
            "les instructions anterieures",
            "vos instructions",
            "tes instructions",
        ),
    ),
    "Chinese": (
        ("忽略", "无视", "無視", "忘记", "忘記", "忘掉", "不要理会", "不要理會"),
        (
            "以上",
            "上面",
            "上述",
            "之前的指令",
            "之前的指示",
            "之前的提示",
            "之前的规则",
            "之前的規則",
            "之前的所有",
            "之前所有",
            "先前的指令",
            "先前的指示",
            "前面的指令",
            "前面的指示",
            "此前的指令",
            "以前的指令",
            "所有指令",
            "所有的指令",
            "所有指示",
            "全部指令",
            "一切指令",
        ),
    ),
}


def _override_pattern(verbs: tuple[str, ...], targets: tuple[str, ...]) -> re.Pattern[str]:
    def alternatives(phrases: tuple[str, ...]) -> str:
        return "|".join(r"\s+".join(re.escape(word) for word in phrase.split()) for phrase in phrases)

    if all(phrase.isascii() for phrase in verbs + targets):
        return re.compile(rf"\b(?:{alternatives(verbs)})\s+(?:{alternatives(targets)})\b")
    return re.compile(rf"(?:{alternatives(verbs)})\s*(?:{alternatives(targets)})")


# Chat-template tokens of the model families in use: ChatML and Llama 3 / Phi (`<|im_start|>`, `<|eot_id|>`,
# `<|start_header_id|>`, any `<|word|>`), Llama 2 / Mistral (`[INST]`, `<<SYS>>`), Gemma (`<start_of_turn>`),
# sentence tokens, Alpaca/Vicuna headers (`### System:`), and a line opening with a role name.
_ROLE_MARKERS = (
    r"<\|\s*[a-z0-9_▁]+\s*\|>",
    r"\[\s*/?\s*inst\s*\]",
    r"<<\s*/?\s*sys\s*>>",
    r"<\s*(?:start|end)_of_turn\s*>",
    r"</?s>",
    r"#{2,}\s*(?:system|user|assistant|developer|instruction|response|input)\s*:",
    r"(?:^|\n)\s*(?:system|assistant|user|developer)\s*:",
)
_QUOTE = "[\"'“”‘’]"

_INJECTION_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (
        "instruction override",
        re.compile(
            r"\b(ignore|disregard|forget|override)\b[^.\n]{0,40}\b(previous|prior|above|earlier|all|your)\b"
            r"[^.\n]{0,40}\b(instructions?|prompts?|rules?|directions?)(?![\w-])"
        ),
    ),  # not "rules-based"
    *[
        (f"instruction override, {language}", _override_pattern(verbs, targets))
        for language, (verbs, targets) in _OVERRIDE_PHRASES.items()
    ],
    (
        "role reassignment",
        re.compile(
            r"\byou are now\b|\bact as (the )?(system|assistant|admin)\b"
            r"|\bnew instructions?\s*:"
        ),
    ),
    # An order to answer ship or skip, or to set the verdict: not "teams that ship fast".
    (
        "verdict steering",
        re.compile(
            r"\b(respond|answer|reply|output|say|return|vote)\s+(with\s+|only\s+|just\s+|exactly\s+)*"
            rf"{_QUOTE}?(ship|skip)(?![\w-])"
            r"|\b(verdict|confidence)\s+(must|should|has to)\s+be\b"
            r"|\b(set|make)\s+(your\s+|the\s+)?(verdict|confidence)\s+(to|=)"
        ),
    ),
    (
        "fake verdict",
        re.compile(
            rf"{_QUOTE}verdict{_QUOTE}\s*:\s*{_QUOTE}?\s*(ship|skip)\b"
            rf"|{_QUOTE}pick{_QUOTE}\s*:\s*{_QUOTE}?\s*(left|right|both|neither)\b"
            rf"|\bverdict(\s*[:=]\s*|\s+(is|of)\s+){_QUOTE}?(ship|skip)(?![\w-])"
        ),
    ),
    ("fake role marker", re.compile("|".join(_ROLE_MARKERS))),
    ("system prompt probe", re.compile(r"\b(system prompt|developer message|hidden instructions)\b")),
]


@dataclass
class CleanText:
    """A cleaned vendor string plus the flags raised while cleaning it."""

    text: str
    flags: list[str] = field(default_factory=list)


# Cyrillic and Greek letters drawn like Latin ones (NFKD keeps them apart): "ЕND" with a Cyrillic Е reads as END.
_LATIN_LOOKALIKES = str.maketrans(
    "АВЕЅІЈКМНОРСТХУаеорсухіјѕԁΑΒΕΖΗΙΚΜΝΟΡΤΥΧαοιν", "ABESIJKMHOPCTXYaeopcyxijsdABEZHIKMNOPTYXaoiv"
)


@functools.lru_cache(maxsize=8192)
def _fold(char: str) -> str:
    if unicodedata.category(char) in ("Mn", "Me", "Cf"):  # accents, joiners, soft hyphens: splitters
        return ""
    letters = unicodedata.normalize("NFKD", char.translate(_LATIN_LOOKALIKES))
    return "".join(c for c in letters if not unicodedata.combining(c)).casefold()


def _folded_view(text: str) -> tuple[str, list[int] | None]:
    """The text as detection reads it, and for each of its characters the index it came from (None: the same)."""
    if text.isascii():
        return text.lower(), None
    parts: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        folded = _fold(char)
        parts.append(folded)
        origin.extend([index] * len(folded))
    return "".join(parts), origin


def _cut_delimiters(text: str, where: str) -> CleanText:
    """`text` with every spelling of a prompt delimiter replaced by a visible placeholder, flagged once."""
    view, origin = _folded_view(text)
    spans = [(m.start(), m.end()) for m in _DELIMITER.finditer(view)]
    if not spans:
        return CleanText(text)
    pieces: list[str] = []
    kept_from = 0
    for start, end in spans:
        first, last = (start, end) if origin is None else (origin[start], origin[end - 1] + 1)
        pieces += [text[kept_from:first], DELIMITER_PLACEHOLDER]
        kept_from = last
    pieces.append(text[kept_from:])
    flag = f"{where}: looks like a prompt-injection attempt (delimiter forgery), replaced by {DELIMITER_PLACEHOLDER}"
    return CleanText("".join(pieces), [flag])


def clean_vendor_text(value: str, where: str, limit: int, single_line: bool = False) -> CleanText:
    """Return `value` with control/invisible characters and forged delimiters removed, spaces folded, length capped."""
    flags: list[str] = []
    if _TAG_CHARS.search(value):
        flags.append(f"{where}: invisible Unicode tag characters removed (possible hidden instruction)")
    text = strip_hidden(value)
    removed = len(value) - len(text)
    if removed > len(_TAG_CHARS.findall(value)):
        flags.append(f"{where}: {removed} control or invisible characters removed")
    text = unicodedata.normalize("NFC", text)
    text = re.sub(r"\s+", " ", text) if single_line else re.sub(r"[ \t]+", " ", text)
    cut = _cut_delimiters(text.strip(), where)
    text = cut.text
    if len(text) > limit:
        flags.append(f"{where}: {len(text)} characters cut to {limit}")
        text = text[:limit].rstrip() + TRUNCATION_MARKER
    view, _ = _folded_view(text)
    for label, pattern in _INJECTION_PATTERNS:
        if pattern.search(view):
            flags.append(f"{where}: looks like a prompt-injection attempt ({label})")
    return CleanText(text, flags + cut.flags)


_PLAIN_HOST = re.compile(r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?|\[[0-9a-f:.]+\]")


def _printable_host(host: str) -> str:
    """The host as ASCII (punycode for an international name), or '' if it has none: safe in a flag."""
    try:
        ascii_host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return ""
    return ascii_host if _PLAIN_HOST.fullmatch(ascii_host) else ""


def link_problem(url: str) -> str | None:
    """Why a vendor link may not go on a page, in words safe to print; None when it may.

    Only absolute http(s) URLs without quotes, angle brackets or braces (a CMS running Liquid or Hugo would
    evaluate `{{ }}`), whose host is a plain ASCII name: no user name before '@' (https://example.com@evil
    goes to evil), no look-alike letters from other scripts, no punycode (xn--) label, no escapes.
    """
    if not re.fullmatch(r"https?://[^\s<>\"'`{}]+", url, re.I):
        return "not an http(s) URL"
    try:
        netloc = urlsplit(url).netloc
    except ValueError:  # urlsplit refuses hosts that change under NFKC ("＠", "／"): disguised separators
        return "host has characters that turn into URL separators"
    if "@" in netloc:
        real = _printable_host(netloc.rsplit("@", 1)[1].rsplit(":", 1)[0])
        return f"a user name before '@' disguises its real host{' ' + real if real else ''}"
    host = re.sub(r":\d*$", "", netloc).lower()
    if not host.isascii():
        printable = _printable_host(host)
        return f"host has non-ASCII letters, a possible look-alike{' (' + printable + ')' if printable else ''}"
    if any(label.startswith("xn--") for label in host.split(".")):
        shown = f" ({host})" if _PLAIN_HOST.fullmatch(host) else ""
        return f"host is a punycode (xn--) name, a possible look-alike{shown}"
    if not _PLAIN_HOST.fullmatch(host):
        return "host is not a plain domain name"
    return None


def strip_hidden(text: str) -> str:
    """`text` without terminal escape sequences and hidden characters (HIDDEN_CHARACTER); newlines and tabs stay.

    The one neutralisation for text from vendors, models and users, wherever it is shown: pages, the compare
    report, the terminal, `panel sql` tables and CSV.
    """
    if text.isascii() and text.isprintable():  # the common case, and nothing to remove
        return text
    return HIDDEN_CHARACTER.sub("", _ESCAPE_SEQUENCE.sub("", text))


def is_safe_link(url: str) -> bool:
    """True for the only links a page may carry (see link_problem)."""
    return link_problem(url) is None
