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
    "title": 200,  # a run file's title: not vendor text, but it reaches the served index page the same way
}

# Zero-width, bidi overrides/isolates, BOM and Unicode tag characters: invisible, and the usual
# carriers of text that reads one way to an editor and another way to a model.
_INVISIBLE = re.compile(
    "[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\U000e0000-\U000e007f]"
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
    invisible = _INVISIBLE.findall(value)
    text = _INVISIBLE.sub("", value)
    controls = [c for c in text if unicodedata.category(c) == "Cc" and c not in "\n\t"]
    if controls:
        text = "".join(c for c in text if not (unicodedata.category(c) == "Cc" and c not in "\n\t"))
    if (len(invisible) - len(_TAG_CHARS.findall(value))) > 0 or controls:
        flags.append(f"{where}: {len(invisible) + len(controls)} control or invisible characters removed")
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


def is_safe_link(url: str) -> bool:
    """True for absolute http(s) URLs without quotes, angle brackets or braces: the only links a page may carry.

    Braces are refused too: a CMS that runs Liquid or Hugo templates would evaluate `{{ }}` in a pasted link.
    """
    return bool(re.fullmatch(r"https?://[^\s<>\"'`{}]+", url, re.I))
