"""Migrations 12-16: the tables of the workflows built on the pipeline (answer versions, approvals and
publications, batches, the newsletter, jury consensus and check flips). Never edit or renumber a shipped one."""

from __future__ import annotations

import duckdb


def m012_answer_versions(con: duckdb.DuckDBPyConnection) -> None:
    """Migration 12: answer versions."""
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


def m013_approvals_and_publications(con: duckdb.DuckDBPyConnection) -> None:
    """Migration 13: approvals and publications."""
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


def m014_batches(con: duckdb.DuckDBPyConnection) -> None:
    """Migration 14: batches."""
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


def m015_subscribers(con: duckdb.DuckDBPyConnection) -> None:
    """Migration 15: newsletter subscribers and digest sends."""
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


def m016_trust(con: duckdb.DuckDBPyConnection) -> None:
    """Migration 16: jury consensus and check flips."""
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


def m017_verdict_probability(con: duckdb.DuckDBPyConnection) -> None:
    """Migration 17: the probability the model gave its verdict token, beside its self-reported confidence."""
    # NULL: the endpoint returned no token log-probabilities (panel/model/logprobs.py), or a verdict from before.
    con.execute("ALTER TABLE verdicts ADD COLUMN verdict_probability DOUBLE")
