"""Every view of the panel database, defined once here and (re)created after the migrations on every open.

No migration creates a view: the store's schema check (store/schema.py) replaces any view that is missing or
whose SQL differs from the one below, so an old database and a new one end with the same views. To change a
view, change it here.

`panel compare` and `panel check` store their runs like reviews (runs.purpose 'compare' or 'check'). The default
views (run_verdicts, pair_summary, persona_answers, persona_by_version, persona_by_month, run_agreement) leave
those probes out; each has a twin named `<view>_all` holding every run, with a `purpose` column. Each pair is
built from one statement, so the two cannot drift. An answer counts as a review's when a review run asked for
it or one of a review run's items uses it (a verdict a compare asked for, reused by a later review, is a
review's). `spend` is one row per run, persona version and model with what its attempts cost, probes included
(they spend real money). docs/schema.md describes every column.

Two definitions are shared with the Store's reads: CURRENT_VERDICTS (Store.load_run, run_verdicts) and
GOLD_LABELS (Store.gold_labels, persona_answers).
"""

from __future__ import annotations

import duckdb


def current_verdicts(items: str | None = None) -> str:
    """A query: per run item (of run_items `i`, those matching the SQL condition `items` if given), its current
    verdict and the override in force.

    The current verdict is its cache key's highest generation (generations start at 1, so only refreshed keys
    need a max); an item never answered has NULL verdict columns but still names its persona. The override in
    force is the latest of the item's own pair's rows and old rows without a pair (a revert row, all NULL,
    changes nothing). `verdict` is what the page shows: the override's verdict, else the model's. The answer is
    the version the editor picked last (answer_versions, version_picks: an "ask again"), else the model's original;
    `version` is its number (0: the original), and the override applies on top of whichever it is.
    """
    keys = f" AND cache_key IN (SELECT i.cache_key FROM run_items i WHERE {items})" if items else ""
    items = items or "true"
    return f"""
    WITH refreshed AS (
        SELECT cache_key, max(generation) AS latest FROM verdicts WHERE generation > 1{keys} GROUP BY cache_key
    ), item_override AS (
        SELECT i.run_id, i.pair_index, i.tool_id, i.persona_id, o.verdict, o.review, o.headline, o.editor,
               o.created_at
        FROM run_items i
        JOIN overrides o ON o.run_id = i.run_id AND o.tool_id = i.tool_id AND o.persona_id = i.persona_id
                        AND (o.pair_index IS NULL OR o.pair_index = i.pair_index)
        WHERE {items}
        QUALIFY row_number() OVER (PARTITION BY i.run_id, i.pair_index, i.tool_id, i.persona_id
                                   ORDER BY o.created_at DESC, o.override_id DESC) = 1
    ), item_pick AS (
        SELECT p.run_id, p.pair_index, p.tool_id, p.persona_id, p.number, a.cache_key, a.generation
        FROM version_picks p
        LEFT JOIN answer_versions a ON a.run_id = p.run_id AND a.pair_index = p.pair_index
                                   AND a.tool_id = p.tool_id AND a.persona_id = p.persona_id AND a.number = p.number
        WHERE p.run_id IN (SELECT i.run_id FROM run_items i WHERE {items})
        QUALIFY row_number() OVER (PARTITION BY p.run_id, p.pair_index, p.tool_id, p.persona_id
                                   ORDER BY p.created_at DESC, p.pick_id DESC) = 1
    )
    SELECT i.run_id, i.pair_index, i.tool_id, i.rival_tool_id, i.persona_id, coalesce(pk.number, 0) AS version,
           v.verdict_id, v.generation, v.persona_hash, v.model, v.valid, v.verdict AS model_verdict,
           CASE WHEN v.verdict_id IS NOT NULL THEN coalesce(o.verdict, v.verdict) END AS verdict,
           v.confidence, v.headline AS model_headline, v.review AS model_review, v.key_points_json,
           v.attempt_count, v.flags_json, v.created_at,
           o.verdict AS override_verdict, o.review AS override_review, o.headline AS override_headline,
           o.editor AS override_editor, o.created_at AS override_at
    FROM run_items i
    LEFT JOIN item_pick pk ON pk.run_id = i.run_id AND pk.pair_index = i.pair_index
                          AND pk.tool_id = i.tool_id AND pk.persona_id = i.persona_id AND pk.cache_key IS NOT NULL
    LEFT JOIN refreshed r ON r.cache_key = i.cache_key
    LEFT JOIN verdicts v ON v.cache_key = coalesce(pk.cache_key, i.cache_key)
                        AND v.generation = coalesce(pk.generation, r.latest, 1)
    LEFT JOIN item_override o ON o.run_id = i.run_id AND o.pair_index = i.pair_index
                             AND o.tool_id = i.tool_id AND o.persona_id = i.persona_id
    WHERE {items}"""


