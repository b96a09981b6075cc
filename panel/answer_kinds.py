"""The two kinds of answer the model gives: a reviewer's verdict on a tool and the chair's summary of a pair.

Each kind is one row of `KINDS`: its pydantic model, the field holding its choice and the choices allowed, the
field the page quotes, and how an answer becomes a row of the verdicts table (the chair's pick is stored in
`verdict`, its summary in `review`, with no confidence or key points). Asking, storing, overriding and
printing an answer go through its kind rather than through the model's field names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from panel.verdict import VERDICTS, Verdict

# The chair writes the page's summary from the reviewers' verdicts; it is stored like a verdict but is no reviewer.
CHAIR_ID = "chair"

PickChoice = Literal["left", "right", "both", "neither"]
PICKS: tuple[str, ...] = get_args(PickChoice)


class ChairSummary(BaseModel):
    """The chair's answer: which tool the panel would ship with, a headline, and why."""

    model_config = ConfigDict(extra="ignore")
    pick: PickChoice = Field(
        description="the tool the panel would ship with: left, right, both (each for a different job) or neither"
    )
    headline: str = Field(min_length=3, max_length=160, description="one line naming the pick")
    summary: str = Field(min_length=40, max_length=1500, description="3 to 5 sentences: which tool and why")


@dataclass(frozen=True)
class AnswerRow:
    """An answer as the verdicts table stores it."""

    verdict: str
    confidence: float | None
    headline: str
    review: str
    key_points: list[str]


@dataclass(frozen=True)
class AnswerKind:
    """One kind of answer: its model, its choice and the choices allowed, its quoted text, and its table row."""

    model: type[BaseModel]
    choice_noun: str  # how an editor's option names the choice: 'verdict' or 'pick'
    choice_field: str
    choices: tuple[str, ...]
    quote_field: str  # the text the page quotes and an override's --quote replaces
    confidence_field: str | None = None
    key_points_field: str | None = None

    def choice(self, answer: BaseModel) -> str:
        """The answer's verdict or pick."""
        return str(getattr(answer, self.choice_field))

    def row(self, answer: BaseModel) -> AnswerRow:
        """The answer as a verdicts-table row."""
        return AnswerRow(
            verdict=self.choice(answer),
            confidence=getattr(answer, self.confidence_field) if self.confidence_field else None,
            headline=getattr(answer, "headline"),
            review=getattr(answer, self.quote_field),
            key_points=list(getattr(answer, self.key_points_field)) if self.key_points_field else [],
        )

    def text_limit(self, field_name: str) -> int:
        """The most characters `field_name` may hold: the bound the model's own answer had to meet."""
        field = self.model.model_fields[field_name]
        return next(m.max_length for m in field.metadata if hasattr(m, "max_length"))


REVIEWER = AnswerKind(Verdict, "verdict", "verdict", VERDICTS, "review", "confidence", "key_points")
CHAIR = AnswerKind(ChairSummary, "pick", "pick", PICKS, "summary")
KINDS: dict[type[BaseModel], AnswerKind] = {kind.model: kind for kind in (REVIEWER, CHAIR)}


def kind_of(answer: BaseModel | type[BaseModel]) -> AnswerKind:
    """The kind of an answer (or of an answer model); raises KeyError for a model that is no kind."""
    return KINDS[answer if isinstance(answer, type) else type(answer)]


def kind_for(persona_id: str) -> AnswerKind:
    """The kind of answer `persona_id` gives: the chair's summary, or a reviewer's verdict."""
    return CHAIR if persona_id == CHAIR_ID else REVIEWER
