"""jinja2 page + Markdown: the comparison page of a stored run, escaped, self-contained, script-free."""

from __future__ import annotations

import functools
import re
import secrets
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined, Template, select_autoescape
from markupsafe import Markup, escape

from panel.answer_kinds import CHAIR_ID
from panel.community import CommunityTally, CommunityVotes, VoteForms
from panel.errors import PersonaError
from panel.personas import parse_persona
from panel.store import Store
from panel.tally import PairTally, RunTally, ToolTally, percent, tally_run
from panel.trust import run_trust
from panel.vendor_text import TRUNCATION_MARKER, clean_vendor_text, is_safe_link


def content_security_policy(form_action: str = "'none'") -> str:
    """The page's CSP: no script, nothing loaded from elsewhere; forms post only where `form_action` allows."""
    return (
        "default-src 'none'; script-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        f"base-uri 'none'; form-action {form_action}"
    )


# The page runs no script and loads nothing from elsewhere; this says so to the browser too.
CONTENT_SECURITY_POLICY = content_security_policy()

# `%` too: `{%` and `{{` must not reach a CMS whose templates (Liquid, Hugo) would run them.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~%])")
# Line starts Markdown reads as a list or a heading underline ("- x", "1. x", "==="): kept a paragraph.
_MARKDOWN_BLOCK_START = re.compile(r"^(\s*)([-=])", re.M)
_MARKDOWN_ORDERED_ITEM = re.compile(r"^(\s*\d+)\.", re.M)


def neutralise(value: object) -> str:
    """Text with control, zero-width and bidi-override characters removed (whatever wrote it: vendor, model, editor)."""
    text = "" if value is None else str(value)
    if text.isascii() and text.isprintable():
        return text
    return clean_vendor_text(text, "page", sys.maxsize).text


def markdown_escape(value: object) -> str:
    """Escape text for Markdown so vendor text cannot add links, HTML, formatting or template syntax."""
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", neutralise(value))
    text = _MARKDOWN_BLOCK_START.sub(r"\1\\\2", text)
    text = _MARKDOWN_ORDERED_ITEM.sub(r"\1\\.", text)
    return text.replace("&", "&amp;")


def markdown_quote(value: object) -> str:
    """Escaped text that stays inside one Markdown blockquote, however many lines it has."""
    return "\n> ".join(markdown_escape(value).splitlines() or [""])


def safe_link(url: object) -> str | None:
    """The URL if it is an absolute http(s) link, else None (the page drops it)."""
    return str(url) if url and is_safe_link(str(url)) else None


def marked_truncation(value: object) -> Markup:
    """Escaped text whose truncation marker, if any, is shown as a visible <mark>."""
    text = neutralise(value)
    if text.endswith(TRUNCATION_MARKER):
        cut = text[: -len(TRUNCATION_MARKER)]
        return escape(cut) + Markup(' <mark class="cut">[…truncated]</mark>')
    return escape(text)


def _finalize(value: object) -> object:
    # Every {{ value }} passes here before escaping: no invisible or bidi character reaches the page.
    if isinstance(value, Markup) or not isinstance(value, str):
        return value
    return neutralise(value)


@dataclass(frozen=True)
class PersonaLabel:
    """How a persona is named on the page."""

    id: str
    title: str
    focus: str


def persona_labels(tally: RunTally) -> dict[str, PersonaLabel]:
    """Each persona's title and focus, from the persona version the run used (stored text)."""
    labels: dict[str, PersonaLabel] = {}
    for persona_id in tally.personas:
        text = tally.run.persona_texts.get(persona_id)
        try:
            persona = parse_persona(text, persona_id) if text else None
        except PersonaError:
            persona = None
        labels[persona_id] = (
            PersonaLabel(persona_id, persona.title, persona.focus)
            if persona
            else PersonaLabel(persona_id, persona_id.title(), "")
        )
    return labels