# The label in force per (tool name, persona or overall, NULL): the latest of labels and editors' overrides. An
# override's latest row per item is in force; only ship/skip are labels: not a revert (NULL verdict), nor the
# chair's pick of a tool (test_labels: a chair override is not a gold label).
GOLD_LABELS = """
    SELECT tool_name, persona_id, verdict, source, review, created_at FROM (
        SELECT tool_name, persona_id, verdict, source, review, created_at, label_id AS seq FROM labels
        UNION ALL
        SELECT t.name, o.persona_id, o.verdict, 'override by ' || o.editor, o.review, o.created_at, o.override_id
        FROM (SELECT * FROM overrides
              QUALIFY row_number() OVER (PARTITION BY run_id, tool_id, persona_id
                                         ORDER BY created_at DESC, override_id DESC) = 1) o
        JOIN tools t ON t.tool_id = o.tool_id WHERE o.verdict IN ('ship', 'skip'))
    QUALIFY row_number() OVER (PARTITION BY tool_name, persona_id ORDER BY created_at DESC, seq DESC) = 1"""

# Reviewers are personas with a 'persona' prompt version (so not e.g. the chair).
_RUN_VERDICTS = """
    CREATE OR REPLACE VIEW {{name}} AS
    WITH reviewers AS (
        SELECT DISTINCT name AS persona_id FROM prompt_versions WHERE kind = 'persona'
    ), current AS ({current})
    SELECT c.run_id, c.pair_index, c.tool_id, t.name AS tool_name, c.rival_tool_id, c.persona_id,
           c.verdict_id, c.generation, c.persona_hash, c.model, coalesce(c.valid, false) AS valid,
           c.model_verdict, c.verdict, c.confidence, c.model_headline AS headline, c.attempt_count, c.created_at,
           c.verdict_id IS NOT NULL AND (c.override_verdict IS NOT NULL OR c.override_review IS NOT NULL)
               AS overridden{{purpose_column}}
    FROM current c
    LEFT JOIN runs ru ON ru.run_id = c.run_id
    LEFT JOIN tools t ON t.tool_id = c.tool_id
    WHERE c.persona_id IN (SELECT persona_id FROM reviewers){{only_reviews}}""".format(current=current_verdicts())

# Per pair, over the matching run_verdicts.
_PAIR_SUMMARY = """
    CREATE OR REPLACE VIEW {name} AS
    WITH sides AS MATERIALIZED (
        SELECT run_id, pair_index, tool_id < rival_tool_id AS low,
               count(*) FILTER (WHERE verdict = 'ship') AS ship,
               count(*) FILTER (WHERE verdict = 'skip') AS skip,
               count(*) FILTER (WHERE verdict IS NULL) AS missing,
               count(*) FILTER (WHERE overridden) AS overridden
        FROM run_verdicts{suffix} GROUP BY run_id, pair_index, low
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
           c.overridden, c.left_tool_id, c.right_tool_id{purpose_column}
    FROM counts c
    JOIN runs r ON r.run_id = c.run_id
    JOIN tools lt ON lt.tool_id = c.left_tool_id
    JOIN tools rt ON rt.tool_id = c.right_tool_id
    WHERE true{only_reviews}
    ORDER BY r.started_at, c.run_id, c.pair_index"""

# One row per stored answer with its persona version and gold, and its purpose: 'review' when a review run
# asked for it or uses it.
_PERSONA_ANSWERS = """
    CREATE OR REPLACE VIEW {name} AS
    WITH versions AS (
        SELECT content_hash, row_number() OVER (PARTITION BY name ORDER BY first_seen_at, content_hash)
               AS persona_version
        FROM prompt_versions WHERE kind = 'persona'
    ), gold AS ({gold}
    ), probe_keys AS (  -- answers a probe asked for (few: compare and check ask little) ...
        SELECT v.cache_key FROM verdicts v JOIN runs r ON r.run_id = v.run_id WHERE r.purpose <> 'review'
    ), adopted AS (  -- ... that a review run uses
        SELECT DISTINCT i.cache_key FROM run_items i JOIN runs r ON r.run_id = i.run_id
        WHERE r.purpose = 'review' AND i.cache_key IN (SELECT cache_key FROM probe_keys)
    )
    SELECT v.verdict_id, v.run_id, v.persona_id, v.persona_hash, pv.persona_version,
           date_trunc('month', timezone('UTC', v.created_at))::DATE AS month,
           v.tool_id, t.name AS tool_name, v.model, v.valid, v.verdict, v.confidence,
           v.attempt_count > 1 AS reasked, g.verdict AS label, g.source AS label_source,
           CASE WHEN v.valid AND g.verdict IS NOT NULL THEN v.verdict = g.verdict END AS agrees_with_label,
           v.created_at{purpose_column}
    FROM verdicts v
    LEFT JOIN runs ru ON ru.run_id = v.run_id
    LEFT JOIN tools t ON t.tool_id = v.tool_id
    JOIN versions pv ON pv.content_hash = v.persona_hash  -- reviewers only
    LEFT JOIN gold g ON g.tool_name = t.name AND g.persona_id = v.persona_id
    WHERE true{only_reviews}""".replace("{gold}", GOLD_LABELS)

