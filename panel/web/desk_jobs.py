"""The desk's background work: "Ask again" on an edit panel, "Add a pair" on the runs list, and the job page.

Both posts start a job on the desk's one JobRunner (panel/jobs.py: one job at a time, each holding the writer
lock as the command it stands for does, so an edit meanwhile gets the desk's one-line 409 notice) with the
desk's settings (its endpoint, or the embedded model started for the job), and answer 303 to /jobs/<id>. The job
page is plain HTML that reloads itself every second while the job is queued or running (a
`<meta http-equiv="refresh">`: no script, and no CSP directive governs it), shows the verdicts landed of the
total and the phase, the one-line reason of a failure, and at the end links to the pair. The runner starts and
stops with the desk (the app's lifespan); a job still running when the desk stops is waited for CLOSE_WAIT_S.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from panel.answer_kinds import CHAIR_ID
from panel.ask_again import AskAgainOutcome
from panel.config import Settings
from panel.errors import CardError
from panel.jobs import JobRunner, JobStatus
from panel.pair_form import add_pair
from panel.pipeline import DraftOutcome
from panel.render import persona_labels
from panel.web.desk_forms import ASK_AGAIN_FIELDS, PAIR_FIELDS, ask_again_request, desk_message
from panel.web.guards import Rejected

if TYPE_CHECKING:
    from panel.web.desk import DeskApp

CLOSE_WAIT_S = 10.0  # a stopping desk waits this long for the running job (its answers are journaled as they land)
# Two cards at their longest (7,140 characters each with three links) and a title, percent-encoded UTF-8.
PAIR_FORM_MAX_BODY_BYTES = 160 * 1024
SHOWN_JOBS = 10  # the runs list shows the desk's latest jobs
_JOB_ID = re.compile(r"job-[1-9][0-9]{0,8}")


class DeskJobs:
    """The desk's JobRunner (started and closed by the app's lifespan) and the routes that use it."""

    def __init__(self, desk: DeskApp, settings: Settings) -> None:
        self.desk, self.settings = desk, settings
        self.runner: JobRunner | None = None
        self._pairs: dict[str, str] = {}  # an ask-again job's pair page, to link back to
        self._titles: dict[str, str] = {}  # what each job does, in the page's words

    @contextlib.asynccontextmanager
    async def lifespan(self, app: object) -> AsyncIterator[None]:
        """One JobRunner for as long as the desk serves; closed (queued jobs failed, the running one waited
        for) when it stops."""
        self.runner = JobRunner()
        try:
            yield
        finally:
            runner, self.runner = self.runner, None
            await asyncio.to_thread(runner.close, CLOSE_WAIT_S)

    def routes(self) -> list[Route]:
        """The routes of the desk's jobs."""
        return [
            Route("/runs/{run_id}/pairs/{number}/ask-again", self.ask_again, methods=["POST"]),
            Route("/pairs", self.add_pair, methods=["POST"], max_body_size=PAIR_FORM_MAX_BODY_BYTES),
            Route("/jobs/{job_id}", self.job_page, methods=["GET"]),
        ]

    def recent(self) -> list[tuple[JobStatus, str]]:
        """The desk's latest jobs, newest first, each with what it does."""
        statuses = list(reversed(self.runner.statuses()))[:SHOWN_JOBS] if self.runner else []
        return [(job, self._title(job)) for job in statuses]

    async def ask_again(self, request: Request) -> Response:
        """POST an "Ask again" form: queue ask_again of that reviewer (or the chair) with the note; 303 to its job."""
        fields = await self.desk.form(request, ASK_AGAIN_FIELDS)
        tally, pair = await self.desk.pair_of(request)
        asked = ask_again_request(fields, pair, self.desk.editor_of(request))
        job_id = self._running().ask_again(tally.run.run_id, asked, self.settings)
        self._pairs[job_id] = request.url.path.rsplit("/", 1)[0]
        who = persona_labels(tally)[asked.persona_id].title if asked.persona_id != CHAIR_ID else "the panel chair"
        side = next((side for side in pair.tools if side.tool_id == asked.tool_ref), None)
        about = side.tool.name if side else f"{pair.left.tool.name} vs {pair.right.tool.name}"
        self._titles[job_id] = f"Asking {who[:1].lower()}{who[1:]} again about {about}"  # "the skeptic"
        return RedirectResponse(f"/jobs/{job_id}", status_code=303)

    async def add_pair(self, request: Request) -> Response:
        """POST the "Add a pair" form: write its run and card files (card rules, one-line errors, fields kept on the
        form), then queue a review of it; 303 to its job."""
        fields = await self.desk.form(request, PAIR_FIELDS)
        runner = self._running()
        try:
            run_file = await self.desk.db(lambda: add_pair(fields, self.settings.runs_dir))
        except CardError as error:
            return await self.desk.runs(request, message=desk_message(error), form=fields, status_code=400)
        return RedirectResponse(f"/jobs/{runner.draft(run_file, self.settings)}", status_code=303)

    async def job_page(self, request: Request) -> Response:
        """GET a job: its progress while it runs (the page reloads itself), then its outcome and where to go next."""
        job_id = request.path_params["job_id"]
        try:
            job = self._running().status(job_id) if _JOB_ID.fullmatch(job_id) else None
        except KeyError:
            job = None
        if job is None:
            raise Rejected(404, "no such job (a restarted desk forgets its jobs)")
        return self.desk.page(request, "desk_job.html.j2", job=job, title=self._title(job), **self._outcome(job))

    def _title(self, job: JobStatus) -> str:
        return self._titles.get(job.job_id) or f"Reviewing {job.subject.rsplit('/', 1)[-1]}"

    def _outcome(self, job: JobStatus) -> dict[str, Any]:
        """What the job page links to and says at the end: the pair (asked again, or the new one) and the version."""
        version, back = None, self._pairs.get(job.job_id)
        if isinstance(job.result, AskAgainOutcome):
            version = job.result
        elif job.run_id is not None and (job.state == "finished" or isinstance(job.result, DraftOutcome)):
            back = f"/runs/{job.run_id}/pairs/1"  # the form makes runs of one pair
        return {"back": back, "version": version, "refresh": not job.done}

    def _running(self) -> JobRunner:
        if self.runner is None:
            raise Rejected(503, "the desk is starting or stopping: try again in a moment")
        return self.runner
