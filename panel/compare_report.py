"""The HTML report of `panel compare`: escaped like the page, no script, a stable file name per comparison."""

from __future__ import annotations

from jinja2 import Environment
from markupsafe import Markup

from panel.cards import content_hash
from panel.compare import Comparison
from panel.cost import dollars, price_text
from panel.render import CONTENT_SECURITY_POLICY, template_environment
from panel.tally import percent
from panel.vendor_text import strip_hidden


def _finalize(value: object) -> object:
    # Every {{ value }} passes here: model text loses its control, bidi and zero-width characters as on the page,
    # but keeps its spacing (the page also folds spaces, which would bend the diffs). Markup too: `join` returns
    # escaped Markup, and removing such a character from escaped text cannot open a tag.
    if isinstance(value, Markup):
        return Markup(strip_hidden(value))
    return strip_hidden(value) if isinstance(value, str) else value


def _report_environment() -> Environment:
    # The page's rules (render.template_environment), its own finalize, and a CSP that allows no script.
    env = template_environment(_finalize)
    env.filters["rate"] = lambda value: "—" if value is None else f"{value:.2f}"
    env.filters["percent"] = percent
    env.filters["dollars"] = dollars
    env.filters["price"] = price_text
    return env


def render_compare_html(comparison: Comparison) -> str:
    """The comparison as a self-contained HTML report (escaped like the page, no script)."""
    return (
        _report_environment()
        .get_template("compare.html.j2")
        .render(c=comparison, csp=CONTENT_SECURITY_POLICY, changes=comparison.changes(), diffs=comparison.diffs())
    )


def report_name(comparison: Comparison) -> str:
    """A stable file name for the report of this comparison: same sides and runs, same name."""
    digest = content_hash(
        {
            "before": [comparison.base.personas, comparison.base.templates],
            "after": [comparison.candidate.personas, comparison.candidate.templates],
            "runs": comparison.run_files,
            "personas": comparison.personas,
        }
    )
    return f"compare-{'-'.join(comparison.personas)[:40]}-{digest[:10]}.html"
