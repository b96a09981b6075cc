"""Benchmark prompts laid out for prefix caches: the 8 reference verdicts on the embedded model, before and after.

One embedded llama.cpp server (verbose, so its log has llama.cpp's timings of every request) answers each arm in
turn, each arm with a fresh database (nothing cached):

- before: the user template from before the pair layout (bench/older_user.j2: tool under review first, a short
  rival block), the planned order (a tool's four personas, then the other tool's), log-probabilities on the answer;
- probe: the older layout and order, with log-probabilities from a short probe: what the probe alone changes;
- layout: today's templates and queue order (persona by persona, a pair's two reviews back to back), with the
  log-probabilities still on the answer: what the layout and order alone change;
- after: today's default, the layout and order with log-probabilities from a short probe (Settings.probes_logprobs).

Per arm: wall time, valid verdicts and attempts, and prompt tokens llama.cpp evaluated against prompt tokens sent
(its log: the prefix it reused, then what it evaluated). Then each arm's time against `before`; the target for
the 8 verdicts is <= 0.8x with the same verdict quality. `--check` also runs `panel check` (swapped and blinded
re-asks of all 8) with the older and today's templates and prints both flip rates. Arms alternate over --rounds.

    .venv/bin/python bench/bench_prefix.py
    .venv/bin/python bench/bench_prefix.py --rounds 2 --arms before,after --check
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from panel.config import Settings  # noqa: E402
from panel.consistency import BLINDED, SWAPPED, check  # noqa: E402
from panel.model.embedded import embedded_server  # noqa: E402
from panel.model.endpoint import Endpoint  # noqa: E402
from panel.review import prepare_run, review  # noqa: E402
from panel.store import Store  # noqa: E402

EXAMPLE_RUN = ROOT / "runs" / "example.yaml"
OLDER_USER_TEMPLATE = ROOT / "bench" / "older_user.j2"
TARGET = 0.8
# llama-cpp-python's verbose log: the prefix a request reused (only printed when it reused one), then per request
# llama.cpp's perf line with the prompt tokens it evaluated.
_REUSED = re.compile(rb"Llama\.generate: (\d+) prefix-match hit, remaining (\d+) prompt tokens to eval")
_EVALUATED = re.compile(rb"prompt eval time =\s*([\d.]+) ms /\s*(\d+) tokens")
_GENERATED = re.compile(rb"\s eval time =\s*([\d.]+) ms /\s*(\d+) runs")


@dataclass(frozen=True)
class Arm:
    name: str
    older_layout: bool  # the user template from before the pair layout
    planned_order: bool  # the run's planned order, not the embedded queue's prefix order
    probe: bool  # log-probabilities from a short probe request, not on the answer


ARMS = {
    "before": Arm("before", older_layout=True, planned_order=True, probe=False),
    "probe": Arm("probe", older_layout=True, planned_order=True, probe=True),
    "layout": Arm("layout", older_layout=False, planned_order=False, probe=False),
    "after": Arm("after", older_layout=False, planned_order=False, probe=True),
}


@dataclass
class Figures:
    seconds: float
    valid: int
    verdicts: int
    attempts: int
    requests: int
    sent: int
    evaluated: int
    eval_ms: float
    generated: int
    generate_ms: float


def prompts_folder(work: Path, older: bool) -> Path:
    """Today's prompts folder, or a copy whose user.j2 is the one from before the pair layout."""
    if not older:
        return ROOT / "prompts"
    folder = work / "older-prompts"
    if not folder.exists():
        shutil.copytree(ROOT / "prompts", folder)
        shutil.copy(OLDER_USER_TEMPLATE, folder / "user.j2")
    return folder


def log_figures(chunk: bytes) -> tuple[int, int, int, float, int, float]:
    """(requests, prompt tokens sent, prompt tokens evaluated, ms evaluating them, tokens generated, ms generating)
    in a stretch of the server's log."""
    requests = sent = evaluated = generated = 0
    eval_ms = generate_ms = 0.0
    reused = 0
    for line in chunk.splitlines():
        if found := _REUSED.search(line):
            reused = int(found.group(1))
        elif found := _EVALUATED.search(line):
            requests += 1
            eval_ms += float(found.group(1))
            evaluated += int(found.group(2))
            sent += reused + int(found.group(2))
            reused = 0
        elif found := _GENERATED.search(line):
            generate_ms += float(found.group(1))
            generated += int(found.group(2))
    return requests, sent, evaluated, eval_ms, generated, generate_ms


