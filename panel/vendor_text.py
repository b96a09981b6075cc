"""Vendor text is data: neutralise invisible characters, cap its length, and flag injection attempts."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

TRUNCATION_MARKER = " […truncated]"

# Documented limits (docs/cards.md); longer text is cut and flagged, never silently dropped.
FIELD_LIMITS: dict[str, int] = {
    "name": 120,
    "category": 80,
    "tagline": 240,
    "description": 4000,
    "pricing.details": 1200,
    "link": 500,
}

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

_INJECTION_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("instruction override", re.compile(
        r"\b(ignore|disregard|forget|override)\b[^.\n]{0,40}\b(previous|prior|above|earlier|all|your)\b"
        r"[^.\n]{0,40}\b(instructions?|prompts?|rules?|directions?)", re.I)),
    ("role reassignment", re.compile(r"\byou are now\b|\bact as (the )?(system|assistant|admin)\b|\bnew instructions?\s*:", re.I)),
    ("verdict steering", re.compile(
        r"\b(respond|answer|reply|output|say|return)\b[^.\n]{0,40}\b(ship|verdict|confidence)\b", re.I)),
    ("fake role marker", re.compile(
        r"(^|\n)\s*(system|assistant|user|developer)\s*:|<\|?im_(start|end)\|?>|\[/?INST\]|<\|(system|user|assistant)\|>"
        r"|</?s>|<\|endoftext\|>", re.I)),
    ("delimiter forgery", re.compile(r"(BEGIN|END) (TOOL UNDER REVIEW|RIVAL TOOL)", re.I)),
    ("system prompt probe", re.compile(r"\b(system prompt|developer message|hidden instructions)\b", re.I)),
]


@dataclass
class CleanText:
    """A cleaned vendor string plus the flags raised while cleaning it."""

    text: str
    flags: list[str] = field(default_factory=list)


def clean_vendor_text(value: str, where: str, limit: int, single_line: bool = False) -> CleanText:
    """Return `value` with control/invisible characters removed, whitespace folded and length capped."""
    flags: list[str] = []
    if _TAG_CHARS.search(value):
        flags.append(f"{where}: invisible Unicode tag characters removed (possible hidden instruction)")
    text = strip_hidden(value)
    removed = len(value) - len(text)
    if removed > len(_TAG_CHARS.findall(value)):
        flags.append(f"{where}: {removed} control or invisible characters removed")
    text = unicodedata.normalize("NFC", text)
    text = re.sub(r"\s+", " ", text) if single_line else re.sub(r"[ \t]+", " ", text)
    text = text.strip()
    if len(text) > limit:
        flags.append(f"{where}: {len(text)} characters cut to {limit}")
        text = text[:limit].rstrip() + TRUNCATION_MARKER
    for label, pattern in _INJECTION_PATTERNS:
        if pattern.search(text):
            flags.append(f"{where}: looks like a prompt-injection attempt ({label})")
    return CleanText(text, flags)


def strip_hidden(text: str) -> str:
    """`text` without terminal escape sequences and hidden characters (HIDDEN_CHARACTER); newlines and tabs stay.

    The one neutralisation for text from vendors, models and users, wherever it is shown: pages, the compare
    report, the terminal, `panel sql` tables and CSV.
    """
    if text.isascii() and text.isprintable():  # the common case, and nothing to remove
        return text
    return HIDDEN_CHARACTER.sub("", _ESCAPE_SEQUENCE.sub("", text))


def is_safe_link(url: str) -> bool:
    """True for absolute http(s) URLs without quotes, angle brackets or braces: the only links a page may carry.

    Braces are refused too: a CMS that runs Liquid or Hugo templates would evaluate `{{ }}` in a pasted link.
    """
    return bool(re.fullmatch(r"https?://[^\s<>\"'`{}]+", url, re.I))
