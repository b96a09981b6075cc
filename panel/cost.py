"""What a run costs: prices per million tokens from Settings, the cost of one attempt, and the line commands print.

Prices are USD per million prompt (input) and completion (output) tokens, from --price-input/--price-output or
price_input/price_output in panel.toml. Unset means unknown: the cost is then NULL, never a guessed 0, except for
the embedded model, which runs on this machine and costs $0 unless a price is set, and an attempt that used no
tokens (refused, unreachable), which costs $0 at any price. Every attempt is stored with
the prices it was costed at, so a later price change does not rewrite history. A run's cost is the sum over the
attempts it made: a cached verdict costs the run that reuses it nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from panel.answers import Answer, Attempt
from panel.config import Settings

PER = 1_000_000  # prices are per million tokens
NO_PRICES_HINT = "--price-input/--price-output or price_input/price_output in panel.toml"


@dataclass(frozen=True)
class Prices:
    """USD per million prompt and completion tokens (None: unknown); `embedded` when 0 because the model is local."""

    input: float | None = None
    output: float | None = None
    embedded: bool = False

    @classmethod
    def of(cls, settings: Settings) -> Prices:
        """The live prices of these settings; the embedded model with no price set costs 0."""
        if settings.embedded and settings.price_input is None and settings.price_output is None:
            return cls(0.0, 0.0, embedded=True)
        return cls(settings.price_input, settings.price_output)

    @classmethod
    def batch_of(cls, settings: Settings) -> Prices:
        """The Batch API prices: price_batch_input/output, else half the live price, else unknown."""
        live = cls.of(settings)
        return cls(
            _half(live.input) if settings.price_batch_input is None else settings.price_batch_input,
            _half(live.output) if settings.price_batch_output is None else settings.price_batch_output,
            live.embedded,
        )

    @property
    def known(self) -> bool:
        """True when both prices are set, so a cost can be computed."""
        return self.input is not None and self.output is not None

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        """USD for these tokens, or None when a price is unknown (no tokens cost $0 at any price)."""
        if prompt_tokens == 0 and completion_tokens == 0:
            return 0.0  # a refused or unreachable request, or nothing asked at all
        if self.input is None or self.output is None:
            return None
        return (prompt_tokens * self.input + completion_tokens * self.output) / PER

    def attempt_cost(self, attempt: Attempt) -> float | None:
        """USD for one attempt's own prompt and completion tokens, or None when a price is unknown."""
        return self.cost(attempt.prompt_tokens, attempt.completion_tokens)


@dataclass(frozen=True)
class RunCost:
    """What the attempts a command made cost: tokens, and USD when the prices are known."""

    prompt_tokens: int
    completion_tokens: int
    usd: float | None
    prices: Prices

    def line(self) -> str:
        """'cost $0.0123 (12,345 prompt + 2,345 completion tokens at $0.15/$0.60 per M)', or why it is unknown."""
        tokens = f"{self.prompt_tokens:,} prompt + {self.completion_tokens:,} completion tokens"
        if self.usd is None:
            return f"cost unknown ({tokens}): {missing_prices(self.prices)}"
        if self.prices.embedded:
            return f"cost $0 (embedded model; {tokens})"
        if not self.prices.known:  # nothing spent: no price needed
            return f"cost $0 ({tokens})"
        return (
            f"cost {dollars(self.usd)} ({tokens} at {price_text(self.prices.input)}/"
            f"{price_text(self.prices.output)} per M)"
        )


def run_cost(answers: Iterable[Answer], prices: Prices) -> RunCost:
    """The cost of every attempt of `answers` (those a command asked for; cached verdicts are not among them)."""
    attempts = [attempt for answer in answers for attempt in answer.attempts]
    costs = [prices.attempt_cost(attempt) for attempt in attempts]
    usd = None if None in costs else sum(cost for cost in costs if cost is not None)
    return RunCost(sum(a.prompt_tokens for a in attempts), sum(a.completion_tokens for a in attempts), usd, prices)


def _half(price: float | None) -> float | None:
    return None if price is None else price / 2


def missing_prices(prices: Prices) -> str:
    """Which price is missing and where to set it."""
    if prices.input is None and prices.output is None:
        return f"no prices set ({NO_PRICES_HINT})"
    missing = "price_input" if prices.input is None else "price_output"
    return f"no {missing} set ({NO_PRICES_HINT})"


def dollars(usd: float | None) -> str:
    """'$0', '$0.000012', '$0.0123' or '$12.35' (enough digits that a small run is not $0.00); '—' when unknown."""
    if usd is None:
        return "—"
    if usd == 0:
        return "$0"
    if usd < 0.0001:
        return f"${usd:.6f}"
    if usd < 1:
        return f"${usd:.4f}"
    return f"${usd:,.2f}"


def price_text(price: float | None) -> str:
    """'$0.15', '$0.075' (a price as given, at least two decimals), or '?' when unknown."""
    if price is None:
        return "?"
    return f"${price:.2f}" if round(price, 2) == price else f"${price:g}"
