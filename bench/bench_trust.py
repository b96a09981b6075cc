"""Benchmark the cost of trust: requests, tokens and wall time of a jury of 3 and of --samples 5, against the same
run with one model and one sample, every model a fixed-latency loopback fake (tests/fake_openai.py).

Each case drafts the same synthetic run into a fresh database (reviewers and chair; the chair is asked once per
pair whatever the jury), so nothing is cached; the ratios are each case over the single-model, single-sample one.

    .venv/bin/python bench/bench_trust.py
    .venv/bin/python bench/bench_trust.py --pairs 4 --latency 0.2
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for tests.helpers when run as a script

from panel.config import Settings  # noqa: E402
from panel.config_file import EndpointTable  # noqa: E402
from panel.pipeline import DraftOutcome, draft_run  # noqa: E402
from tests.fake_openai import FakeOpenAI, chair_responder, reference_responder  # noqa: E402
from tests.helpers import write_synthetic_run  # noqa: E402


def draft(folder: Path, run_file: Path, settings: Settings) -> tuple[DraftOutcome, float]:
    """Draft `run_file` into a fresh database under `folder`; return the outcome and its wall time."""
    settings = settings.with_overrides(db_path=folder / "panel.duckdb", out_dir=folder / "pages")
    started = time.perf_counter()
    outcome = draft_run(run_file, settings)
    return outcome, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2, help="pairs in the run (8 reviewer verdicts each)")
    parser.add_argument("--latency", type=float, default=0.1, help="seconds every fake takes per reply")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    responder = chair_responder(reference_responder({}))
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        run_file = write_synthetic_run(root, args.pairs, "Trust bench")
        fakes = [FakeOpenAI(responder=responder, latency=args.latency) for _ in range(3)]
        try:
            profiles = {f"m{i}": EndpointTable(base_url=f.base_url, model="fake-model") for i, f in enumerate(fakes)}
            base = Settings(
                endpoint_name="m0",
                base_url=fakes[0].base_url,
                model="fake-model",
                concurrency=args.concurrency,
                profiles=profiles,
            )
            cases = {
                "one model, one sample": base,
                "jury of 3": base.with_overrides(jury=("m0", "m1", "m2")),
                "--samples 5": base.with_overrides(samples=5),
            }
            results = {name: draft(root / str(i), run_file, s) for i, (name, s) in enumerate(cases.items())}
        finally:
            for fake in fakes:
                fake.stop()
    one, one_wall = results["one model, one sample"]
    print(
        f"{args.pairs} pairs ({args.pairs * 8} reviewer verdicts), fake latency {args.latency:g} s, "
        f"concurrency {args.concurrency}"
    )
    print(f"{'case':<24}{'requests':>10}{'tokens':>10}{'wall s':>9}{'× req':>8}{'× tok':>8}{'× wall':>8}")
    for name, (outcome, wall) in results.items():
        print(
            f"{name:<24}{outcome.requests:>10}{outcome.tokens:>10}{wall:>9.2f}"
            f"{outcome.requests / one.requests:>8.2f}{outcome.tokens / one.tokens:>8.2f}{wall / one_wall:>8.2f}"
        )


if __name__ == "__main__":
    main()
