"""A run's writes as journal records: built from the run's objects, folded into DuckDB (journal_reads.py reads
them before they fold).

Four kinds, each with its builder and its fold side by side: `run` (the run, its tools, pairs, prompt
versions and items), `items` (the chair's extra items), `answers` (a batch of verdicts with their attempts,
and the run's status when it is the last batch) and `status`. A record holds plain rows, so folding it
needs nothing but the record; folding is idempotent per record (its id goes into `journal_folds` in the
same transaction), so a record folded twice after a crash adds nothing. `panel serve` journals a fifth
kind, `votes` (vote_writes.py), folded here with the rest.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import duckdb

from panel.answer_kinds import kind_of
from panel.answers import Answer, VerdictJob
from panel.cards import RunSpec
from panel.config import Settings
from panel.cost import Prices
from panel.personas import Persona, PromptTemplates
from panel.store.journal import JournalRecord
from panel.store.vote_writes import fold_votes

# A verdict as journaled: every column but verdict_id and generation, which only the database can assign.
VERDICT_FIELDS = [
    "cache_key",
    "run_id",
    "tool_id",
    "rival_tool_id",
    "persona_id",
    "persona_hash",
    "template_hash",
    "model",
    "mode",
    "sampling_json",
    "verdict",
    "confidence",
    "headline",
    "review",
    "key_points_json",
    "raw_answer",
    "valid",
    "attempt_count",
    "request_count",
    "prompt_tokens",
    "completion_tokens",
    "latency_s",
    "flags_json",
    "created_at",
    "verdict_probability",
]
# Fields a journal written before their migration lacks: they fold as NULL.
LATER_VERDICT_FIELDS = {"verdict_probability"}
# A journal written before migration 10 has attempts without the last three: they fold as NULL (cost unknown).
ATTEMPT_FIELDS = [
    "number",
    "status",
    "http_status",
    "error_class",
    "error_message",
    "raw_text",
    "prompt_tokens",
    "completion_tokens",
    "latency_s",
    "sdk_retries",
    "started_at",
    "cost_usd",
    "price_input",
    "price_output",
]
TOOL_COLUMNS = ["tool_id", "name", "category", "card_json", "flags_json", "first_seen_at"]
PAIR_COLUMNS = ["run_id", "pair_index", "left_tool_id", "right_tool_id"]
VERSION_COLUMNS = ["content_hash", "kind", "name", "text", "first_seen_at"]
ITEM_COLUMNS = ["run_id", "pair_index", "tool_id", "rival_tool_id", "persona_id", "cache_key"]


def _record(kind: str, run_id: str, **rows: Any) -> JournalRecord:
    return {"id": uuid.uuid4().hex, "kind": kind, "run_id": run_id, "written_at": datetime.now(timezone.utc), **rows}


def _card_ids(jobs: list[VerdictJob]) -> dict[int, str]:
    """Each card's id (ToolCard.card_hash dumps and hashes the card at every call) by the card's object id."""
    cards = {id(card): card for job in jobs for card in (job.tool, job.rival)}
    return {key: card.card_hash for key, card in cards.items()}


def _item_rows(run_id: str, jobs: list[VerdictJob]) -> list[list[Any]]:
    ids = _card_ids(jobs)
    rows = {
        (job.pair_index, ids[id(job.tool)], job.persona.id): [
            run_id,
            job.pair_index,
            ids[id(job.tool)],
            ids[id(job.rival)],
            job.persona.id,
            job.cache_key,
        ]
        for job in jobs
    }  # one row per key: one statement cannot upsert a row twice
    return list(rows.values())


# --- builders -------------------------------------------------------------------------------------
def run_record(
    run_id: str,
    spec: RunSpec,
    settings: Settings,
    personas: list[Persona],
    templates: PromptTemplates,
    jobs: list[VerdictJob],
    purpose: str,
) -> JournalRecord:
    """A run's record: the run row, its tools, pairs, prompt versions and planned items."""
    now = datetime.now(timezone.utc)
    tools = {
        card.card_hash: [
            card.card_hash,
            card.name,
            card.category,
            card.model_dump_json(),
            json.dumps(card.flags, ensure_ascii=False),
            now,
        ]
        for pair in spec.pairs
        for card in pair.tools
    }
    versions = {p.content_hash: [p.content_hash, "persona", p.id, p.text, now] for p in personas}
    versions[templates.content_hash] = [
        templates.content_hash,
        "templates",
        templates.folder,
        json.dumps(templates.sources, ensure_ascii=False),
        now,
    ]
    return _record(
        "run",
        run_id,
        run=[
            run_id,
            spec.title,
            spec.path,
            settings.model_name,
            settings.base_url,
            settings.structured_mode,
            json.dumps(settings.sampling()),
            now,
            purpose,
        ],
        tools=list(tools.values()),
        pairs=[[run_id, index, pair.left.card_hash, pair.right.card_hash] for index, pair in enumerate(spec.pairs)],
        versions=list(versions.values()),
        items=_item_rows(run_id, jobs),
    )