# An answer's purpose in persona_answers: a review's when a review run asked for it or uses it (`adopted`).
_ANSWER_PURPOSE = (
    "CASE WHEN coalesce(ru.purpose, 'review') = 'review' OR v.cache_key IN (SELECT cache_key FROM adopted) "
    "THEN 'review' ELSE ru.purpose END"
)

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

_PERSONA_BY_VERSION = f"""
    CREATE OR REPLACE VIEW {{name}} AS
    SELECT persona_id, persona_version, persona_hash{{purpose_key}}, {_PERSONA_FIGURES}
    FROM persona_answers{{suffix}} GROUP BY persona_id, persona_version, persona_hash{{purpose_key}}
    ORDER BY persona_id, persona_version{{purpose_key}}"""

_PERSONA_BY_MONTH = f"""
    CREATE OR REPLACE VIEW {{name}} AS
    SELECT persona_id, month{{purpose_key}}, {_PERSONA_FIGURES}
    FROM persona_answers{{suffix}} GROUP BY persona_id, month{{purpose_key}}
    ORDER BY persona_id, month{{purpose_key}}"""

# Fleiss' kappa over the personas' own (model) verdicts: a subject is one tool of one pair, the raters are
# the personas. Subjects with fewer than two valid verdicts are left out, as in agreement.fleiss_kappa.
_RUN_AGREEMENT = """
    CREATE OR REPLACE VIEW {name} AS
    WITH subjects AS (
        SELECT run_id, count(*) FILTER (WHERE model_verdict = 'ship') AS ship,
               count(*) FILTER (WHERE model_verdict = 'skip') AS skip
        FROM run_verdicts{suffix} GROUP BY run_id, pair_index, tool_id < rival_tool_id
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
                     / (1 - (p.ship_share ** 2 + (1 - p.ship_share) ** 2)) END AS fleiss_kappa{purpose_column}
    FROM runs r LEFT JOIN per_run p ON p.run_id = r.run_id
    WHERE true{only_reviews}
    ORDER BY r.started_at, r.run_id"""

# Every attempt belongs to the run that asked for its verdict: a cached verdict costs the run reusing it nothing.
_SPEND = """
    CREATE OR REPLACE VIEW spend AS
    WITH per_run AS (  -- grouped before the run's title is joined on: strings are slow to group by
        SELECT v.run_id, v.persona_id, v.persona_hash, v.model,
               count(*) FILTER (WHERE a.number = 1) AS answers,  -- every asked verdict has a first attempt
               count(*) AS attempts,
               (count(*) + sum(a.sdk_retries))::BIGINT AS requests,
               sum(a.prompt_tokens)::BIGINT AS prompt_tokens,
               sum(a.completion_tokens)::BIGINT AS completion_tokens,
               sum(a.cost_usd) AS cost_usd,
               count(*) FILTER (WHERE a.cost_usd IS NULL) AS unpriced_attempts
        FROM attempts a JOIN verdicts v ON v.verdict_id = a.verdict_id
        GROUP BY v.run_id, v.persona_id, v.persona_hash, v.model
    )
    SELECT s.run_id, r.title AS run_title, coalesce(r.purpose, 'review') AS purpose, r.started_at,
           s.persona_id, s.persona_hash, s.model, s.answers, s.attempts, s.requests, s.prompt_tokens,
           s.completion_tokens, s.cost_usd, s.unpriced_attempts
    FROM per_run s LEFT JOIN runs r ON r.run_id = s.run_id
    ORDER BY r.started_at, s.run_id, s.persona_id, s.persona_hash, s.model"""


