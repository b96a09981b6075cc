"""Numbered schema changes, applied once, in order, each in a transaction with its record.

Add a migration by appending a function to MIGRATIONS; never edit or renumber a shipped one. Migrations make
tables, columns and sequences only: the views are defined once in store/views.py and (re)created after the
migrations by the schema check (store/schema.py). docs/schema.md describes the resulting tables and views.
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb

from panel.errors import StoreError


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


def _views_come_after(con: duckdb.DuckDBPyConnection) -> None:
    """Migrations 6 and 11 created views; views are now no migration's (store/views.py, recreated on every open)."""


def _m007_run_purpose(con: duckdb.DuckDBPyConnection) -> None:
    # Maintainers' compare/check runs are stored like reviews but are probes, not drafts to render.
    con.execute("ALTER TABLE runs ADD COLUMN purpose VARCHAR DEFAULT 'review'")


def _m008_override_pair(con: duckdb.DuckDBPyConnection) -> None:
    # An override belongs to one pair: a tool can sit in two pairs, and the chair is stored under its pair's left
    # tool. Rows from before this migration have no pair_index and still apply to every pair (as they did).
    con.execute("ALTER TABLE overrides ADD COLUMN pair_index INTEGER")
    # The chair's headline (or a reviewer's) as the editor wrote it; NULL keeps the model's unless the pick changed.
    con.execute("ALTER TABLE overrides ADD COLUMN headline VARCHAR")


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


def _m012_answer_versions(con: duckdb.DuckDBPyConnection) -> None:
    # An editor's "ask again": each new answer of one run item is a numbered version beside the model's original
    # (version 0, the run item's own cache key, never a row here); the editor's latest pick decides which the
    # page shows. Both tables are append-only: every version and every pick is kept.
    con.execute("CREATE SEQUENCE answer_version_seq")
    con.execute("""
        CREATE TABLE answer_versions (
            version_id  BIGINT PRIMARY KEY DEFAULT nextval('answer_version_seq'),
            run_id      VARCHAR NOT NULL,
            pair_index  INTEGER NOT NULL,
            tool_id     VARCHAR NOT NULL,
            persona_id  VARCHAR NOT NULL,
            number      INTEGER NOT NULL,        -- 1, 2, ... per run item (0 is the model's original)
            cache_key   VARCHAR NOT NULL,        -- the answer: verdicts.cache_key and generation
            generation  INTEGER NOT NULL,
            note        VARCHAR,                 -- the editor's note sent with the question; NULL: none
            editor      VARCHAR NOT NULL,        -- who asked
            created_at  TIMESTAMPTZ NOT NULL,
            UNIQUE (run_id, pair_index, tool_id, persona_id, number)
        )""")
    con.execute("CREATE SEQUENCE version_pick_seq")
    con.execute("""
        CREATE TABLE version_picks (
            pick_id     BIGINT PRIMARY KEY DEFAULT nextval('version_pick_seq'),
            run_id      VARCHAR NOT NULL,
            pair_index  INTEGER NOT NULL,
            tool_id     VARCHAR NOT NULL,
            persona_id  VARCHAR NOT NULL,
            number      INTEGER NOT NULL,        -- the version the page uses from now on (0: the original)
            editor      VARCHAR NOT NULL,
            created_at  TIMESTAMPTZ NOT NULL
        )""")


def _m013_approvals_and_publications(con: duckdb.DuckDBPyConnection) -> None:
    # The desk's editorial record, append-only: who approved a pair in which state, who published it where.
    # state_hash fingerprints what the pair's page showed (panel/editorial.py pair_state): an edit after an
    # approval changes it, so the approval no longer covers the page.
    con.execute("CREATE SEQUENCE approval_seq")
    con.execute("""
        CREATE TABLE approvals (
            approval_id  BIGINT PRIMARY KEY DEFAULT nextval('approval_seq'),
            run_id       VARCHAR NOT NULL,
            pair_index   INTEGER NOT NULL,       -- 0-based, as in pairs
            state_hash   VARCHAR NOT NULL,       -- the pair's state when approved
            editor       VARCHAR NOT NULL,
            approved_at  TIMESTAMPTZ NOT NULL
        )""")
    con.execute("CREATE SEQUENCE publication_seq")
    con.execute("""
        CREATE TABLE publications (
            publication_id BIGINT PRIMARY KEY DEFAULT nextval('publication_seq'),
            run_id         VARCHAR NOT NULL,
            pair_index     INTEGER NOT NULL,
            state_hash     VARCHAR NOT NULL,     -- the approved state the files show
            editor         VARCHAR NOT NULL,
            published_at   TIMESTAMPTZ NOT NULL,
            html_path      VARCHAR NOT NULL,     -- absolute paths of the files written (a republish replaces them)
            markdown_path  VARCHAR NOT NULL,
            html_sha256    VARCHAR NOT NULL      -- what was published, byte for byte
        )""")


