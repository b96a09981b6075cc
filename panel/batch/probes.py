"""Maintainers' probes by batch: `panel compare --batch` and `panel check --batch`.

Every run the probe asks is planned up front (compare.compare_runs: both sides of each run file;
consistency.check_runs: the run, then its sample swapped and blinded) and recorded with its purpose, so the probe
runs stay out of the analysts' default views as live ones do. Their missing verdicts go out in one batch (purpose
compare or check) under the same cache keys a live probe uses; failed lines go again in follow-up batches (or are
left to the live probe with `then_live`). Once no batch is live, the ordinary compare or check runs and finds
every answer cached. Rerunning the same command collects, as `panel review --batch` does.

    probe = batch_probe(compare_runs([run_file], settings, store), settings, "compare", wait=True)
    if probe.status in ("finished", "live"):
        result = compare([run_file], settings, store)  # nothing left to ask, or only what failed
"""

from __future__ import annotations

from dataclasses import dataclass, field

import openai

from panel.batch.collect import Collected
from panel.batch.draft import BatchProgress, BatchStep, RunJobs, batch_cost, drive
from panel.config import Settings
from panel.cost import RunCost
from panel.model.client import make_batch_client
from panel.review import PreparedRun
from panel.store import Store
from panel.store.batches import BatchRecord


@dataclass
class ProbeBatch:
    """Where a probe's batches stand: the step's counts, batches submitted and lines collected by this command."""

    purpose: str  # compare | check: the batch's and the runs' purpose
    settings: Settings
    then_live: bool
    step: BatchStep = field(default_factory=BatchStep)
    submitted: list[BatchRecord] = field(default_factory=list)
    collected: list[Collected] = field(default_factory=list)

    @property
    def in_flight(self) -> list[BatchRecord]:
        """Batches the endpoint is still working on: collect them by rerunning the command."""
        return self.step.in_flight

    @property
    def status(self) -> str:
        """waiting (a batch is live), live (failed lines go live), incomplete (a verdict failed every batch try),
        or finished (every verdict is stored)."""
        if self.in_flight:
            return "waiting"
        if self.then_live and self.step.answered < self.step.needed:
            return "live"
        return "incomplete" if self.step.exhausted else "finished"

    @property
    def cost(self) -> RunCost:
        """What the lines collected by this command cost at the batch prices."""
        return batch_cost(self.collected, self.settings)


def batch_probe(
    runs: list[PreparedRun],
    settings: Settings,
    purpose: str,
    *,
    wait: bool = False,
    then_live: bool = False,
    progress: BatchProgress | None = None,
    client: openai.OpenAI | None = None,
    poll_s: float = 5.0,
) -> ProbeBatch:
    """Fill the cache for every verdict `runs` need by batch: collect ended batches, submit what is missing.

    Without `wait` it returns once a batch is live (probe.in_flight); with it, it polls until none is.
    Raises EndpointError for an endpoint without the Batch API, BatchError when a batch is refused, StoreError.
    """
    store = Store(settings.db_path)
    client = client or make_batch_client(settings)
    probe = ProbeBatch(purpose, settings, then_live)

    def record_runs() -> list[RunJobs]:
        for run in runs:
            store.begin_run(run.run_id, run.spec, settings, run.personas, run.templates, run.jobs, run.purpose)
        return [(run.run_id, run.jobs) for run in runs]

    progress = progress or BatchProgress()
    probe.step = drive(store, client, settings, record_runs, purpose, then_live, wait, poll_s, progress, probe)
    return probe