def run_arm(arm: Arm, base_url: str, log: Path, work: Path, round_number: int) -> Figures:
    """The 8 reference verdicts in a fresh database, on the running server; figures from the stored run and the log."""
    folder = work / f"{arm.name}-{round_number}"
    folder.mkdir()
    settings = Settings(
        db_path=folder / "panel.duckdb",
        prompts_dir=prompts_folder(work, arm.older_layout),
        personas_dir=ROOT / "personas",
        logprobs_probe=arm.probe,
    )
    prepared = prepare_run(EXAMPLE_RUN, settings)
    # The endpoint is the embedded model either way; marking it not embedded only keeps the planned order.
    endpoint = Endpoint(base_url, embedded=not arm.planned_order)
    offset = log.stat().st_size
    start = time.perf_counter()
    outcome = review(prepared, settings, Store(settings.db_path), endpoint=endpoint)
    seconds = time.perf_counter() - start
    time.sleep(0.5)  # the server's last perf lines
    requests, sent, evaluated, eval_ms, generated, generate_ms = log_figures(log.read_bytes()[offset:])
    valid = sum(1 for a in outcome.answers if a.verdict is not None)
    attempts = sum(len(a.attempts) for a in outcome.answers)
    return Figures(
        seconds, valid, len(outcome.answers), attempts, requests, sent, evaluated, eval_ms, generated, generate_ms
    )


def print_arm(arm: str, runs: list[Figures], baseline: float | None) -> None:
    seconds = statistics.median(f.seconds for f in runs)
    sent, evaluated = sum(f.sent for f in runs), sum(f.evaluated for f in runs)
    ratio = f"{seconds / baseline:5.2f}x" if baseline else "   - "
    valid = "/".join(f"{f.valid}/{f.verdicts}" for f in runs)
    attempts, requests = "/".join(str(f.attempts) for f in runs), "/".join(str(f.requests) for f in runs)
    print(
        f"{arm:7} {seconds:7.1f} s {ratio}  valid {valid:>11}  attempts {attempts:>7}  requests {requests:>7}  "
        f"prompt tokens evaluated/sent {evaluated:,}/{sent:,} = {evaluated / max(sent, 1):.2f}  "
        f"evaluating {sum(f.eval_ms for f in runs) / 1000 / len(runs):.1f} s  "
        f"generated {sum(f.generated for f in runs) // len(runs):,} tokens in "
        f"{sum(f.generate_ms for f in runs) / 1000 / len(runs):.1f} s"
    )


def consistency(work: Path) -> None:
    """`panel check` of all 8 verdicts, swapped and blinded, with the older and today's templates."""
    print("\npanel check (all 8 swapped and blinded; flips / verdicts probed):")
    for name, older in (("older layout", True), ("pair layout", False)):
        folder = work / f"check-{'older' if older else 'pair'}"
        folder.mkdir()
        settings = Settings(
            db_path=folder / "panel.duckdb", prompts_dir=prompts_folder(work, older), personas_dir=ROOT / "personas"
        )
        start = time.perf_counter()
        report = check(EXAMPLE_RUN, settings, Store(settings.db_path), sample=8)
        flips = {v: [sum(p.flips[v][i] for p in report.personas) for i in (0, 1)] for v in (SWAPPED, BLINDED)}
        ships = report.panel_ship_rate
        print(
            f"  {name:13} swapped {flips[SWAPPED][0]}/{flips[SWAPPED][1]}  blinded {flips[BLINDED][0]}/"
            f"{flips[BLINDED][1]}  ship rate {ships:.0%}  ({time.perf_counter() - start:.0f} s)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--arms", default="before,layout,after", help="comma-separated: " + ", ".join(ARMS))
    parser.add_argument("--check", action="store_true", help="also compare panel check's flip rates")
    args = parser.parse_args()
    arms = [ARMS[name] for name in args.arms.split(",")]
    results: dict[str, list[Figures]] = {arm.name: [] for arm in arms}
    with tempfile.TemporaryDirectory(prefix="bench-prefix-") as tmp:
        work = Path(tmp)
        log = work / "server.log"
        with embedded_server(log, verbose=True) as endpoint:
            for round_number in range(args.rounds):
                # Alternate the arms' order each round so neither always runs on a warmer machine.
                for arm in arms if round_number % 2 == 0 else arms[::-1]:
                    figures = run_arm(arm, endpoint.base_url, log, work, round_number)
                    print(f"  round {round_number + 1} {arm.name}: {figures.seconds:.1f} s", flush=True)
                    results[arm.name].append(figures)
        print(f"\n8 reference verdicts on the embedded model, median of {args.rounds} round(s):")
        baseline = statistics.median(f.seconds for f in results["before"]) if "before" in results else None
        for arm in arms:
            print_arm(arm.name, results[arm.name], baseline if arm.name != "before" else None)
        if baseline and "after" in results:
            ratio = statistics.median(f.seconds for f in results["after"]) / baseline
            print(f"after / before: {ratio:.2f}x (target <= {TARGET}x): {'met' if ratio <= TARGET else 'NOT met'}")
        if args.check:
            consistency(work)


if __name__ == "__main__":
    main()