def items_record(run_id: str, jobs: list[VerdictJob], prompt_kind: str) -> JournalRecord:
    """Extra items of a stored run (the chair's) with their prompt versions."""
    now = datetime.now(timezone.utc)
    versions = {
        job.persona.content_hash: [job.persona.content_hash, prompt_kind, job.persona.id, job.persona.text, now]
        for job in jobs
    }
    return _record("items", run_id, versions=list(versions.values()), items=_item_rows(run_id, jobs))


def answers_record(
    run_id: str, answers: list[Answer], settings: Settings, finish_status: str | None = None
) -> JournalRecord:
    """A batch of verdicts (valid or not) with every attempt; with `finish_status`, the run's end too."""
    now = datetime.now(timezone.utc)
    sampling = json.dumps(settings.sampling())
    prices = Prices.of(settings)
    ids = _card_ids([answer.job for answer in answers])
    verdicts = []
    for answer in answers:
        job, verdict = answer.job, answer.verdict
        row_of = kind_of(job.answer_model).row(verdict) if verdict is not None else None
        row = [
            job.cache_key,
            run_id,
            ids[id(job.tool)],
            ids[id(job.rival)],
            job.persona.id,
            job.persona.content_hash,
            job.template_hash,
            settings.model_name,
            settings.structured_mode,
            sampling,
            row_of.verdict if row_of else None,
            row_of.confidence if row_of else None,
            row_of.headline if row_of else None,
            row_of.review if row_of else None,
            json.dumps(row_of.key_points, ensure_ascii=False) if row_of else None,
            answer.raw_text,
            verdict is not None,
            len(answer.attempts),
            answer.requests,
            answer.prompt_tokens,
            answer.completion_tokens,
            answer.latency_s,
            json.dumps(job.tool.flags, ensure_ascii=False),
            now,
            answer.verdict_probability,
        ]
        attempts = [
            [
                a.number,
                a.status,
                a.http_status,
                a.error_class,
                a.error_message,
                a.raw_text,
                a.prompt_tokens,
                a.completion_tokens,
                a.latency_s,
                a.sdk_retries,
                a.started_at,
                prices.attempt_cost(a),
                prices.input,
                prices.output,
            ]
            for a in answer.attempts
        ]
        verdicts.append({**dict(zip(VERDICT_FIELDS, row)), "attempts": attempts})
    return _record("answers", run_id, verdicts=verdicts, status=finish_status, finished_at=now)


def status_record(run_id: str, status: str) -> JournalRecord:
    """The run's end: finished, incomplete or stopped."""
    return _record("status", run_id, status=status, finished_at=datetime.now(timezone.utc))


# --- folding into DuckDB --------------------------------------------------------------------------
def insert_rows(
    con: duckdb.DuckDBPyConnection, table: str, columns: list[str], rows: list[list[Any]], on_conflict: str = ""
) -> None:
    """Insert many rows in one statement (DuckDB runs executemany row by row, ~2 ms a row)."""
    if rows:
        con.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(['unnest(?)'] * len(columns))} "
            f"{on_conflict}",
            [list(column) for column in zip(*rows)],
        )


def _fold_items(con: duckdb.DuckDBPyConnection, record: JournalRecord) -> None:
    insert_rows(con, "prompt_versions", VERSION_COLUMNS, record["versions"], "ON CONFLICT DO NOTHING")
    insert_rows(
        con, "run_items", ITEM_COLUMNS, record["items"], "ON CONFLICT DO UPDATE SET cache_key = excluded.cache_key"
    )