def prompt_versions(tally: RunTally) -> list[tuple[str, str]]:
    """(persona id, short content hash) of every prompt the run used, reviewers first, then the chair."""
    order = [*tally.personas, CHAIR_ID]
    return [
        (persona_id, tally.run.persona_hashes[persona_id][:8])
        for persona_id in order
        if persona_id in tally.run.persona_hashes
    ]


def template_environment(finalize: Callable[[object], object]) -> Environment:
    """A jinja2 environment over panel/templates with the page's rules: autoescape on, an undefined name an error,
    and every {{ value }} passed through `finalize` (which drops what must not reach a reader) first."""
    return Environment(
        loader=PackageLoader("panel", "templates"),
        undefined=StrictUndefined,
        autoescape=select_autoescape(["html", "html.j2"], default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=finalize,
    )


@functools.cache  # one environment: it compiles each template once (a fresh one per page took ~0.15 s)
def _environment() -> Environment:
    env = template_environment(_finalize)
    env.filters["md"] = markdown_escape
    env.filters["md_quote"] = markdown_quote
    env.filters["safe_link"] = safe_link
    env.filters["cut"] = marked_truncation
    env.filters["percent"] = percent
    return env


def mail_template(name: str) -> Template:
    """A template of panel/templates in the pages' environment: mails are escaped and cleaned exactly as pages."""
    return _environment().get_template(name)


def page_context(
    tally: RunTally,
    pair: PairTally,
    community: Mapping[str, CommunityTally] | None = None,
    voting: VoteForms | None = None,
    form_action: str = "'none'",
    signup_url: str | None = None,
) -> dict[str, object]:
    """Everything the page templates read for one pair (community tallies by tool id; vote forms when served).

    `signup_url`: where the newsletter block's sign-up link points on a static page (None: the words only).
    """
    return {
        "tally": tally,
        "run": tally.run,
        "pair": pair,
        "personas": persona_labels(tally),
        "prompt_versions": prompt_versions(tally),
        "csp": content_security_policy(form_action),
        "community": community or {},
        "voting": voting,
        "vote_slot": None,
        "signup_url": safe_link(signup_url),
        "signup_slot": None,
        "generated_at": datetime.now(timezone.utc),
    }


def render_html(
    tally: RunTally,
    pair: PairTally,
    community: Mapping[str, CommunityTally] | None = None,
    voting: VoteForms | None = None,
    form_action: str = "'none'",
    signup_url: str | None = None,
) -> str:
    """One pair's comparison page as a self-contained HTML document; `panel serve` adds votes and forms."""
    context = page_context(tally, pair, community, voting, form_action, signup_url)
    return _environment().get_template("page.html.j2").render(**context)


@dataclass(frozen=True)
class ServedPage:
    """A pair's page as `panel serve` renders it once: fixed HTML around one slot per tool for what votes change."""

    fixed: tuple[str, ...]  # the HTML before, between and after the tools' slots
    sides: tuple[ToolTally, ...]  # the tool of each slot
    signup_marker: str = ""  # where the newsletter sign-up form goes, in the HTML after the last slot

    def html(
        self, community: Mapping[str, CommunityTally], voting: VoteForms | None, signup: SignupForm | None = None
    ) -> str:
        """The page for one reader: each slot filled with the current community figures and this reader's forms,
        and the newsletter sign-up form (`signup`; None leaves the block's words alone)."""
        template = _environment().get_template("page_votes.html.j2")
        slots = [template.render(side=side, community=community, voting=voting) for side in self.sides]
        form = "" if signup is None else _environment().get_template("page_signup.html.j2").render(signup=signup)
        fixed = (
            [*self.fixed[:-1], self.fixed[-1].replace(self.signup_marker, form)] if self.signup_marker else self.fixed
        )
        return "".join(part for pair in zip(fixed, [*slots, ""]) for part in pair)


@dataclass(frozen=True)
class SignupForm:
    """What a served page needs to show one reader the newsletter sign-up form: where to post, their CSRF token."""

    action: str
    csrf: str


def render_served_page(tally: RunTally, pair: PairTally, form_action: str) -> ServedPage:
    """One pair's page rendered for `panel serve` with its vote slots left open; ServedPage.html fills them."""
    # A fresh random marker per page: no card, model or editor text can contain it (and all of that is escaped).
    marker = f"<!--vote-slot-{secrets.token_hex(16)}-->"
    sides: list[ToolTally] = []

    def vote_slot(side: ToolTally) -> Markup:
        sides.append(side)
        return Markup(marker)

    signup_marker = f"<!--signup-slot-{secrets.token_hex(16)}-->"
    context = {
        **page_context(tally, pair, form_action=form_action),
        "vote_slot": vote_slot,
        "signup_slot": Markup(signup_marker),
    }
    fixed = _environment().get_template("page.html.j2").render(**context).split(marker)
    assert len(fixed) == len(sides) + 1 and signup_marker in fixed[-1]
    return ServedPage(tuple(fixed), tuple(sides), signup_marker)


def render_markdown(
    tally: RunTally,
    pair: PairTally,
    community: Mapping[str, CommunityTally] | None = None,
    signup_url: str | None = None,
) -> str:
    """The same content as Markdown, for pasting into a CMS."""
    context = page_context(tally, pair, community, signup_url=signup_url)
    return _environment().get_template("page.md.j2").render(**context)


def comparison_slug(pair: PairTally) -> str:
    """The pair's tools as a file-name-safe slug, e.g. 'smolvlm2-2b-vs-perplexity-sonar-pro-2-api' ('' if none)."""
    raw = f"{pair.left.tool.name} vs {pair.right.tool.name}".lower()
    return re.sub(r"[^a-z0-9]+", "-", raw).strip("-")[:80].strip("-")


def page_slug(pair: PairTally) -> str:
    """A file-name-safe slug such as '01-smolvlm2-2b-vs-perplexity-sonar-pro-2-api'."""
    return f"{pair.index + 1:02d}-{comparison_slug(pair) or 'pair'}"


def write_pages(
    tally: RunTally,
    out_dir: Path,
    community: Mapping[str, CommunityTally] | None = None,
    signup_url: str | None = None,
) -> list[Path]:
    """Write an HTML and a Markdown page per pair under `out_dir/<run_id>/`; return the HTML paths.

    `community` maps tool ids to readers' votes so far; without it the Community figure is a dash. `signup_url`
    makes the newsletter words a link to the sign-up page (a static page has no form).
    """
    folder = out_dir / tally.run.run_id
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for pair in tally.pairs:
        html_path = folder / f"{page_slug(pair)}.html"
        html_path.write_text(render_html(tally, pair, community, signup_url=signup_url), encoding="utf-8")
        markdown = render_markdown(tally, pair, community, signup_url)
        html_path.with_suffix(".md").write_text(markdown, encoding="utf-8")
        written.append(html_path)
    return written


def page_tally(store: Store, run_id: str) -> RunTally:
    """A stored run tallied as its pages show it, with the evidence for each reviewer's trust block."""
    tally = tally_run(store.load_run(run_id))
    tally.trust = run_trust(store, tally)
    return tally


def write_run_pages(
    store: Store, run_id: str, out_dir: Path, signup_url: str | None = None
) -> tuple[RunTally, list[Path]]:
    """Tally a stored run and write its pages with readers' votes so far; return the tally and HTML paths.

    A run without one valid verdict gets no page (an empty draft would pass for a review): the paths are [].
    """
    tally = page_tally(store, run_id)
    if not any(side.verdicts for pair in tally.pairs for side in pair.tools):
        return tally, []
    return tally, write_pages(tally, out_dir, community_so_far(store, tally), signup_url)


def community_so_far(store: Store, tally: RunTally) -> dict[str, CommunityTally]:
    """Readers' votes so far on the run's tools, by tool id: only tools voted on (the others show a dash)."""
    votes = CommunityVotes(store.current_votes())
    return {
        tool_id: crowd
        for pair in tally.pairs
        for tool_id in (pair.left.tool_id, pair.right.tool_id)
        if (crowd := votes.tally(tally.run.run_id, tool_id)).votes
    }