def corrected_rate_sql(source: str, keys: str) -> str:
    """A query: per `keys` group of `source` (rows of verdict, label: ship | skip | NULL), the judged ship rate, the
    labelled rate, and the prediction-powered estimate (Angelopoulos et al. 2023) with its 95% interval.

    The estimate is the judge's ship rate over the unlabelled rows plus the mean correction (label - judge) over the
    labelled ones; its variance var(judge)/N + var(correction)/n. With no unlabelled row it is the labelled rate.
    The labels-only interval (normal approximation) sits beside it for comparison.
    """
    return f"""
    WITH answers AS (
        SELECT {keys}, (verdict = 'ship')::DOUBLE AS judged, (label = 'ship')::DOUBLE AS labelled FROM {source}
    ), figures AS (
        SELECT {keys}, count(*) AS verdicts, avg(judged) AS judged_rate,
               count(labelled) AS labels, avg(labelled) AS labelled_rate,
               count(*) FILTER (WHERE labelled IS NULL) AS unlabelled,
               avg(judged) FILTER (WHERE labelled IS NULL) AS unlabelled_judged_rate,
               var_samp(judged) FILTER (WHERE labelled IS NULL) AS judged_var,
               avg(labelled - judged) AS correction, var_samp(labelled - judged) AS correction_var
        FROM answers GROUP BY {keys}
    ), estimates AS (
        SELECT *,
               CASE WHEN unlabelled > 0 THEN unlabelled_judged_rate + correction ELSE labelled_rate END
                   AS corrected_rate,
               1.96 * CASE WHEN unlabelled > 1 THEN sqrt(judged_var / unlabelled + correction_var / labels)
                           WHEN unlabelled = 0 THEN sqrt(labelled_rate * (1 - labelled_rate) / labels) END
                   AS corrected_margin,
               1.96 * sqrt(labelled_rate * (1 - labelled_rate) / labels) AS labels_margin
        FROM figures
    )
    SELECT {keys}, verdicts, judged_rate, labels, labelled_rate, corrected_rate,
           greatest(corrected_rate - corrected_margin, 0) AS corrected_low,
           least(corrected_rate + corrected_margin, 1) AS corrected_high,
           corrected_margin, labels_margin
    FROM estimates"""


# Per persona version, over every run's answers (a compare's candidate version has answers only there): its latest
# valid verdict per tool, so a tool asked many times (samples, a jury, reruns) counts once, as its label does.
_CORRECTED_RATES = """
    CREATE OR REPLACE VIEW corrected_rates AS
    {query}
    ORDER BY persona_id, persona_version""".format(
    query=corrected_rate_sql(
        """(SELECT persona_id, persona_version, persona_hash, verdict, label FROM persona_answers_all WHERE valid
            QUALIFY row_number() OVER (PARTITION BY persona_hash, tool_name ORDER BY created_at DESC,
                                       verdict_id DESC) = 1)""",
        "persona_id, persona_version, persona_hash",
    )
)


def _twins(con: duckdb.DuckDBPyConnection, statement: str, name: str, purpose: str | None = None) -> None:
    """Create `name` (editors' runs only) and `name_all` (every run, with its purpose) from one statement.

    `purpose` is the SQL expression of a row's purpose the statement filters on; without one, the statement
    aggregates a view that is already filtered, and its `_all` twin groups by `purpose` as well.
    """
    con.execute(
        statement.format(
            name=name,
            suffix="",
            purpose_column="",
            purpose_key="",
            only_reviews=f" AND {purpose} = 'review'" if purpose else "",
        )
    )
    con.execute(
        statement.format(
            name=f"{name}_all",
            suffix="_all",
            only_reviews="",
            purpose_column=f", {purpose} AS purpose" if purpose else "",
            purpose_key="" if purpose else ", purpose",
        )
    )


def create_views(con: duckdb.DuckDBPyConnection) -> None:
    """(Re)create every view (each analysts' view with its `_all` twin, and spend), in dependency order."""
    _twins(con, _RUN_VERDICTS, "run_verdicts", "ru.purpose")
    _twins(con, _PAIR_SUMMARY, "pair_summary", "r.purpose")
    _twins(con, _PERSONA_ANSWERS, "persona_answers", _ANSWER_PURPOSE)
    _twins(con, _PERSONA_BY_VERSION, "persona_by_version")
    _twins(con, _PERSONA_BY_MONTH, "persona_by_month")
    _twins(con, _RUN_AGREEMENT, "run_agreement", "r.purpose")
    con.execute(_CORRECTED_RATES)
    con.execute(_SPEND)
