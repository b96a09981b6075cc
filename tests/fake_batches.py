"""The fake endpoint's Batch API: /v1/files and /v1/batches as OpenAI serves them, with status steps and faults.

FakeOpenAI (fake_openai.py) owns one FakeBatches and hands it every /v1/files and /v1/batches request. A batch
walks validating -> in_progress (its request counts growing over `steps` retrieves) -> finalizing -> completed;
its result lines are answered by the fake's responder when it finishes. What can go wrong, per batch or per line:

- `ends`: how the n-th batch created ends: "completed" (default), "expired" (the first half of its lines done),
  or "failed" (refused at validation: no output at all).
- `line_faults(custom_id, seen)`: per line (seen = how many earlier batches carried that custom_id): "error"
  (a 500 in the error file), "schema_violation" / "truncated_json" (a 200 whose answer does not validate),
  "malformed" (the output file's line itself is cut short), "missing" (the line is in neither file), "duplicate"
  (the line appears twice in the output file).
- cancel: the batch becomes cancelling, then cancelled with the lines done so far.
- `upload_delay`, `create_delay`: seconds between storing an upload (or a batch) and answering, the window in
  which a client killed -9 has sent it but not heard back; `content_delay`: seconds between 64 KiB chunks of a
  file's content, so a download (a collect) takes a while.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlparse

if TYPE_CHECKING:
    from tests.fake_openai import FakeOpenAI, _Handler

LineFaults = Callable[[str, int], "str | None"]
LINE_FAULTS = ("error", "schema_violation", "truncated_json", "malformed", "missing", "duplicate")
CHUNK = 64 * 1024


@dataclass
class FakeBatch:
    """One batch the fake holds: its input lines, status, and (once it ended) its output and error files."""

    id: str
    input_file_id: str
    endpoint: str
    metadata: dict[str, str] | None
    created_at: int
    requests: list[dict[str, Any]]
    end: str
    status: str = "validating"
    retrieves: int = 0
    done: int = 0  # requests completed so far (what a cancel or an expiry keeps)
    output_file_id: str | None = None
    error_file_id: str | None = None
    counts: dict[str, int] = field(default_factory=lambda: {"total": 0, "completed": 0, "failed": 0})

    def as_json(self) -> dict[str, Any]:
        """The batch as OpenAI's Batch object."""
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "input_file_id": self.input_file_id,
            "completion_window": "24h",
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": self.created_at,
            "metadata": self.metadata,
            "request_counts": dict(self.counts),
            "errors": {"object": "list", "data": [{"code": "invalid_file", "message": "refused"}]}
            if self.status == "failed"
            else None,
        }


