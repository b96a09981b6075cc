"""Migrations 1-11: the review pipeline's tables (runs, tools, pairs, verdicts, attempts, overrides, labels,
votes, journal folds, costs). Never edit or renumber a shipped one."""

from __future__ import annotations

import duckdb


def m001_core(con: duckdb.DuckDBPyConnection) -> None:
    """Migration 1: core."""
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


def m002_editorial(con: duckdb.DuckDBPyConnection) -> None:
    """Migration 2: editorial."""
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


def views_come_after(con: duckdb.DuckDBPyConnection) -> None:
    """Migrations 6 and 11 created views; views are now no migration's (store/views.py, recreated on every open)."""


def m007_run_purpose(con: duckdb.DuckDBPyConnection) -> None:
    """Migration 7: run purpose."""
    # Maintainers' compare/check runs are stored like reviews but are probes, not drafts to render.
    con.execute("ALTER TABLE runs ADD COLUMN purpose VARCHAR DEFAULT 'review'")


def m008_override_pair(con: duckdb.DuckDBPyConnection) -> None:
    """Migration 8: override pair and headline."""
    # An override belongs to one pair: a tool can sit in two pairs, and the chair is stored under its pair's left
    # tool. Rows from before this migration have no pair_index and still apply to every pair (as they did).
    con.execute("ALTER TABLE overrides ADD COLUMN pair_index INTEGER")
    # The chair's headline (or a reviewer's) as the editor wrote it; NULL keeps the model's unless the pick changed.
    con.execute("ALTER TABLE overrides ADD COLUMN headline VARCHAR")


def m009_journal_folds(con: duckdb.DuckDBPyConnection) -> None:
    """Migration 9: journal folds."""
    # Which run-journal records are in the database: folding one again after a crash then adds nothing.
    con.execute("""
        CREATE TABLE journal_folds (
            record_id  VARCHAR PRIMARY KEY,      -- the record's id in <db>.journal.jsonl
            kind       VARCHAR NOT NULL,         -- run | items | answers | status
            run_id     VARCHAR NOT NULL,
            written_at TIMESTAMPTZ NOT NULL,     -- when it reached the journal
            folded_at  TIMESTAMPTZ NOT NULL      -- when it reached the database
        )""")


def m010_attempt_cost(con: duckdb.DuckDBPyConnection) -> None:
    """Migration 10: attempt cost."""
    # What each attempt cost, and the prices (USD per million tokens) it was costed at, so a later price change
    # does not rewrite history. NULL: prices unknown when it was asked (every attempt from before this migration).
    con.execute("ALTER TABLE attempts ADD COLUMN cost_usd DOUBLE")
    con.execute("ALTER TABLE attempts ADD COLUMN price_input DOUBLE")
    con.execute("ALTER TABLE attempts ADD COLUMN price_output DOUBLE")
