"""Numbered schema changes, applied once, in order, each in a transaction with its record.

Add a migration by appending a function to MIGRATIONS; never edit or renumber a shipped one.
docs/schema.md describes the resulting tables.
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb

from panel.errors import StoreError
from panel.store.views import create_views


def _m001_core(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("""
        CREATE TABLE runs (
            run_id        VARCHAR PRIMARY KEY,   -- hash of run file content + model settings + prompt versions
            title         VARCHAR NOT NULL,
            run_file      VARCHAR NOT NULL,
            model         VARCHAR NOT NULL,
            base_url      VARCHAR,               -- NULL: the embedded model
            mode          VARCHAR NOT NULL,
            sampling_json VARCHAR NOT NULL,
            status        VARCHAR NOT NULL,      -- running | finished | incomplete | stopped
            started_at    TIMESTAMPTZ NOT NULL,
            finished_at   TIMESTAMPTZ
        )""")
    con.execute("""
        CREATE TABLE tools (
            tool_id     VARCHAR PRIMARY KEY,     -- content hash of the cleaned card
            name        VARCHAR NOT NULL,
            category    VARCHAR NOT NULL,
            card_json   VARCHAR NOT NULL,
            flags_json  VARCHAR NOT NULL,        -- what cleaning found: injection, truncation, ...
            first_seen_at TIMESTAMPTZ NOT NULL
        )""")
    con.execute("""
        CREATE TABLE pairs (
            run_id        VARCHAR NOT NULL,
            pair_index    INTEGER NOT NULL,
            left_tool_id  VARCHAR NOT NULL,
            right_tool_id VARCHAR NOT NULL,
            PRIMARY KEY (run_id, pair_index)
        )""")
    con.execute("""
        CREATE TABLE prompt_versions (
            content_hash VARCHAR PRIMARY KEY,    -- a persona file's or the template set's sha256
            kind         VARCHAR NOT NULL,       -- persona | templates
            name         VARCHAR NOT NULL,       -- persona id, or the templates folder
            text         VARCHAR NOT NULL,       -- the full text (templates: JSON of name -> text)
            first_seen_at TIMESTAMPTZ NOT NULL
        )""")
    con.execute("""
        CREATE TABLE run_items (
            run_id       VARCHAR NOT NULL,
            pair_index   INTEGER NOT NULL,
            tool_id      VARCHAR NOT NULL,
            rival_tool_id VARCHAR NOT NULL,
            persona_id   VARCHAR NOT NULL,
            cache_key    VARCHAR NOT NULL,       -- the verdict this item needs
            PRIMARY KEY (run_id, pair_index, tool_id, persona_id)
        )""")
    con.execute("CREATE SEQUENCE verdict_seq")
    con.execute("""
        CREATE TABLE verdicts (
            verdict_id    BIGINT PRIMARY KEY DEFAULT nextval('verdict_seq'),
            cache_key     VARCHAR NOT NULL,
            generation    INTEGER NOT NULL,      -- 1, then +1 per --refresh; the highest is current
            run_id        VARCHAR NOT NULL,      -- the run that asked for it
            tool_id       VARCHAR NOT NULL,
            rival_tool_id VARCHAR NOT NULL,
            persona_id    VARCHAR NOT NULL,
            persona_hash  VARCHAR NOT NULL,
            template_hash VARCHAR NOT NULL,
            model         VARCHAR NOT NULL,
            mode          VARCHAR NOT NULL,
            sampling_json VARCHAR NOT NULL,
            verdict       VARCHAR,               -- ship | skip; NULL when no valid answer came
            confidence    DOUBLE,
            headline      VARCHAR,
            review        VARCHAR,
            key_points_json VARCHAR,
            raw_answer    VARCHAR,
            valid         BOOLEAN NOT NULL,
            attempt_count INTEGER NOT NULL,
            request_count INTEGER NOT NULL,      -- attempts plus the SDK's own retries
            prompt_tokens INTEGER NOT NULL,
            completion_tokens INTEGER NOT NULL,
            latency_s     DOUBLE NOT NULL,
            flags_json    VARCHAR NOT NULL,
            created_at    TIMESTAMPTZ NOT NULL,
            UNIQUE (cache_key, generation)
        )""")
    con.execute("CREATE SEQUENCE attempt_seq")
    con.execute("""
        CREATE TABLE attempts (
            attempt_id    BIGINT PRIMARY KEY DEFAULT nextval('attempt_seq'),
            verdict_id    BIGINT NOT NULL,
            number        INTEGER NOT NULL,
            status        VARCHAR NOT NULL,      -- ok | invalid | bad_response | api_error
            http_status   INTEGER,
            error_class   VARCHAR,
            error_message VARCHAR,
            raw_text      VARCHAR,
            prompt_tokens INTEGER NOT NULL,
            completion_tokens INTEGER NOT NULL,
            latency_s     DOUBLE NOT NULL,
            sdk_retries   INTEGER NOT NULL,
            started_at    TIMESTAMPTZ NOT NULL,
            UNIQUE (verdict_id, number)
        )""")


def _m002_editorial(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SEQUENCE override_seq")
    con.execute("""
        CREATE TABLE overrides (
            override_id BIGINT PRIMARY KEY DEFAULT nextval('override_seq'),
            run_id      VARCHAR NOT NULL,
            tool_id     VARCHAR NOT NULL,
            persona_id  VARCHAR NOT NULL,
            verdict     VARCHAR,                 -- NULL: keep the model's verdict
            review      VARCHAR,                 -- NULL: keep the model's quote
            editor      VARCHAR NOT NULL,
            note        VARCHAR,
            created_at  TIMESTAMPTZ NOT NULL
        )""")
    con.execute("CREATE SEQUENCE label_seq")
    con.execute("""
        CREATE TABLE labels (
            label_id    BIGINT PRIMARY KEY DEFAULT nextval('label_seq'),
            tool_name   VARCHAR NOT NULL,
            persona_id  VARCHAR,                 -- NULL: a label for the tool overall
            verdict     VARCHAR NOT NULL,        -- ship | skip
            source      VARCHAR NOT NULL,        -- e.g. reference, override, editor
            review      VARCHAR,
            created_at  TIMESTAMPTZ NOT NULL
        )""")
    con.execute("CREATE SEQUENCE vote_seq")
    con.execute("""
        CREATE TABLE votes (
            vote_id     BIGINT PRIMARY KEY DEFAULT nextval('vote_seq'),
            run_id      VARCHAR NOT NULL,
            tool_id     VARCHAR NOT NULL,
            voter_token VARCHAR NOT NULL,
            verdict     VARCHAR NOT NULL,        -- ship | skip; a reader's latest event counts
            created_at  TIMESTAMPTZ NOT NULL
        )""")


# The per-persona figures, computed the same way by version and by month over persona_answers (one row per
# stored answer). A rate is NULL when there is nothing to divide by.
_PERSONA_FIGURES = """
    count(*) AS answers,
    count(*) FILTER (WHERE valid) AS verdicts,
    count(*) FILTER (WHERE verdict = 'ship') AS ship,
    count(*) FILTER (WHERE verdict = 'ship') / nullif(count(*) FILTER (WHERE valid), 0) AS ship_rate,
    avg(confidence) FILTER (WHERE valid) AS mean_confidence,
    avg(reasked::INTEGER) AS reask_rate,
    avg((NOT valid)::INTEGER) AS failure_rate,
    count(agrees_with_label) AS labelled,
    avg(agrees_with_label::INTEGER) AS label_agreement,
    min(created_at) AS first_answer_at,
    max(created_at) AS last_answer_at"""


def _m006_warehouse_views(con: duckdb.DuckDBPyConnection) -> None:
    # Analysts' views (docs/schema.md). Frozen like any migration: to change one, add a migration replacing it.
    # run_verdicts mirrors Store.load_run for the reviewers (personas with a 'persona' prompt version, so not
    # e.g. a chair): each run item's current verdict (the highest generation of its cache key; generations
    # start at 1, so only refreshed keys need a max) with the latest override applied.
    con.execute("""
        CREATE OR REPLACE VIEW run_verdicts AS
        WITH reviewers AS (
            SELECT DISTINCT name AS persona_id FROM prompt_versions WHERE kind = 'persona'
        ), refreshed AS (
            SELECT cache_key, max(generation) AS latest FROM verdicts WHERE generation > 1 GROUP BY cache_key
        ), latest_override AS (
            SELECT * FROM overrides
            QUALIFY row_number() OVER (PARTITION BY run_id, tool_id, persona_id
                                       ORDER BY created_at DESC, override_id DESC) = 1
        )
        SELECT i.run_id, i.pair_index, i.tool_id, t.name AS tool_name, i.rival_tool_id, i.persona_id,
               v.verdict_id, v.generation, v.persona_hash, v.model, coalesce(v.valid, false) AS valid,
               v.verdict AS model_verdict,
               CASE WHEN v.verdict_id IS NOT NULL THEN coalesce(o.verdict, v.verdict) END AS verdict,
               v.confidence, v.headline, v.attempt_count, v.created_at,
               v.verdict_id IS NOT NULL AND (o.verdict IS NOT NULL OR o.review IS NOT NULL) AS overridden
        FROM run_items i
        LEFT JOIN tools t ON t.tool_id = i.tool_id
        LEFT JOIN refreshed r ON r.cache_key = i.cache_key
        LEFT JOIN verdicts v ON v.cache_key = i.cache_key AND v.generation = coalesce(r.latest, 1)
        LEFT JOIN latest_override o
               ON o.run_id = i.run_id AND o.tool_id = i.tool_id AND o.persona_id = i.persona_id
        WHERE i.persona_id IN (SELECT persona_id FROM reviewers)""")
    # One row per tool of a pair first (a pair's two tools told apart by tool_id < rival_tool_id, a cheaper
    # key than the tool id), then both sides side by side.
    con.execute("""
        CREATE OR REPLACE VIEW pair_summary AS
        WITH sides AS MATERIALIZED (
            SELECT run_id, pair_index, tool_id < rival_tool_id AS low,
                   count(*) FILTER (WHERE verdict = 'ship') AS ship,
                   count(*) FILTER (WHERE verdict = 'skip') AS skip,
                   count(*) FILTER (WHERE verdict IS NULL) AS missing,
                   count(*) FILTER (WHERE overridden) AS overridden
            FROM run_verdicts GROUP BY run_id, pair_index, low
        ), counts AS (
            SELECT p.run_id, p.pair_index, p.left_tool_id, p.right_tool_id,
                   coalesce(l.ship, 0) AS left_ship, coalesce(l.skip, 0) AS left_skip,
                   coalesce(l.missing, 0) AS left_missing,
                   coalesce(r.ship, 0) AS right_ship, coalesce(r.skip, 0) AS right_skip,
                   coalesce(r.missing, 0) AS right_missing,
                   coalesce(l.overridden, 0) + coalesce(r.overridden, 0) AS overridden
            FROM pairs p
            LEFT JOIN sides l ON l.run_id = p.run_id AND l.pair_index = p.pair_index
                             AND l.low = (p.left_tool_id < p.right_tool_id)
            LEFT JOIN sides r ON r.run_id = p.run_id AND r.pair_index = p.pair_index
                             AND r.low = (p.right_tool_id < p.left_tool_id)
        )
        SELECT c.run_id, r.title AS run_title, r.started_at, r.model, c.pair_index,
               lt.name AS left_name,
               100.0 * left_ship / nullif(left_ship + left_skip, 0) AS left_ship_pct,
               left_ship || '-' || left_skip AS left_split,
               left_ship + left_skip > 0 AND (left_ship = 0 OR left_skip = 0) AS left_unanimous,
               left_missing,
               rt.name AS right_name,
               100.0 * right_ship / nullif(right_ship + right_skip, 0) AS right_ship_pct,
               right_ship || '-' || right_skip AS right_split,
               right_ship + right_skip > 0 AND (right_ship = 0 OR right_skip = 0) AS right_unanimous,
               right_missing,
               c.overridden, c.left_tool_id, c.right_tool_id
        FROM counts c
        JOIN runs r ON r.run_id = c.run_id
        JOIN tools lt ON lt.tool_id = c.left_tool_id
        JOIN tools rt ON rt.tool_id = c.right_tool_id
        ORDER BY r.started_at, c.run_id, c.pair_index""")
    # Gold per (tool name, persona): the latest of labels and editors' overrides, as Store.gold_labels.
    con.execute("""
        CREATE OR REPLACE VIEW persona_answers AS
        WITH versions AS (
            SELECT content_hash, row_number() OVER (PARTITION BY name ORDER BY first_seen_at, content_hash)
                   AS persona_version
            FROM prompt_versions WHERE kind = 'persona'
        ), gold AS (
            SELECT tool_name, persona_id, verdict, source FROM (
                SELECT tool_name, persona_id, verdict, source, created_at, label_id AS seq
                FROM labels WHERE persona_id IS NOT NULL
                UNION ALL
                SELECT t.name, o.persona_id, o.verdict, 'override by ' || o.editor, o.created_at, o.override_id
                FROM (SELECT * FROM overrides  -- an override's latest row is in force; a NULL verdict reverts it
                      QUALIFY row_number() OVER (PARTITION BY run_id, tool_id, persona_id
                                                 ORDER BY created_at DESC, override_id DESC) = 1) o
                JOIN tools t ON t.tool_id = o.tool_id WHERE o.verdict IS NOT NULL)
            QUALIFY row_number() OVER (PARTITION BY tool_name, persona_id ORDER BY created_at DESC, seq DESC) = 1
        )
        SELECT v.verdict_id, v.run_id, v.persona_id, v.persona_hash, pv.persona_version,
               date_trunc('month', timezone('UTC', v.created_at))::DATE AS month,
               v.tool_id, t.name AS tool_name, v.model, v.valid, v.verdict, v.confidence,
               v.attempt_count > 1 AS reasked, g.verdict AS label, g.source AS label_source,
               CASE WHEN v.valid AND g.verdict IS NOT NULL THEN v.verdict = g.verdict END AS agrees_with_label,
               v.created_at
        FROM verdicts v
        LEFT JOIN tools t ON t.tool_id = v.tool_id
        JOIN versions pv ON pv.content_hash = v.persona_hash  -- reviewers only
        LEFT JOIN gold g ON g.tool_name = t.name AND g.persona_id = v.persona_id""")
    con.execute(f"""
        CREATE OR REPLACE VIEW persona_by_version AS
        SELECT persona_id, persona_version, persona_hash, {_PERSONA_FIGURES}
        FROM persona_answers GROUP BY persona_id, persona_version, persona_hash
        ORDER BY persona_id, persona_version""")
    con.execute(f"""
        CREATE OR REPLACE VIEW persona_by_month AS
        SELECT persona_id, month, {_PERSONA_FIGURES}
        FROM persona_answers GROUP BY persona_id, month
        ORDER BY persona_id, month""")
    # Fleiss' kappa over the personas' own (model) verdicts: a subject is one tool of one pair, the raters are
    # the personas. Subjects with fewer than two valid verdicts are left out, as in agreement.fleiss_kappa.
    con.execute("""
        CREATE OR REPLACE VIEW run_agreement AS
        WITH subjects AS (
            SELECT run_id, count(*) FILTER (WHERE model_verdict = 'ship') AS ship,
                   count(*) FILTER (WHERE model_verdict = 'skip') AS skip
            FROM run_verdicts GROUP BY run_id, pair_index, tool_id < rival_tool_id
        ), per_run AS (
            SELECT run_id, count(*) AS subjects, sum(ship + skip) AS ratings,
                   avg((ship * ship + skip * skip - (ship + skip)) / ((ship + skip) * (ship + skip - 1)))
                       AS observed_agreement,
                   sum(ship) / sum(ship + skip) AS ship_share
            FROM subjects WHERE ship + skip >= 2 GROUP BY run_id
        )
        SELECT r.run_id, r.title AS run_title, r.started_at, r.model, coalesce(p.subjects, 0) AS subjects,
               coalesce(p.ratings, 0) AS ratings, p.ship_share, p.observed_agreement,
               p.ship_share ** 2 + (1 - p.ship_share) ** 2 AS expected_agreement,
               CASE WHEN p.ship_share > 0 AND p.ship_share < 1
                    THEN (p.observed_agreement - (p.ship_share ** 2 + (1 - p.ship_share) ** 2))
                         / (1 - (p.ship_share ** 2 + (1 - p.ship_share) ** 2)) END AS fleiss_kappa
        FROM runs r LEFT JOIN per_run p ON p.run_id = r.run_id
        ORDER BY r.started_at, r.run_id""")


def _m007_run_purpose(con: duckdb.DuckDBPyConnection) -> None:
    # Maintainers' compare/check runs are stored like reviews but are probes, not drafts to render.
    con.execute("ALTER TABLE runs ADD COLUMN purpose VARCHAR DEFAULT 'review'")


def _m008_override_pair(con: duckdb.DuckDBPyConnection) -> None:
    # An override belongs to one pair: a tool can sit in two pairs, and the chair is stored under its pair's left
    # tool. Rows from before this migration have no pair_index and still apply to every pair (as they did).
    con.execute("ALTER TABLE overrides ADD COLUMN pair_index INTEGER")
    # The chair's headline (or a reviewer's) as the editor wrote it; NULL keeps the model's unless the pick changed.
    con.execute("ALTER TABLE overrides ADD COLUMN headline VARCHAR")
    # run_verdicts as in migration 6, the override in force now chosen per run item (its pair or every pair).
    con.execute("""
        CREATE OR REPLACE VIEW run_verdicts AS
        WITH reviewers AS (
            SELECT DISTINCT name AS persona_id FROM prompt_versions WHERE kind = 'persona'
        ), refreshed AS (
            SELECT cache_key, max(generation) AS latest FROM verdicts WHERE generation > 1 GROUP BY cache_key
        ), item_override AS (
            SELECT i.run_id, i.pair_index, i.tool_id, i.persona_id, o.verdict, o.review
            FROM run_items i
            JOIN overrides o ON o.run_id = i.run_id AND o.tool_id = i.tool_id AND o.persona_id = i.persona_id
                            AND (o.pair_index IS NULL OR o.pair_index = i.pair_index)
            QUALIFY row_number() OVER (PARTITION BY i.run_id, i.pair_index, i.tool_id, i.persona_id
                                       ORDER BY o.created_at DESC, o.override_id DESC) = 1
        )
        SELECT i.run_id, i.pair_index, i.tool_id, t.name AS tool_name, i.rival_tool_id, i.persona_id,
               v.verdict_id, v.generation, v.persona_hash, v.model, coalesce(v.valid, false) AS valid,
               v.verdict AS model_verdict,
               CASE WHEN v.verdict_id IS NOT NULL THEN coalesce(o.verdict, v.verdict) END AS verdict,
               v.confidence, v.headline, v.attempt_count, v.created_at,
               v.verdict_id IS NOT NULL AND (o.verdict IS NOT NULL OR o.review IS NOT NULL) AS overridden
        FROM run_items i
        LEFT JOIN tools t ON t.tool_id = i.tool_id
        LEFT JOIN refreshed r ON r.cache_key = i.cache_key
        LEFT JOIN verdicts v ON v.cache_key = i.cache_key AND v.generation = coalesce(r.latest, 1)
        LEFT JOIN item_override o ON o.run_id = i.run_id AND o.pair_index = i.pair_index
                                 AND o.tool_id = i.tool_id AND o.persona_id = i.persona_id
        WHERE i.persona_id IN (SELECT persona_id FROM reviewers)""")


def _m009_journal_folds(con: duckdb.DuckDBPyConnection) -> None:
    # Which run-journal records are in the database: folding one again after a crash then adds nothing.
    con.execute("""
        CREATE TABLE journal_folds (
            record_id  VARCHAR PRIMARY KEY,      -- the record's id in <db>.journal.jsonl
            kind       VARCHAR NOT NULL,         -- run | items | answers | status
            run_id     VARCHAR NOT NULL,
            written_at TIMESTAMPTZ NOT NULL,     -- when it reached the journal
            folded_at  TIMESTAMPTZ NOT NULL      -- when it reached the database
        )""")


def _m010_attempt_cost(con: duckdb.DuckDBPyConnection) -> None:
    # What each attempt cost, and the prices (USD per million tokens) it was costed at, so a later price change
    # does not rewrite history. NULL: prices unknown when it was asked (every attempt from before this migration).
    con.execute("ALTER TABLE attempts ADD COLUMN cost_usd DOUBLE")
    con.execute("ALTER TABLE attempts ADD COLUMN price_input DOUBLE")
    con.execute("ALTER TABLE attempts ADD COLUMN price_output DOUBLE")


def _m011_probe_free_views(con: duckdb.DuckDBPyConnection) -> None:
    # Maintainers' compare/check runs leave the analysts' default views; `*_all` twins keep them; spend per run.
    create_views(con)


Migration = Callable[[duckdb.DuckDBPyConnection], None]
MIGRATIONS: list[tuple[int, str, Migration]] = [
    (1, "core", _m001_core),
    (2, "editorial", _m002_editorial),
    (6, "warehouse views", _m006_warehouse_views),
    (7, "run purpose", _m007_run_purpose),
    (8, "override pair and headline", _m008_override_pair),
    (9, "journal folds", _m009_journal_folds),
    (10, "attempt cost", _m010_attempt_cost),
    (11, "probe-free views and spend", _m011_probe_free_views),
]


def applied(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Migration numbers already applied to this database (works read-only once the table exists)."""
    if not con.execute("SELECT 1 FROM duckdb_tables() WHERE database_name = current_database() "
                       "AND schema_name = 'main' AND table_name = 'schema_migrations'").fetchall():
        if _holds_objects(con):  # someone else's database: giving it the panel schema would mix the two
            raise StoreError("not a panel database (it has tables of its own and no panel migration record); "
                             "give --db a panel database or a new file")
        con.execute("CREATE TABLE schema_migrations ("
                    "number INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)")
    return [row[0] for row in con.execute("SELECT number FROM schema_migrations ORDER BY number").fetchall()]


