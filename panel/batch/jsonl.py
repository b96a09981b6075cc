"""The OpenAI batch format, both ways: request lines out (custom_id = the verdict's cache key, body = exactly what a
live request sends), result lines in, each judged by the same rules as a live answer.

A result line is {"custom_id", "response": {"status_code", "body"}, "error"}; OpenAI's output and error files,
vLLM's run_batch output and any engine that reads the format write it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Literal

from panel.answer_kinds import kind_for
from panel.answers import Attempt, VerdictJob
from panel.ask import MalformedResponse, reply_text, request_body
from panel.config import Settings
from panel.model.modes import Mode, get_mode
from panel.model.replies import reply_json, reply_usage
from panel.store.batches import BatchItem, BatchRecord, CollectedLine
from panel.verdict import InvalidAnswer, parse_verdict

CHAT_PATH: Literal["/v1/chat/completions"] = "/v1/chat/completions"
# A verdict's result line is a few KB; a line past this is no answer panel asked for. It is skipped unread (its
# request counts missing and is asked again), so one huge line costs neither memory nor a 50 MB stored text.
MAX_LINE_BYTES = 4 * 1024 * 1024
READ_BYTES = 64 * 1024


@dataclass(frozen=True)
class BatchRequest:
    """One request of a batch: the job (and its run), the messages it sends, and which try at the key it is."""

    run_id: str
    job: VerdictJob
    messages: list[dict[str, str]]
    attempt: int = 1

    def item(self, local_id: str) -> BatchItem:
        """The request as the batch_items row that stores what it covers."""
        job = self.job
        return BatchItem(
            local_id,
            job.cache_key,
            self.attempt,
            self.run_id,
            job.tool.card_hash,
            job.rival.card_hash,
            job.persona.id,
            job.persona.content_hash,
            job.template_hash,
            json.dumps(job.tool.flags, ensure_ascii=False),
        )


def request_line(request: BatchRequest, settings: Settings, mode: Mode) -> dict[str, Any]:
    """A batch input line: the live request's body under the verdict's cache key."""
    body = request_body(request.messages, settings, mode, request.job.answer_model)
    return {"custom_id": request.job.cache_key, "method": "POST", "url": CHAT_PATH, "body": body}


def write_requests(out: IO[str], requests: Iterable[BatchRequest], settings: Settings, mode: Mode) -> int:
    """Write one JSON line per request to `out` as it goes (nothing held whole); how many were written."""
    count = 0
    for request in requests:
        out.write(json.dumps(request_line(request, settings, mode), ensure_ascii=False) + "\n")
        count += 1
    return count


def write_requests_file(path: Path, requests: Iterable[BatchRequest], settings: Settings, mode: Mode) -> int:
    """write_requests into `path` (replaced whole only once written: a crash leaves no half file under its name)."""
    partial = path.with_name(path.name + ".partial")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(partial, "w", encoding="utf-8") as out:
        count = write_requests(out, requests, settings, mode)
    partial.replace(path)
    return count


@dataclass
class LineCounts:
    """What reading result lines found: judged lines by status, and lines that could not be used."""

    ok: int = 0
    invalid: int = 0  # answered, but the answer does not validate (or is no completion)
    errors: int = 0  # the endpoint reported an error for the request
    malformed: int = 0  # the line is not JSON (a truncated file, nesting too deep) or has no custom_id
    oversized: int = 0  # the line is over MAX_LINE_BYTES: skipped unread
    unknown: int = 0  # a custom_id no batch of this database asked for
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, other: LineCounts) -> None:
        """Add another count into this one."""
        for name in vars(self):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def bounded_lines(chunks: Iterable[bytes], limit: int = MAX_LINE_BYTES) -> Iterator[bytes | None]:
    """The lines of a byte stream (read in chunks, never whole), each without its newline; None for a line over
    `limit` bytes, whose bytes are dropped as they come."""
    pending, over = bytearray(), False
    for chunk in chunks:
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            if not over:
                pending += chunk[start:end]
            yield None if over or len(pending) > limit else bytes(pending)
            pending.clear()
            over, start = False, end + 1
        if not over:
            pending += chunk[start:]
            if len(pending) > limit:
                over = True
                pending.clear()
    if over:
        yield None
    elif pending:
        yield bytes(pending)


def file_lines(path: Path) -> Iterator[bytes | None]:
    """bounded_lines of a file, read READ_BYTES at a time."""
    with open(path, "rb") as results:
        yield from bounded_lines(iter(lambda: results.read(READ_BYTES), b""))


def judge_lines(
    lines: Iterable[str | bytes | None],
    item_of: dict[str, BatchItem],
    batches: dict[str, BatchRecord],
    counts: LineCounts,
) -> Iterator[CollectedLine]:
    """Each usable result line as a CollectedLine (validated as a live answer would be, in the mode its batch was
    sent with), counting the rest. `item_of`: custom id -> the request it answers; `batches`: by local id.
    A line is None when it was too long to read (bounded_lines)."""
    modes = {local_id: get_mode(batch.mode) for local_id, batch in batches.items()}
    for raw in lines:
        if raw is None:
            counts.oversized += 1
            continue
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested past the parser's depth
            counts.malformed += 1
            continue
        custom_id = row.get("custom_id") if isinstance(row, dict) else None
        if not isinstance(custom_id, str):
            counts.malformed += 1
            continue
        item = item_of.get(custom_id)
        if item is None:
            counts.unknown += 1
            continue
        line = judge(row, item, modes[item.local_id], batches[item.local_id].created_at)
        counts.prompt_tokens += line.attempt.prompt_tokens
        counts.completion_tokens += line.attempt.completion_tokens
        if line.answer is not None:
            counts.ok += 1
        elif line.attempt.status == "api_error":
            counts.errors += 1
        else:
            counts.invalid += 1
        yield line


def judge(row: dict[str, Any], item: BatchItem, mode: Mode, sent_at: datetime) -> CollectedLine:
    """One result line as an attempt: an error, a body that is no completion, an invalid answer, or a valid one."""
    attempt = Attempt(number=item.attempt, status="ok", started_at=sent_at, requests=1)
    response = row.get("response") if isinstance(row.get("response"), dict) else {}
    assert isinstance(response, dict)
    attempt.http_status = response.get("status_code") if isinstance(response.get("status_code"), int) else None
    body = reply_json(response.get("body"))
    attempt.prompt_tokens, attempt.completion_tokens = reply_usage(body)
    error = row.get("error")
    if error or attempt.http_status != 200:
        attempt.status, attempt.error_class = "api_error", "BatchRequestError"
        attempt.error_message = _error_text(error, body, attempt.http_status)
        return CollectedLine(item, attempt, None)
    try:
        text = reply_text(body, mode)
    except MalformedResponse as malformed:
        attempt.status, attempt.error_class, attempt.error_message = "bad_response", "MalformedResponse", str(malformed)
        return CollectedLine(item, attempt, None)
    attempt.raw_text = text
    try:
        answer = parse_verdict(text, kind_for(item.persona_id).model)
    except InvalidAnswer as invalid:
        attempt.status, attempt.error_class, attempt.error_message = "invalid", "InvalidAnswer", invalid.feedback
        return CollectedLine(item, attempt, None)
    return CollectedLine(item, attempt, answer)


def _error_text(error: object, body: object, status: int | None) -> str:
    """The endpoint's own words for a failed request, cut short (it is data, shown as such)."""
    for source in (error, body.get("error") if isinstance(body, dict) else None):
        if isinstance(source, dict) and source.get("message"):
            return f"{source.get('code') or status}: {str(source['message'])[:300]}"
    return f"HTTP {status}" if status else "no response for this request"
