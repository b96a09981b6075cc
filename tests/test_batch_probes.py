"""`panel compare --batch` and `panel check --batch` against the fake's Batch API, through the real SDK: the same
report as live on the same scripted fake, a second run sends nothing, the runs stay probes, costs at batch price,
and a kill -9 during the collect then a rerun stores each answer once."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from panel.batch.probes import batch_probe
from panel.compare import compare, compare_runs
from panel.config import Settings
from panel.consistency import check, check_runs
from panel.store import Store
from panel.warehouse import run_query
from tests.fake_openai import FakeOpenAI
from tests.helpers import PANEL, batch_lines_stored, chat_requests, copy_db, run_panel, write_synthetic_run
from tests.persona_edit import (
    edit_skeptic,
    persona_and_tool,
    reviewed,
    shown_first,
    strict_skeptic_responder,
    write_six_tool_run,
)

PRICES = ["--price-input", "0.15", "--price-output", "0.60"]


def order_sensitive_responder(body: dict[str, Any]) -> str:
    """Ship everything, except a skeptic shown the rival first, and a futurist shown blinded names: they skip."""
    persona, tool, _ = persona_and_tool(body)
    rival_first = not shown_first(body)
    skip = (persona == "skeptic" and rival_first) or (persona == "futurist" and tool.startswith("Tool "))
    verdict = "skip" if skip else "ship"
    return json.dumps(
        {
            "verdict": verdict,
            "confidence": 0.8,
            "headline": f"{persona} says {verdict} on {tool}",
            "review": f"{tool} was weighed from the {persona} seat against its rival on the stated evidence.",
            "key_points": [f"{persona} on {tool}"],
        }
    )


def _cli(command: str, run_file: Path, settings: Settings, server: FakeOpenAI, db: Path, *extra: str) -> list[str]:
    args = [command, str(run_file), "--personas-dir", str(settings.personas_dir), "--base-url", server.base_url]
    return [*args, "--model", "fake-model", "--db", str(db), *PRICES, *extra]


def _report_lines(stdout: str) -> list[str]:
    """What a compare or check reports, without its cost lines, progress lines and batch lines."""
    skip = ("cost ", "live: ", "  asked ", "report: ", "requests: ", "batch ", "collected ", "  batch_")
    skip += ("compare by", "check by")
    return [line for line in stdout.splitlines() if line.strip() and not line.startswith(skip)]


def _verdict_counts(db: Path) -> dict[str, int]:
    with Store(db).reader() as con:
        return dict(con.execute("SELECT cache_key, count(*) FROM verdicts GROUP BY cache_key").fetchall())


def test_compare_by_batch_prints_the_live_report_and_a_rerun_sends_nothing(workspace: Settings, tmp_path: Path):
    run_file = write_six_tool_run(tmp_path)
    with FakeOpenAI(responder=strict_skeptic_responder) as server:
        settings = reviewed(server, workspace, run_file)
        edit_skeptic(settings)
        (tmp_path / "live").mkdir()
        live_db = copy_db(settings.db_path, tmp_path / "live")
        live = run_panel(*_cli("compare", run_file, settings, server, live_db, "--html", str(tmp_path / "live.html")))
        assert live.returncode == 0, live.stderr
        asked_live = len(chat_requests(server))
        args = _cli("compare", run_file, settings, server, settings.db_path, "--batch", "--wait", "--poll-seconds", "0")
        batched = run_panel(*args, "--html", str(tmp_path / "batch.html"))
        assert batched.returncode == 0, batched.stderr
        assert len(chat_requests(server)) == asked_live  # nothing went live
        [batch] = server.batch_api.batches.values()
        assert len(batch.requests) == 6  # only the edited skeptic: the unchanged side is cached
        assert _report_lines(batched.stdout) == _report_lines(live.stdout)
        assert "requests: before 0, after 6" in live.stdout and "requests: before 0, after 0" in batched.stdout
        assert (
            "3 verdict(s) flipped" in batched.stdout and "skeptic on Delta (label: skip): ship → skip" in batched.stdout
        )
        # The printed cost is at the batch price (half of 0.15 / 0.60), and nothing was spent live.
        assert re.search(r"^cost \$\S+ \(.* at \$0\.075/\$0\.30 per M\) \(batch price\)$", batched.stdout, re.M)
        assert "live: " not in batched.stdout
        counts = _verdict_counts(settings.db_path)

        # The same command again (default base: the version the review used) finds everything stored.
        again = run_panel(*args, "--html", str(tmp_path / "again.html"))
        assert again.returncode == 0, again.stderr
        assert len(server.batch_api.batches) == 1 and len(chat_requests(server)) == asked_live
        assert _report_lines(again.stdout) == _report_lines(live.stdout)
        assert _verdict_counts(settings.db_path) == counts and set(counts.values()) == {1}
    db = settings.db_path
    # The batch says what it was for; its runs stay probes, out of the default views; spend counts it at batch price.
    assert run_query(db, "SELECT purpose, state, request_count FROM batches").rows == [("compare", "completed", 6)]
    assert run_query(db, "SELECT DISTINCT purpose FROM runs ORDER BY 1").rows == [("compare",), ("review",)]
    assert run_query(
        db, "SELECT persona_version, answers FROM persona_by_version WHERE persona_id = 'skeptic'"
    ).rows == [(1, 6)]  # the edited skeptic answered for the compare only
    spent = run_query(
        db, "SELECT purpose, sum(attempts), sum(cost_usd) FROM spend WHERE purpose = 'compare' GROUP BY 1"
    )
    with Store(db).reader() as con:
        prices = con.execute(
            "SELECT DISTINCT a.price_input, a.price_output FROM attempts a JOIN verdicts v USING (verdict_id) "
            "JOIN runs r USING (run_id) WHERE r.purpose = 'compare'"
        ).fetchall()
    assert prices == [(0.075, 0.30)]
    assert spent.rows[0][:2] == ("compare", 6) and spent.rows[0][2] > 0


def test_check_by_batch_ends_with_the_live_report(settings: Settings, tmp_path: Path):
    run_file = write_six_tool_run(tmp_path)
    with FakeOpenAI(responder=order_sensitive_responder) as server:
        live_settings = settings.with_overrides(base_url=server.base_url, model="fake-model")
        live = check(run_file, live_settings, Store(live_settings.db_path), sample=8)
        asked_live = len(chat_requests(server))
        batch_settings = live_settings.with_overrides(db_path=tmp_path / "batch.duckdb")
        runs = check_runs(run_file, batch_settings, sample=8)
        probe = batch_probe(runs, batch_settings, "check", wait=True, poll_s=0.0)
        keys = {job.cache_key for run in runs for job in run.jobs}  # blinded pairs of look-alike cards share keys
        assert probe.status == "finished" and probe.step.answered == probe.step.needed == len(keys)
        report = check(run_file, batch_settings, Store(batch_settings.db_path), sample=8)
        assert len(chat_requests(server)) == asked_live and report.requests == 0
        again = batch_probe(runs, batch_settings, "check", wait=True, poll_s=0.0)
        assert again.submitted == [] and again.collected == [] and len(server.batch_api.batches) == 1
    assert [(p.persona_id, p.tool_name, p.variant, p.flipped) for p in report.probes] == [
        (p.persona_id, p.tool_name, p.variant, p.flipped) for p in live.probes
    ]
    assert [(p.persona_id, p.flips, p.ship_rate, p.problems) for p in report.personas] == [
        (p.persona_id, p.flips, p.ship_rate, p.problems) for p in live.personas
    ]
    assert sum(p.flipped for p in report.probes) > 0 and report.failed == live.failed
    db = batch_settings.db_path
    assert run_query(db, "SELECT purpose FROM batches").rows == [("check",)]
    assert run_query(db, "SELECT purpose, count(*) FROM runs GROUP BY 1").rows == [("check", 3)]
    assert run_query(db, "SELECT count(*) FROM run_verdicts").rows == [(0,)]  # probes: in no default view


def test_check_by_batch_without_wait_prints_the_batch_and_a_rerun_collects(settings: Settings, tmp_path: Path):
    run_file = write_six_tool_run(tmp_path)
    with FakeOpenAI(responder=order_sensitive_responder) as server:
        args = ["check", str(run_file), "--sample", "4", "--base-url", server.base_url, "--model", "fake-model"]
        first = run_panel(*args, "--batch")
        assert first.returncode == 0, first.stderr
        assert "batch batch_fake0001 submitted: 30 requests (check)" in first.stdout  # 24 + 4 + 4, two blinded alike
        assert "rerun `panel check ... --batch` to collect" in first.stdout and "Consistency" not in first.stdout
        for _ in range(10):  # each rerun polls the fake once, which moves its batch a step
            rerun = run_panel(*args, "--batch")
            if "Consistency of run" in rerun.stdout:
                break
        assert rerun.returncode == 1, rerun.stderr  # the futurist flips when blinded: the check fails, as live
        assert "check by batch (finished): 30 of 30 verdicts stored" in rerun.stdout
        assert "blinded flip rate 100% is over 25%" in rerun.stdout and chat_requests(server) == []
    wrong = run_panel("check", str(run_file), "--wait")
    assert wrong.returncode == 2 and "--wait and --then-live go with --batch" in wrong.stderr


def test_a_compare_stopped_halfway_compares_the_same_sides_when_rerun(workspace: Settings, tmp_path: Path):
    run_file = write_six_tool_run(tmp_path)
    with FakeOpenAI(responder=strict_skeptic_responder) as server:
        settings = reviewed(server, workspace, run_file)
        edit_skeptic(settings)
        store = Store(settings.db_path)
        budgeted = settings.with_overrides(max_requests=3)  # the after side stops with 3 of its 6 answers
        compare([run_file], budgeted, store)
        rest = compare([run_file], settings, store)
        assert rest.requests == {"before": 0, "after": 3}
        assert [f.tool_name for f in rest.flips] == ["Charlie", "Delta", "Echo"]
        planned = compare_runs([run_file], settings, store)  # what --batch sends: the same two runs
        stored = run_query(settings.db_path, "SELECT run_id FROM runs WHERE purpose = 'compare'").rows
        assert len(planned) == 2 and {run.run_id for run in planned} == {row[0] for row in stored}


def test_kill_during_a_check_collect_then_rerun_stores_each_answer_once(fake: FakeOpenAI, tmp_path: Path):
    pairs = 40  # 320 verdicts, and 320 swapped and 320 blinded: a collect of two chunks
    run_file = write_synthetic_run(tmp_path / "runs", pairs)
    fake.batch_api.content_delay = 0.1  # 64 KiB a step: the collect takes a few seconds
    args = ["check", str(run_file), "--batch", "--wait", "--poll-seconds", "0.05"]
    args += ["--base-url", fake.base_url, "--model", "fake-model"]
    db = Path(os.environ["PANEL_DB"])
    child = subprocess.Popen([*PANEL, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (fake.batch_api.downloads and batch_lines_stored(db) > 0):
        assert child.poll() is None and time.monotonic() < deadline, "the collect never started"
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    kept = batch_lines_stored(db)
    assert 0 < kept < pairs * 8 * 3, f"the kill did not land mid-collect ({kept} lines stored)"
    rerun = run_panel(*args, timeout=300)
    # The report is printed (exit 1 is the check's own verdict on this panel, as live), from the cache.
    assert rerun.returncode in (0, 1) and "Traceback" not in rerun.stderr, rerun.stderr
    assert "Consistency of run" in rerun.stdout and "0 requests made" in rerun.stdout
    assert f"{pairs * 8 * 3 - kept:,} stored, {kept:,} already stored" in rerun.stdout
    counts = _verdict_counts(db)
    assert len(counts) == pairs * 8 * 3 and set(counts.values()) == {1}
    sent = [r["custom_id"] for batch in fake.batch_api.batches.values() for r in batch.requests]
    assert len(sent) == len(set(sent)) == pairs * 8 * 3  # one batch, never resent
    assert chat_requests(fake) == []


@pytest.mark.parametrize("command", ["compare", "check"])
def test_probe_batch_needs_an_endpoint_with_the_batch_api(command: str, workspace: Settings, tmp_path: Path):
    run_file = write_six_tool_run(tmp_path)
    edit_skeptic(workspace)
    result = run_panel(command, str(run_file), "--personas-dir", str(workspace.personas_dir), "--batch")
    assert result.returncode == 2 and "error: --batch needs an endpoint with the Batch API" in result.stderr
    assert "Traceback" not in result.stderr
