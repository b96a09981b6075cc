"""A small stored history for the analysts' tests: runs, verdicts, refreshes, a chair, labels and overrides,
written through the store (its record builders, journal and fold, as a review writes them), dated as given.

Not a test module: the tests are in test_warehouse.py.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from panel.answers import Answer, Attempt, VerdictJob
from panel.cards import Pricing, RunSpec, ToolCard, ToolPair
from panel.chair import ChairSummary
from panel.config import Settings
from panel.overrides import find_target
from panel.personas import Persona, PromptTemplates
from panel.store import GoldLabel, Store
from panel.store.journal import JournalRecord
from panel.store.run_writes import answers_record, items_record, run_record
from panel.verdict import Verdict

PERSONAS = ("builder", "skeptic", "futurist", "business")


class History:
    """Writes runs, verdicts, labels and overrides into a fresh panel database with the store's own record
    builders and journal fold (what a review writes), dated as given rather than now."""

    def __init__(self, path: Path) -> None:
        self.store = Store(path)
        self.path = path
        self.settings = Settings(db_path=path, model="fake-model")
        self.templates = PromptTemplates(folder="prompts", sources={"user.j2": "templates-v1"})
        self.jobs: dict[str, VerdictJob] = {}

    @staticmethod
    def card(name: str) -> ToolCard:
        """A tool card for `name`."""
        return ToolCard(
            name=name,
            category="Developer Tools",
            tagline=f"{name} does one job",
            description=f"{name} is a stored tool.",
            pricing=Pricing(entry="Free", details="free"),
        )

    def tool_id(self, name: str) -> str:
        """The stored id of tool `name`: its card's hash."""
        return self.card(name).card_hash

    @staticmethod
    def persona(persona_id: str, version: str = "v1") -> Persona:
        """Reviewer `persona_id` at prompt `version`."""
        return Persona(
            id=persona_id,
            name=persona_id.title(),
            title=persona_id,
            focus=persona_id,
            brief="brief",
            path=f"personas/{persona_id}.md",
            text=f"text of {persona_id}-{version}",
        )

    def _write(self, record: JournalRecord, at: str) -> None:
        """Journal `record` with every time in it set to `at`, and fold it into the database."""
        when = datetime.fromisoformat(at)

        def dated(value: Any) -> Any:
            if isinstance(value, datetime):
                return when
            if isinstance(value, list):
                return [dated(item) for item in value]
            if isinstance(value, dict):
                return {key: dated(item) for key, item in value.items()}
            return value

        self.store.journal.append(dated(record))
        assert self.store.fold_journal()

    def _answer(self, job: VerdictJob, verdict: str | None, attempts: int, at: str) -> Answer:
        answer = (
            None
            if verdict is None
            else Verdict.model_validate(
                {
                    "verdict": verdict,
                    "confidence": 0.9 if verdict == "ship" else 0.6,
                    "headline": "headline",
                    "review": "a review of the tool long enough to be a valid answer",
                    "key_points": ["a point"],
                }
            )
        )
        tries = [
            Attempt(
                number=n,
                status="ok" if answer is not None and n == attempts else "invalid",
                started_at=datetime.fromisoformat(at),
                latency_s=1.0 / attempts,
                raw_text="{}",
                prompt_tokens=100 // attempts,
                completion_tokens=50 // attempts,
                requests=1,
            )
            for n in range(1, attempts + 1)
        ]
        return Answer(job, answer, "{}", tries)

    def run(
        self,
        run_id: str,
        started_at: str,
        pairs: list[tuple[str, str]],
        verdicts: dict[tuple[str, str], str | None],
        persona_versions: dict[str, str] | None = None,
        attempts: dict[tuple[str, str], int] | None = None,
    ) -> None:
        """Store a finished run whose (tool, persona) verdicts are given (None: no valid answer)."""
        personas = [self.persona(p, (persona_versions or {}).get(p, "v1")) for p in PERSONAS]
        spec = RunSpec(
            path="runs/x.yaml",
            title=f"Run {run_id}",
            pairs=[ToolPair(left=self.card(left), right=self.card(right)) for left, right in pairs],
        )
        jobs = [
            VerdictJob(
                f"{run_id}/{tool}/{persona.id}", index, persona, self.card(tool), self.card(rival), [], "templates-v1"
            )
            for index, (left, right) in enumerate(pairs)
            for tool, rival in ((left, right), (right, left))
            for persona in personas
        ]
        self.jobs |= {job.cache_key: job for job in jobs}
        self._write(run_record(run_id, spec, self.settings, personas, self.templates, jobs, "review"), started_at)
        answers = [
            self._answer(
                job,
                verdicts[(job.tool.name, job.persona.id)],
                (attempts or {}).get((job.tool.name, job.persona.id), 1),
                started_at,
            )
            for job in jobs
            if (job.tool.name, job.persona.id) in verdicts
        ]
        self._write(answers_record(run_id, answers, self.settings, "finished"), started_at)

    def refresh(self, run_id: str, tool: str, persona: str, verdict: str, created_at: str) -> None:
        """Store a newer generation of a run item's verdict (what `panel review --refresh` does)."""
        job = self.jobs[f"{run_id}/{tool}/{persona}"]
        self._write(answers_record(run_id, [self._answer(job, verdict, 1, created_at)], self.settings), created_at)

    def chair(self, run_id: str, pair_index: int, left: str, right: str, created_at: str) -> None:
        """Store a panel chair's answer for a pair: a run item and verdict whose prompt is not a reviewer's."""
        chair = Persona(
            id="chair",
            name="Chair",
            title="chair",
            focus="the pair",
            brief="brief",
            path="prompts/chair.j2",
            text="chair text",
        )
        job = VerdictJob(
            f"{run_id}/{pair_index}/chair",
            pair_index,
            chair,
            self.card(left),
            self.card(right),
            [],
            "templates-v1",
            ChairSummary,
        )
        summary = ChairSummary(
            pick="left",
            headline="the panel picks the left tool",
            summary="the left tool does the job and the right one does not, says the chair",
        )
        self._write(items_record(run_id, [job], "chair"), created_at)
        self._write(answers_record(run_id, [Answer(job, summary, "{}", [])], self.settings), created_at)

    def label(self, tool: str, persona: str | None, verdict: str, created_at: str) -> None:
        """Store an editor's gold label."""
        self.store.add_labels([GoldLabel(tool, persona, verdict, "editor", None, datetime.fromisoformat(created_at))])

    def override(self, run_id: str, tool: str, persona: str, verdict: str | None, revert: bool = False) -> None:
        """Store an editor's override of a verdict (now: overrides are dated when made)."""
        pair_index = find_target(self.store.load_run(run_id), tool, persona, None).pair_index  # as panel override
        self.store.add_override(
            run_id, self.tool_id(tool), persona, "ed", pair_index=pair_index, verdict=verdict, revert=revert
        )


def verdict_table(**by_tool: str) -> dict[tuple[str, str], str | None]:
    """{(tool, persona): verdict} from strings like Alpha="ship skip ship ship" (builder, skeptic, futurist,
    business; '-' for no valid answer)."""
    return {
        (tool, persona): (None if word == "-" else word)
        for tool, words in by_tool.items()
        for persona, word in zip(PERSONAS, words.split())
    }