def _fold_run(con: duckdb.DuckDBPyConnection, record: JournalRecord) -> None:
    # A run first recorded as a review stays one when a maintainer's compare or check reuses it.
    con.execute(
        """
        INSERT INTO runs (run_id, title, run_file, model, base_url, mode, sampling_json, status,
                          started_at, finished_at, purpose)
        VALUES (?, ?, ?, ?, ?, ?, ?, 'running', ?::TIMESTAMPTZ, NULL, ?)
        ON CONFLICT (run_id) DO UPDATE SET status = 'running', finished_at = NULL,
            purpose = CASE WHEN runs.purpose = 'review' THEN 'review' ELSE excluded.purpose END""",
        record["run"],
    )
    # Flags are refreshed: a card stored before the detector learnt a trick shows it on its next run.
    insert_rows(
        con, "tools", TOOL_COLUMNS, record["tools"], "ON CONFLICT DO UPDATE SET flags_json = excluded.flags_json"
    )
    insert_rows(con, "pairs", PAIR_COLUMNS, record["pairs"], "ON CONFLICT DO NOTHING")
    _fold_items(con, record)


def _fold_status(con: duckdb.DuckDBPyConnection, record: JournalRecord) -> None:
    if record["status"] is not None:
        con.execute(
            "UPDATE runs SET status = ?, finished_at = ?::TIMESTAMPTZ WHERE run_id = ?",
            [record["status"], record["finished_at"], record["run_id"]],
        )


def _fold_answers(con: duckdb.DuckDBPyConnection, record: JournalRecord) -> None:
    insert_verdicts(con, record["verdicts"])
    _fold_status(con, record)


def insert_verdicts(con: duckdb.DuckDBPyConnection, verdicts: list[dict[str, Any]]) -> list[int]:
    """Insert journaled-shape verdicts (VERDICT_FIELDS plus "attempts") as each key's next generation; their ids."""
    if not verdicts:
        return []
    latest = dict(
        con.execute(
            """SELECT cache_key, max(generation) FROM verdicts
                                 WHERE cache_key IN (SELECT unnest(?)) GROUP BY cache_key""",
            [[v["cache_key"] for v in verdicts]],
        ).fetchall()
    )
    ids = [row[0] for row in con.execute("SELECT nextval('verdict_seq') FROM range(?)", [len(verdicts)]).fetchall()]
    verdict_rows: list[list[object]] = []
    attempt_rows: list[list[object]] = []
    for verdict_id, verdict in zip(ids, verdicts):
        latest[verdict["cache_key"]] = generation = latest.get(verdict["cache_key"], 0) + 1
        verdict_rows.append(
            [
                verdict_id,
                generation,
                *(verdict.get(name) if name in LATER_VERDICT_FIELDS else verdict[name] for name in VERDICT_FIELDS),
            ]
        )
        attempt_rows.extend(
            [verdict_id, *attempt, *[None] * (len(ATTEMPT_FIELDS) - len(attempt))] for attempt in verdict["attempts"]
        )
    insert_rows(con, "verdicts", ["verdict_id", "generation", *VERDICT_FIELDS], verdict_rows)
    insert_rows(con, "attempts", ["verdict_id", *ATTEMPT_FIELDS], attempt_rows)
    return ids


FOLDS: dict[str, Callable[[duckdb.DuckDBPyConnection, JournalRecord], None]] = {
    "run": _fold_run,
    "items": _fold_items,
    "answers": _fold_answers,
    "status": _fold_status,
    "votes": fold_votes,
}


def fold(con: duckdb.DuckDBPyConnection, records: list[JournalRecord]) -> None:
    """Apply journal records in order inside the caller's transaction, skipping any folded before."""
    if not records:
        return
    done = {
        row[0]
        for row in con.execute(
            "SELECT record_id FROM journal_folds WHERE record_id IN (SELECT unnest(?))", [[r["id"] for r in records]]
        ).fetchall()
    }
    todo = [r for r in records if r["id"] not in done and r["kind"] in FOLDS]
    for record in todo:
        FOLDS[record["kind"]](con, record)
    insert_rows(
        con,
        "journal_folds",
        ["record_id", "kind", "run_id", "written_at", "folded_at"],
        [[r["id"], r["kind"], r["run_id"], r["written_at"], datetime.now(timezone.utc)] for r in todo],
    )