def _m014_batches(con: duckdb.DuckDBPyConnection) -> None:
    # Batch mode (panel/batch/): each batch panel submitted or exported, what it covers, and which of its result
    # lines are stored, so collecting twice stores nothing twice and no request goes out in two live batches.
    con.execute("""
        CREATE TABLE batches (
            local_id      VARCHAR PRIMARY KEY,   -- panel's own id, sent as metadata panel_batch
            batch_id      VARCHAR,               -- the endpoint's id (batch_...); NULL until create answered
            plan_hash     VARCHAR NOT NULL,      -- hash of the custom ids it covers (metadata panel_plan)
            purpose       VARCHAR NOT NULL,      -- review | chair | compare | check | export
            run_ids_json  VARCHAR NOT NULL,      -- the runs whose verdicts it asks for
            endpoint      VARCHAR NOT NULL,      -- the endpoint identity of its cache keys (model/identity.py)
            base_url      VARCHAR,
            model         VARCHAR NOT NULL,
            mode          VARCHAR NOT NULL,
            sampling_json VARCHAR NOT NULL,
            price_input   DOUBLE,                -- the batch prices its lines are costed at (NULL: unknown)
            price_output  DOUBLE,
            state         VARCHAR NOT NULL,      -- pending | validating | in_progress | finalizing | completed |
                                                 -- failed | expired | cancelling | cancelled | unsent | exported
            input_file_id VARCHAR,
            output_file_id VARCHAR,
            error_file_id VARCHAR,
            request_count INTEGER NOT NULL,
            completed_count INTEGER NOT NULL,    -- as the endpoint last reported
            failed_count  INTEGER NOT NULL,
            created_at    TIMESTAMPTZ NOT NULL,
            updated_at    TIMESTAMPTZ NOT NULL,
            collected_at  TIMESTAMPTZ            -- every result line of its files is stored
        )""")
    con.execute("""
        CREATE TABLE batch_items (
            local_id      VARCHAR NOT NULL,
            custom_id     VARCHAR NOT NULL,      -- the verdict's cache key
            attempt       INTEGER NOT NULL,      -- which try at this key the line is (2+: a re-ask)
            run_id        VARCHAR NOT NULL,
            tool_id       VARCHAR NOT NULL,
            rival_tool_id VARCHAR NOT NULL,
            persona_id    VARCHAR NOT NULL,
            persona_hash  VARCHAR NOT NULL,
            template_hash VARCHAR NOT NULL,
            flags_json    VARCHAR NOT NULL,
            PRIMARY KEY (local_id, custom_id)
        )""")
    con.execute("""
        CREATE TABLE batch_lines (
            local_id      VARCHAR NOT NULL,
            custom_id     VARCHAR NOT NULL,
            status        VARCHAR NOT NULL,      -- ok | invalid | bad_response | api_error
            verdict_id    BIGINT NOT NULL,       -- the verdict (valid or not) this line stored
            stored_at     TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (local_id, custom_id)
        )""")


def _m015_subscribers(con: duckdb.DuckDBPyConnection) -> None:
    # The newsletter: sign-ups as append-only events (the current state is each address's latest), the tokens
    # mailed out (only their sha256 is kept), and every digest send, so a rerun sends only what is missing.
    con.execute("CREATE SEQUENCE subscriber_event_seq")
    con.execute("""
        CREATE TABLE subscriber_events (
            event_id    BIGINT PRIMARY KEY DEFAULT nextval('subscriber_event_seq'),
            address     VARCHAR NOT NULL,        -- normalised by email-validator
            kind        VARCHAR NOT NULL,        -- subscribe | confirm | unsubscribe
            token_hash  VARCHAR,                 -- subscribe: the confirmation token mailed; else the token used
            created_at  TIMESTAMPTZ NOT NULL
        )""")
    con.execute("""
        CREATE TABLE subscriber_tokens (
            token_hash  VARCHAR PRIMARY KEY,     -- sha256 of the token; the token itself is only in the mail
            address     VARCHAR NOT NULL,
            purpose     VARCHAR NOT NULL,        -- confirm | unsubscribe: a token does its one job only
            created_at  TIMESTAMPTZ NOT NULL,
            expires_at  TIMESTAMPTZ              -- NULL: never (an unsubscribe link keeps working)
        )""")
    con.execute("""
        CREATE TABLE digests (
            digest_id   VARCHAR PRIMARY KEY,     -- hash of the comparisons it holds
            subject     VARCHAR NOT NULL,
            pairs_json  VARCHAR NOT NULL,        -- [[run_id, pair_index], ...]
            since       TIMESTAMPTZ NOT NULL,
            until       TIMESTAMPTZ NOT NULL,
            created_at  TIMESTAMPTZ NOT NULL
        )""")
    con.execute("CREATE SEQUENCE digest_send_seq")
    con.execute("""
        CREATE TABLE digest_sends (
            send_id     BIGINT PRIMARY KEY DEFAULT nextval('digest_send_seq'),
            digest_id   VARCHAR NOT NULL,
            address     VARCHAR NOT NULL,
            status      VARCHAR NOT NULL,        -- sending (before SMTP) | sent | failed (a permanent 5xx)
            detail      VARCHAR,                 -- the SMTP server's reply to a failed send
            created_at  TIMESTAMPTZ NOT NULL
        )""")