class FakeBatches:
    """The Files and Batches API of one FakeOpenAI."""

    def __init__(
        self,
        fake: FakeOpenAI,
        steps: int = 2,
        ends: Sequence[str] = (),
        line_faults: LineFaults | None = None,
        upload_delay: float = 0.0,
        create_delay: float = 0.0,
        content_delay: float = 0.0,
    ) -> None:
        self.fake, self.steps, self.ends = fake, steps, list(ends)
        self.line_faults = line_faults or (lambda custom_id, seen: None)
        self.upload_delay, self.create_delay, self.content_delay = upload_delay, create_delay, content_delay
        self.files: dict[str, tuple[bytes, str, str]] = {}  # id -> (content, purpose, filename)
        self.batches: dict[str, FakeBatch] = {}
        self.seen: dict[str, int] = {}  # custom_id -> batches that carried it
        self.downloads: list[str] = []  # file ids whose content was asked for, in order
        self._lock = threading.RLock()  # a batch that finishes adds its files while holding it

    # --- routing ----------------------------------------------------------------------------------
    def handle(self, handler: _Handler, method: str) -> None:
        """Answer one /v1/files or /v1/batches request."""
        url = urlparse(handler.path)
        parts = [p for p in url.path.split("/") if p][1:]  # drop "v1"
        raw = handler.rfile.read(int(handler.headers.get("Content-Length") or 0)) if method == "POST" else b""
        self.fake._record(handler.path, None, None)
        if parts == ["files"] and method == "POST":
            return self._upload(handler, raw)
        if parts[:1] == ["files"] and len(parts) == 3 and parts[2] == "content" and method == "GET":
            return self._content(handler, parts[1])
        if parts[:1] == ["files"] and len(parts) == 2 and method == "GET":
            found = self.files.get(parts[1])
            if found is None:
                return handler._send(404, _error(f"No such File object: {parts[1]}"))
            return handler._send(200, self._file_json(parts[1]))
        if parts == ["batches"] and method == "POST":
            return self._create(handler, raw)
        if parts == ["batches"] and method == "GET":
            return self._list(handler, parse_qs(url.query))
        if parts[:1] == ["batches"] and len(parts) == 2 and method == "GET":
            return self._retrieve(handler, parts[1])
        if parts[:1] == ["batches"] and len(parts) == 3 and parts[2] == "cancel" and method == "POST":
            return self._cancel(handler, parts[1])
        handler._send(404, _error("not found"))

    # --- files ------------------------------------------------------------------------------------
    def _upload(self, handler: _Handler, raw: bytes) -> None:
        fields = _multipart(handler.headers.get("Content-Type", ""), raw)
        if "file" not in fields or fields.get("purpose", (b"",))[0] != b"batch":
            return handler._send(400, _error("a file and purpose=batch are required"))
        content, filename = fields["file"][0], fields["file"][1] or "upload.jsonl"
        file_id = self._add_file(content, "batch", filename)
        time.sleep(self.upload_delay)
        handler._send(200, self._file_json(file_id))

    def _add_file(self, content: bytes, purpose: str, filename: str) -> str:
        with self._lock:
            file_id = f"file-fake{len(self.files) + 1:04d}"
            self.files[file_id] = (content, purpose, filename)
        return file_id

    def _file_json(self, file_id: str) -> dict[str, Any]:
        content, purpose, filename = self.files[file_id]
        return {
            "id": file_id,
            "object": "file",
            "bytes": len(content),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
        }

    def _content(self, handler: _Handler, file_id: str) -> None:
        found = self.files.get(file_id)
        if found is None:
            return handler._send(404, _error(f"No such File object: {file_id}"))
        self.downloads.append(file_id)
        content = found[0]
        handler.send_response(200)
        handler.send_header("Content-Type", "application/octet-stream")
        handler.send_header("Content-Length", str(len(content)))
        handler.end_headers()
        try:
            for start in range(0, len(content), CHUNK):
                handler.wfile.write(content[start : start + CHUNK])
                handler.wfile.flush()
                if self.content_delay:
                    time.sleep(self.content_delay)
        except OSError:
            pass  # the client went away (killed mid-download)

    # --- batches ----------------------------------------------------------------------------------
    def _create(self, handler: _Handler, raw: bytes) -> None:
        try:
            body = json.loads(raw)
        except ValueError:
            return handler._send(400, _error("not JSON"))
        file_id = body.get("input_file_id")
        if file_id not in self.files or body.get("completion_window") != "24h":
            return handler._send(400, _error("input_file_id must name an uploaded file; completion_window 24h"))
        requests = [json.loads(line) for line in self.files[file_id][0].splitlines() if line.strip()]
        with self._lock:
            number = len(self.batches)
            batch = FakeBatch(
                f"batch_fake{number + 1:04d}",
                file_id,
                body.get("endpoint", ""),
                body.get("metadata"),
                int(time.time()) + number,  # distinct, increasing: list() orders by it
                requests,
                self.ends[number] if number < len(self.ends) else "completed",
            )
            batch.counts["total"] = len(requests)
            self.batches[batch.id] = batch
        time.sleep(self.create_delay)
        handler._send(200, batch.as_json())

    def _retrieve(self, handler: _Handler, batch_id: str) -> None:
        batch = self.batches.get(batch_id)
        if batch is None:
            return handler._send(404, _error(f"No such batch: {batch_id}"))
        with self._lock:
            self._advance(batch)
        handler._send(200, batch.as_json())

    def _list(self, handler: _Handler, query: dict[str, list[str]]) -> None:
        limit = int(query.get("limit", ["20"])[0])
        newest = sorted(self.batches.values(), key=lambda b: b.created_at, reverse=True)
        if "after" in query:
            ids = [b.id for b in newest]
            after = query["after"][0]
            newest = newest[ids.index(after) + 1 :] if after in ids else []
        page = newest[:limit]
        handler._send(
            200,
            {
                "object": "list",
                "data": [b.as_json() for b in page],
                "first_id": page[0].id if page else None,
                "last_id": page[-1].id if page else None,
                "has_more": len(newest) > limit,
            },
        )

    def _cancel(self, handler: _Handler, batch_id: str) -> None:
        batch = self.batches.get(batch_id)
        if batch is None:
            return handler._send(404, _error(f"No such batch: {batch_id}"))
        with self._lock:
            if batch.status in ("validating", "in_progress", "finalizing"):
                batch.status = "cancelling"
        handler._send(200, batch.as_json())

    def _advance(self, batch: FakeBatch) -> None:
        """One retrieve's worth of progress."""
        batch.retrieves += 1
        total = len(batch.requests)
        if batch.status == "validating":
            if batch.end == "failed":
                batch.status = "failed"
                return
            batch.status = "in_progress"
        elif batch.status == "in_progress":
            batch.done = min(total, batch.done + max(1, -(-total // max(self.steps, 1))))
            batch.counts["completed"] = batch.done
            if batch.end == "expired" and batch.done >= total // 2:
                batch.done = total // 2
                self._finish(batch, "expired")
            elif batch.done >= total:
                batch.status = "finalizing"
        elif batch.status == "finalizing":
            self._finish(batch, "completed")
        elif batch.status == "cancelling":
            self._finish(batch, "cancelled")

    def _finish(self, batch: FakeBatch, status: str) -> None:
        """Answer the lines done, write the output and error files, and end the batch `status`."""
        output: list[bytes] = []
        errors: list[bytes] = []
        failed = 0
        for index, request in enumerate(batch.requests[: batch.done]):
            custom_id = str(request.get("custom_id"))
            seen = self.seen.get(custom_id, 0)
            self.seen[custom_id] = seen + 1
            fault = self.line_faults(custom_id, seen)
            if fault == "missing":
                continue
            if fault == "error":
                failed += 1
                errors.append(_line(batch, index, custom_id, 500, _error("internal error", "server_error")))
                continue
            line = _line(batch, index, custom_id, 200, self.fake.batch_reply(index, request["body"], fault))
            if fault == "malformed":
                line = line[: len(line) // 2]
            output.append(line)
            if fault == "duplicate":
                output.append(line)
        batch.counts = {"total": len(batch.requests), "completed": batch.done - failed, "failed": failed}
        if output:
            batch.output_file_id = self._add_file(b"\n".join(output) + b"\n", "batch_output", f"{batch.id}_output")
        if errors:
            batch.error_file_id = self._add_file(b"\n".join(errors) + b"\n", "batch_output", f"{batch.id}_error")
        batch.status = status


def _line(batch: FakeBatch, index: int, custom_id: str, status: int, body: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "id": f"batch_req_{batch.id}_{index}",
            "custom_id": custom_id,
            "response": {"status_code": status, "request_id": f"req_{index}", "body": body},
            "error": None,
        }
    ).encode()


def _error(message: str, kind: str = "invalid_request_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _multipart(content_type: str, raw: bytes) -> dict[str, tuple[bytes, str | None]]:
    """The fields of a multipart/form-data body: name -> (value, filename)."""
    boundary = next((p.split("=", 1)[1].strip('"') for p in content_type.split(";") if "boundary=" in p), "")
    fields: dict[str, tuple[bytes, str | None]] = {}
    for part in raw.split(b"--" + boundary.encode())[1:]:
        if part.startswith(b"--"):
            break
        head, _, value = part.partition(b"\r\n\r\n")
        disposition = next((h for h in head.decode("utf-8", "replace").split("\r\n") if "name=" in h), "")
        params = dict(p.strip().split("=", 1) for p in disposition.split(";") if "=" in p)  # name="file"; ...
        name = params.get("name", "").strip('"')
        filename = params.get("filename", "").strip('"') or None
        fields[name] = (value[:-2] if value.endswith(b"\r\n") else value, filename)
    return fields
