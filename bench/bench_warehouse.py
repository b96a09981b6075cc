"""Benchmark the analysts' warehouse on a synthetic history (default 1,000,000 verdicts).

Generates the history with DuckDB bulk inserts (INSERT ... SELECT over range(), deterministic hashes for
"random" choices) into a fresh database made by Store, then times each analysts' view on a new read-only
connection, as the query alone and as `panel sql` runs it (schema check, query, every row fetched into
Python), and a Parquet export with the time its snapshot holds the database (what a writer would wait).
Prints rows, seconds per view, and database bytes per verdict.

    .venv/bin/python bench/bench_warehouse.py                 # 1M verdicts into bench/out/warehouse.duckdb
    .venv/bin/python bench/bench_warehouse.py --verdicts 100000 --keep
    .venv/bin/python bench/bench_warehouse.py --reuse --keep   # time again without reloading
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from panel.store import Store, connect
from panel.warehouse import export, open_warehouse, run_query, snapshot_database

OUT = Path(__file__).resolve().parent / "out"
PERSONAS = ("builder", "skeptic", "futurist", "business")
PAIRS_PER_RUN = 50
ITEMS_PER_RUN = PAIRS_PER_RUN * 2 * len(PERSONAS)
TOOLS = 5000
VERSIONS = 3
MONTHS = 24
REFRESH_EVERY = 49  # one item in 49 was refreshed: a second generation of its verdict
# The views that answer the analysts' questions, then the row-level views they build on (counted: fetching a
# million Python tuples measures Python, not the query).
ANSWER_VIEWS = ("pair_summary", "persona_by_version", "persona_by_month", "run_agreement", "spend")
ROW_VIEWS = ("run_verdicts", "persona_answers")
WORDS = (
    "primitive weekend latency pricing moat buyer budget thesis trend dependency competitor churn "
    "edge device inference privacy benchmark developer workflow integration roadmap retention "
    "margin seat usage enterprise open weights hosted API quantized document OCR pipeline cost "
    "vendor lock-in switching distribution wedge adoption platform risk regulation scale agent "
    "context window evaluation quality reliability support community ecosystem SDK docs"
).split()

# {u(i, k)}: a deterministic uniform number in [0, 1) for row i and stream k.
U = "((hash({i}, {k}) % 1000000) / 1000000.0)"


def u(i: str, k: int) -> str:
    """SQL for a deterministic uniform [0, 1) draw for row expression `i`, stream `k`."""
    return U.format(i=i, k=k)


def words(i: str, k: int, n: int) -> str:
    """SQL for `n` pseudo-random vocabulary words for row `i` (stream `k`), as one string."""
    vocab = "[" + ", ".join(f"'{w}'" for w in WORDS) + "]"
    pick = f"{vocab}[1 + (hash({i}, {k}, x) % {len(WORDS)})::INTEGER]"
    return f"array_to_string(list_transform(range({n}), lambda x: {pick}), ' ')"


def generate(path: Path, verdicts: int) -> dict[str, int]:
    """Create a database at `path` holding about `verdicts` verdicts; return rows per table."""
    runs = max(1, round(verdicts / (1 + 1 / REFRESH_EVERY)) // ITEMS_PER_RUN)
    items = runs * ITEMS_PER_RUN
    Store(path)  # the real schema, through the real migrations
    con = connect(path, read_only=False)
    try:
        con.execute("BEGIN TRANSACTION")
        personas = "[" + ", ".join(f"'{p}'" for p in PERSONAS) + "]"
        start = "TIMESTAMPTZ '2024-01-01 00:00:00+00'"
        days = MONTHS * 365 // 12
        con.execute(f"""
            INSERT INTO prompt_versions
            SELECT sha256(p || ':v' || v), 'persona', p, repeat('You are the ' || p || ' reviewer. ', 40),
                   {start} + to_days(((v - 1) * {days} // {VERSIONS})::INTEGER) - INTERVAL 1 DAY
            FROM unnest({personas}) AS t(p), range(1, {VERSIONS} + 1) AS s(v)""")
        con.execute(
            f"INSERT INTO prompt_versions VALUES (sha256('templates'), 'templates', 'prompts', '{{}}', {start})"
        )
        con.execute(f"""
            INSERT INTO tools
            SELECT sha256('tool' || k), 'Tool ' || k,
                   ['Developer Tools', 'Search', 'Agents', 'Vision', 'Voice'][1 + k % 5],
                   json_object('name', 'Tool ' || k, 'tagline', {words("k", 1, 8)},
                               'description', {words("k", 2, 60)})::VARCHAR,
                   '[]', {start}
            FROM range({TOOLS}) AS t(k)""")
        con.execute(f"""
            INSERT INTO runs
            SELECT substr(sha256('run' || r), 1, 12), 'Synthetic run ' || r, 'runs/bench-' || r || '.yaml',
                   CASE WHEN r % 3 = 0 THEN 'smollm2-135m-instruct' ELSE 'gpt-4o-mini' END,
                   CASE WHEN r % 3 = 0 THEN NULL ELSE 'https://api.example.com/v1' END,
                   CASE WHEN r % 3 = 0 THEN 'json_object_schema' ELSE 'json_schema' END,
                   '{{"temperature": 0.2, "max_tokens": 700, "seed": 7}}', 'finished',
                   {start} + to_seconds((r * {days} * 86400 // {runs})::BIGINT),
                   {start} + to_seconds((r * {days} * 86400 // {runs} + 1800)::BIGINT), 'review'
            FROM range({runs}) AS t(r)""")
        tool_no = "(((r * {n} + p * 2 + s) * 7919) % {tools})".replace("{n}", str(PAIRS_PER_RUN * 2)).replace(
            "{tools}", str(TOOLS)
        )
        con.execute(f"""
            INSERT INTO pairs
            SELECT substr(sha256('run' || r), 1, 12), p,
                   sha256('tool' || {tool_no.replace("s)", "0)")}), sha256('tool' || {tool_no.replace("s)", "1)")})
            FROM range({runs}) AS a(r), range({PAIRS_PER_RUN}) AS b(p)""")
        con.execute(f"""
            CREATE TEMP TABLE plan AS
            SELECT i, r, p, s, q, {personas}[q + 1] AS persona_id,
                   sha256('tool' || {tool_no}) AS tool_id,
                   sha256('tool' || {tool_no.replace("+ s)", "+ (1 - s))")}) AS rival_tool_id,
                   1 + (r * {VERSIONS}) // {runs} AS version
            FROM (SELECT i, i // {ITEMS_PER_RUN} AS r, (i // 8) % {PAIRS_PER_RUN} AS p, (i // 4) % 2 AS s,
                         i % 4 AS q FROM range({items}) AS t(i))""")
        con.execute("""
            INSERT INTO run_items
            SELECT substr(sha256('run' || r), 1, 12), p, tool_id, rival_tool_id, persona_id, sha256('item' || i)
            FROM plan""")
        # Ship odds differ by persona and move with the persona's version, so the views have something to show.
        ship_odds = "[0.8, 0.5, 0.7, 0.35][q + 1] + 0.05 * (version - 2)"
        for generation, where in ((1, "true"), (2, f"i % {REFRESH_EVERY} = 0")):
            g = generation * 10
            valid = f"{u('i', g)} >= 0.01"
            attempts = f"CASE WHEN NOT ({valid}) THEN 4 WHEN {u('i', g + 1)} < 0.08 THEN 2 ELSE 1 END"
            verdict = (
                f"CASE WHEN NOT ({valid}) THEN NULL WHEN {u('i', g + 2)} < {ship_odds} THEN 'ship' ELSE 'skip' END"
            )
            con.execute(f"""
                INSERT INTO verdicts (cache_key, generation, run_id, tool_id, rival_tool_id, persona_id,
                    persona_hash, template_hash, model, mode, sampling_json, verdict, confidence, headline,
                    review, key_points_json, raw_answer, valid, attempt_count, request_count, prompt_tokens,
                    completion_tokens, latency_s, flags_json, created_at)
                SELECT cache_key, {generation}, run_id, tool_id, rival_tool_id, persona_id, persona_hash,
                       sha256('templates'), model, mode, sampling_json, verdict, confidence, headline, review,
                       key_points_json,
                       CASE WHEN valid THEN json_object('verdict', verdict, 'confidence', confidence,
                            'headline', headline, 'review', review, 'key_points', key_points_json::JSON)::VARCHAR
                            ELSE '{{"verdict": "maybe"}}' END,
                       valid, attempts, attempts + (i % 17 = 0)::INTEGER, 850 + (i % 300), 120 + (i % 90),
                       0.8 + {u("i", g + 4)} * 4, '[]',
                       started_at + to_seconds((({generation} - 1) * 86400 * 7 + (i % {ITEMS_PER_RUN}) * 3)::BIGINT)
                FROM (
                    SELECT plan.i, sha256('item' || plan.i) AS cache_key, runs.run_id, plan.tool_id,
                           plan.rival_tool_id, plan.persona_id, sha256(plan.persona_id || ':v' || plan.version)
                           AS persona_hash, runs.model, runs.mode, runs.sampling_json, runs.started_at,
                           {verdict} AS verdict, {valid} AS valid, {attempts} AS attempts,
                           CASE WHEN {valid} THEN round(0.5 + {u("i", g + 3)} * 0.5, 2) END AS confidence,
                           CASE WHEN {valid} THEN {words("i", g + 5, 6)} END AS headline,
                           CASE WHEN {valid} THEN {words("i", g + 6, 45)} END AS review,
                           CASE WHEN {valid} THEN to_json([{words("i", g + 7, 3)}, {words("i", g + 8, 3)},
                                                          {words("i", g + 9, 3)}])::VARCHAR END AS key_points_json
                    FROM plan JOIN runs ON runs.run_id = substr(sha256('run' || plan.r), 1, 12)
                    WHERE {where})""")
        con.execute("""
            INSERT INTO attempts (verdict_id, number, status, http_status, error_class, error_message, raw_text,
                prompt_tokens, completion_tokens, latency_s, sdk_retries, started_at)
            SELECT v.verdict_id, n,
                   CASE WHEN n = v.attempt_count AND v.valid THEN 'ok' ELSE 'invalid' END, 200,
                   CASE WHEN n = v.attempt_count AND v.valid THEN NULL ELSE 'ValidationError' END,
                   CASE WHEN n = v.attempt_count AND v.valid THEN NULL
                        ELSE 'verdict: Input should be ''ship'' or ''skip''' END,
                   CASE WHEN n = v.attempt_count AND v.valid THEN v.raw_answer ELSE '{"verdict": "maybe"}' END,
                   v.prompt_tokens, v.completion_tokens, v.latency_s / v.attempt_count,
                   CASE WHEN n = 1 THEN v.request_count - v.attempt_count ELSE 0 END,
                   v.created_at - to_seconds(((v.attempt_count - n + 1) * 2)::BIGINT)
            FROM verdicts v, range(1, v.attempt_count + 1) AS t(n)""")
        labelled_tools = TOOLS // 6
        con.execute(f"""
            INSERT INTO labels (tool_name, persona_id, verdict, source, review, created_at)
            SELECT 'Tool ' || k, {personas}[q + 1],
                   CASE WHEN ((hash(k * 4 + q, 50 + e) % 1000000) / 1000000.0) < [0.7, 0.45, 0.65, 0.3][q + 1]
                        THEN 'ship' ELSE 'skip' END,
                   'editor', NULL, {start} + to_days((30 * e + k % 300)::INTEGER)
            FROM range({labelled_tools}) AS a(k), range({len(PERSONAS)}) AS b(q), range(2) AS c(e)
            WHERE e = 1 OR k % 5 = 0""")
        con.execute(f"""
            INSERT INTO overrides (run_id, tool_id, persona_id, verdict, review, editor, note, created_at)
            SELECT substr(sha256('run' || r), 1, 12), tool_id, persona_id,
                   CASE WHEN i % 2 = 0 THEN 'ship' ELSE 'skip' END, NULL, 'editor@example.com', 'bench',
                   {start} + to_days((r * {days} // {runs})::INTEGER) + INTERVAL 2 DAY
            FROM plan WHERE i % 997 = 0""")
        con.execute("COMMIT")
        tables = [
            row[0]
            for row in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE NOT temporary ORDER BY table_name"
            ).fetchall()
        ]
        counts = {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchall()[0][0] for t in tables}
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return counts


def time_view(path: Path, view: str, repeat: int) -> tuple[int, float, float]:
    """Rows, and median seconds over `repeat` cold connections of: the query alone (DuckDB computes every row),
    and the whole of `panel sql` (connect, schema check, query, every row fetched into Python)."""
    query_s, total_s = [], []
    rows = 0
    for _ in range(repeat):
        started = time.perf_counter()
        with open_warehouse(path) as con:
            con.execute(f"SELECT * FROM {view}")
        query_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        rows = len(run_query(path, f"SELECT * FROM {view}", timeout_s=120).rows)
        total_s.append(time.perf_counter() - started)
    return rows, statistics.median(query_s), statistics.median(total_s)


def time_count(path: Path, view: str, repeat: int) -> tuple[int, float]:
    """Rows of a row-level view and the median seconds of `panel sql "SELECT count(*) FROM (SELECT * ...)"`."""
    seconds = []
    rows = 0
    for _ in range(repeat):
        started = time.perf_counter()
        rows = run_query(path, f"SELECT count(*) FROM (SELECT * FROM {view})", timeout_s=120).rows[0][0]
        seconds.append(time.perf_counter() - started)
    return rows, statistics.median(seconds)


def main(argv: list[str] | None = None) -> None:
    """Generate the history, then time every view and an export in a fresh process; print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verdicts", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, default=OUT / "warehouse.duckdb")
    parser.add_argument("--repeat", type=int, default=3, help="cold runs per view (the median is printed)")
    parser.add_argument("--keep", action="store_true", help="keep the database and export afterwards")
    parser.add_argument("--reuse", action="store_true", help="time the database a --keep run left, without loading")
    args = parser.parse_args(argv)
    if not (args.reuse and args.db.exists()):
        for stale in (args.db, args.db.with_name(args.db.name + ".wal")):
            stale.unlink(missing_ok=True)
        args.db.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        counts = generate(args.db, args.verdicts)
        print(
            f"loaded {counts['verdicts']:,} verdicts ({sum(counts.values()):,} rows in {len(counts)} tables) "
            f"in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
        # Timed in a fresh process, as `panel sql` runs: after a million-row load this one's allocator is
        # warm with garbage and DuckDB's first queries here run up to twice as slow.
        subprocess.run(
            [sys.executable, __file__, "--reuse", "--keep", "--db", str(args.db), "--repeat", str(args.repeat)],
            check=True,
        )
    else:
        time_database(args.db, args.repeat)
    if not args.keep:
        args.db.unlink(missing_ok=True)
        shutil.rmtree(args.db.parent / "export", ignore_errors=True)


def time_database(db: Path, repeat: int) -> None:
    """Print the database's rows and size, each view's timings, and the export's."""
    counts = {
        name: run_query(db, f'SELECT count(*) FROM "{name}"').rows[0][0]
        for (name,) in run_query(db, "SELECT table_name FROM duckdb_tables() WHERE NOT temporary ORDER BY 1").rows
    }
    size = db.stat().st_size
    print("  " + ", ".join(f"{name} {n:,}" for name, n in counts.items()))
    print(f"database: {size:,} bytes = {size / counts['verdicts']:,.0f} bytes per verdict")
    print(f"load average before timing: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'view':<20} {'rows':>10} {'query s':>8} {'panel sql s':>12}   median of {repeat} cold connections")
    slowest = 0.0
    for view in ANSWER_VIEWS:
        rows, query_s, total_s = time_view(db, view, repeat)
        slowest = max(slowest, total_s)
        print(f"{view:<20} {rows:>10,} {query_s:>8.3f} {total_s:>12.3f}")
    latest = run_query(db, "SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1").rows[0][0]
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        rows = len(run_query(db, f"SELECT * FROM pair_summary WHERE run_id = '{latest}'").rows)
        seconds.append(time.perf_counter() - started)
    print(
        f"{'  one run':<20} {rows:>10,} {'':>8} {statistics.median(seconds):>12.3f}   (pair_summary WHERE run_id = ...)"
    )
    for view in ROW_VIEWS:
        rows, seconds = time_count(db, view, repeat)
        print(f"{view:<20} {rows:>10,} {'':>8} {seconds:>12.3f}   (count(*) over the view)")
    snapshot = db.with_name("snapshot.duckdb")
    started = time.perf_counter()
    snapshot_database(db, snapshot)
    print(f"snapshot for export: the database is held {time.perf_counter() - started:.2f} s")
    snapshot.unlink()
    started = time.perf_counter()
    written = export(db, db.parent / "export", "parquet")
    export_s = time.perf_counter() - started
    parquet_bytes = sum(item.path.stat().st_size for item in written)
    print(f"export parquet: {len(written)} files, {parquet_bytes:,} bytes, {export_s:.1f} s")
    print(f"slowest view through panel sql / 1 s budget: {slowest:.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