Migration = Callable[[duckdb.DuckDBPyConnection], None]


def _m016_trust(con: duckdb.DuckDBPyConnection) -> None:
    # A persona's verdict when a jury of models or repeated samples answered it (panel/jury.py): the majority,
    # and every member's vote (JSON list of {member, sample, cache_key, verdict}; verdict null = abstained).
    con.execute("""
        CREATE TABLE consensus (
            run_id      VARCHAR NOT NULL,
            pair_index  INTEGER NOT NULL,
            tool_id     VARCHAR NOT NULL,
            persona_id  VARCHAR NOT NULL,
            verdict     VARCHAR,               -- ship | skip | split; NULL: every member abstained
            votes_json  VARCHAR NOT NULL,
            decided_at  TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (run_id, pair_index, tool_id, persona_id)
        )""")
    # What each `panel check` measured per persona version: the trust block shows the latest.
    con.execute("""
        CREATE TABLE check_flips (
            checked_at   TIMESTAMPTZ NOT NULL,
            run_id       VARCHAR NOT NULL,     -- the run checked
            persona_id   VARCHAR NOT NULL,
            persona_hash VARCHAR NOT NULL,
            variant      VARCHAR NOT NULL,     -- swapped | blinded
            flipped      INTEGER NOT NULL,
            compared     INTEGER NOT NULL
        )""")


MIGRATIONS: list[tuple[int, str, Migration]] = [
    (1, "core", _m001_core),
    (2, "editorial", _m002_editorial),
    (6, "warehouse views", _views_come_after),
    (7, "run purpose", _m007_run_purpose),
    (8, "override pair and headline", _m008_override_pair),
    (9, "journal folds", _m009_journal_folds),
    (10, "attempt cost", _m010_attempt_cost),
    (11, "probe-free views and spend", _views_come_after),
    (12, "answer versions", _m012_answer_versions),
    (13, "approvals and publications", _m013_approvals_and_publications),
    (14, "batches", _m014_batches),
    (15, "newsletter subscribers and digest sends", _m015_subscribers),
    (16, "jury consensus and check flips", _m016_trust),
]


def applied(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Migration numbers already applied to this database (works read-only once the table exists)."""
    if not con.execute(
        "SELECT 1 FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = 'main' AND table_name = 'schema_migrations'"
    ).fetchall():
        if _holds_objects(con):  # someone else's database: giving it the panel schema would mix the two
            raise StoreError(
                "not a panel database (it has tables of its own and no panel migration record); "
                "give --db a panel database or a new file"
            )
        con.execute(
            "CREATE TABLE schema_migrations ("
            "number INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
        )
    return [row[0] for row in con.execute("SELECT number FROM schema_migrations ORDER BY number").fetchall()]


def _holds_objects(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the database has any table, view or sequence of its own (an empty DuckDB file has none)."""
    where = "database_name = current_database() AND NOT internal AND NOT temporary"
    return bool(
        con.execute(f"""SELECT 1 FROM duckdb_tables() WHERE {where} UNION ALL
                                SELECT 1 FROM duckdb_views() WHERE {where} UNION ALL
                                SELECT 1 FROM duckdb_sequences() WHERE database_name = current_database()
                                AND NOT temporary LIMIT 1""").fetchall()
    )


def pending(con: duckdb.DuckDBPyConnection) -> list[tuple[int, str, Migration]]:
    """Migrations not yet applied; raise StoreError for a database from a newer panel."""
    done = applied(con)
    newest = MIGRATIONS[-1][0]
    if done and max(done) > newest:
        raise StoreError(
            f"database schema version {max(done)} is newer than this panel (knows up to {newest}): upgrade panel"
        )
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