def _holds_objects(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the database has any table, view or sequence of its own (an empty DuckDB file has none)."""
    where = "database_name = current_database() AND NOT internal AND NOT temporary"
    return bool(con.execute(f"""SELECT 1 FROM duckdb_tables() WHERE {where} UNION ALL
                                SELECT 1 FROM duckdb_views() WHERE {where} UNION ALL
                                SELECT 1 FROM duckdb_sequences() WHERE database_name = current_database()
                                AND NOT temporary LIMIT 1""").fetchall())


def pending(con: duckdb.DuckDBPyConnection) -> list[tuple[int, str, Migration]]:
    """Migrations not yet applied; raise StoreError for a database from a newer panel."""
    done = applied(con)
    newest = MIGRATIONS[-1][0]
    if done and max(done) > newest:
        raise StoreError(f"database schema version {max(done)} is newer than this panel "
                         f"(knows up to {newest}): upgrade panel")
    return [m for m in MIGRATIONS if m[0] not in done]


def migrate(con: duckdb.DuckDBPyConnection) -> None:
    """Apply pending migrations, each in its own transaction with its record."""
    numbers = [m[0] for m in MIGRATIONS]
    assert numbers == sorted(set(numbers)), "migration numbers must be unique and ascending"
    for number, name, migration in pending(con):
        con.execute("BEGIN TRANSACTION")
        try:
            migration(con)
            con.execute("INSERT INTO schema_migrations VALUES (?, ?, now())", [number, name])
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
