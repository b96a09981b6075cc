"""A loopback fake of the OpenAI chat-completions API, with fault injection, for tests and benchmarks."""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.fake_batches import FakeBatches

FAULT_429 = "429"  # 429 with Retry-After and a rate_limit error body
FAULT_500 = "500"  # 500 with a server_error body
FAULT_400 = "400"  # 400 invalid_request_error: a client error that must not be retried
FAULT_RESET = "reset"  # socket closed with RST and no response: a connection error
FAULT_HANG = "hang"  # no answer until stop() or hang_seconds, then the socket is closed
FAULT_HTML200 = "html200"  # 200 with an HTML gateway page
FAULT_EMPTY200 = "empty200"  # 200 application/json with an empty body
FAULT_BAD_COMPLETION = "bad_completion"  # 200 JSON shaped like a completion whose one choice has no message
FAULT_TRUNCATED_JSON = "truncated_json"  # valid completion whose content is the answer cut in half
FAULT_SCHEMA_VIOLATION = "schema_violation"  # valid completion whose content is JSON breaking the verdict schema
ALL_FAULTS: tuple[str, ...] = (
    FAULT_429,
    FAULT_500,
    FAULT_400,
    FAULT_RESET,
    FAULT_HANG,
    FAULT_HTML200,
    FAULT_EMPTY200,
    FAULT_BAD_COMPLETION,
    FAULT_TRUNCATED_JSON,
    FAULT_SCHEMA_VIOLATION,
)
# Errors no retry can mend (a run stops at the first): kept out of ALL_FAULTS, so random fault plans never draw them.
FAULT_401 = "401"  # 401 invalid_api_key, as OpenAI answers a wrong or missing key
FAULT_403 = "403"  # 403 permission denied for this key
FAULT_404_MODEL = "404_model"  # 404 model_not_found: the endpoint serves no model of the requested name
FATAL_FAULTS: tuple[str, ...] = (FAULT_401, FAULT_403, FAULT_404_MODEL)
# OpenAI-shaped bodies of the status faults: (HTTP status, message, type, code).
STATUS_FAULTS: dict[str, tuple[int, str, str, str | None]] = {
    FAULT_429: (429, "rate limited", "rate_limit", None),
    FAULT_500: (500, "internal error", "server_error", None),
    FAULT_400: (400, "bad request", "invalid_request_error", None),
    FAULT_401: (401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    FAULT_403: (403, "This key may not use this model.", "invalid_request_error", "permission_denied"),
    FAULT_404_MODEL: (
        404,
        "The model does not exist or you do not have access to it.",
        "invalid_request_error",
        "model_not_found",
    ),
}
SCHEMA_VIOLATION_CONTENT = json.dumps({"verdict": "maybe", "confidence": 7})
DEFAULT_MODELS = ("fake-model",)
BLINDED_NAMES = ("Tool A", "Tool B")  # the names `panel check` gives a pair's tools (panel.consistency.BLIND_NAMES)

Responder = Callable[[dict[str, Any]], str]
# The probability the fake gives its verdict token, from the request and the answer's content (logprobs replies).
VerdictProbability = Callable[[dict[str, Any], str], float]
FaultPlan = Callable[[int, dict[str, Any]], "str | None"]
Labels = dict[tuple[str, str], str]


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received: its path, parsed JSON body (None if absent/invalid) and fault applied."""

    path: str
    body: dict[str, Any] | None
    fault: str | None
    timestamp: float
    authorization: str | None = None  # the Authorization header as sent (None: no header)


def _text(content: Any) -> str:
    """Return a message's content as text, joining the text parts of a multi-part content list."""
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return content if isinstance(content, str) else ""


def _tokens(text: str) -> int:
    """Return a rough token count for text."""
    return len(text) // 4 + 1


def load_reference_labels(path: str | Path) -> Labels:
    """Return {(tool, persona): verdict} read from a labelled-reviews JSONL file."""
    labels: Labels = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            labels[(row["tool"], row["persona"])] = row["verdict"]
    return labels


def _persona_and_tool(body: dict[str, Any]) -> tuple[str, str]:
    """Return the persona id (system prompt) and tool name (user prompt) a verdict request is about."""
    messages = [m for m in body.get("messages", []) if isinstance(m, dict)]
    ordered = sorted(messages, key=lambda m: m.get("role") != "system")  # stable: system first
    persona = next(
        (found.group(1) for m in ordered if (found := re.search(r"Persona id: (\w+)", _text(m.get("content"))))),
        "unknown",
    )
    tool = "unknown"
    for message in messages:
        text = _text(message.get("content"))
        marker = re.search(r"^BEGIN TOOL UNDER REVIEW$", text, re.MULTILINE)
        if message.get("role") == "user" and marker:
            name = re.search(r"^Name: (.+)$", text[marker.end() :], re.MULTILINE)
            tool = name.group(1).strip() if name else tool
            break
    return persona, tool


def reference_responder(labels: Labels) -> Responder:
    """Return a responder answering each persona's verdict on the tool under review from labels (default ship).

    A tool `panel check` blinded (BLINDED_NAMES) gets the verdict its persona's labels give every tool, when they
    agree (a consistent reviewer's answer without the name), else ship.
    """
    verdicts: dict[str, set[str]] = {}
    for (_, persona), verdict in labels.items():
        verdicts.setdefault(persona, set()).add(verdict)

    def respond(body: dict[str, Any]) -> str:
        persona, tool = _persona_and_tool(body)
        only = verdicts.get(persona, set())
        default = next(iter(only)) if tool in BLINDED_NAMES and len(only) == 1 else "ship"
        verdict = labels.get((tool, persona), default)
        return json.dumps(
            {
                "verdict": verdict,
                "confidence": 0.8 if verdict == "ship" else 0.7,
                "headline": f"{persona}: {verdict} {tool}",
                "review": f"{tool} was read from the {persona} seat. The verdict is {verdict}. "
                "This is a canned review from the fake endpoint.",
                "key_points": [f"{tool} has a clear primitive", f"the {persona} view decides {verdict}"],
            }
        )

    return respond


def load_reference_reviews(path: str | Path) -> list[dict[str, Any]]:
    """Return the rows (tool, persona, verdict, review) of a labelled-reviews JSONL file."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def review_responder(rows: Sequence[dict[str, Any]]) -> Responder:
    """Return a responder answering each (tool, persona) with its row's verdict, review and optional confidence.

    Key points are the review's first sentences; a request with no row gets a canned ship.
    """
    by_key = {(row["tool"], row["persona"]): row for row in rows}
    fallback = reference_responder({})

    def respond(body: dict[str, Any]) -> str:
        persona, tool = _persona_and_tool(body)
        row = by_key.get((tool, persona))
        if row is None:
            return fallback(body)
        sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", row["review"]) if s.strip()]
        return json.dumps(
            {
                "verdict": row["verdict"],
                "confidence": row.get("confidence", 0.8 if row["verdict"] == "ship" else 0.7),
                "headline": sentences[0][:150] if sentences else f"{persona}: {row['verdict']}",
                "review": row["review"],
                "key_points": [s[:200] for s in sentences[:3]] or [row["verdict"]],
            },
            ensure_ascii=False,
        )

    return respond


def chair_responder(reviewers: Responder) -> Responder:
    """Return a responder that answers the panel chair (BEGIN PANEL VERDICTS) and leaves the rest to reviewers.

    The chair picks the tool with more ship verdicts in the request ("both" on a tie, "neither" with none)
    and names the reviewers who said skip.
    """

    def respond(body: dict[str, Any]) -> str:
        user = "\n".join(
            _text(m.get("content")) for m in body.get("messages", []) if isinstance(m, dict) and m.get("role") == "user"
        )
        if "BEGIN PANEL VERDICTS" not in user:
            return reviewers(body)
        names = {
            side: json.loads(found.group(1))
            if (found := re.search(rf'^{side}: ("(?:[^"\\]|\\.)*")', user, re.MULTILINE))
            else side
            for side in ("left", "right")
        }
        votes = re.findall(r"^(\w+) on (left|right): (ship|skip),", user, re.MULTILINE)
        ships = {side: sum(1 for _, s, v in votes if s == side and v == "ship") for side in ("left", "right")}
        if ships["left"] != ships["right"]:
            pick = max(ships, key=ships.__getitem__)
            headline = f"Ship with {names[pick]}"
        else:
            pick = "both" if ships["left"] else "neither"
            headline = "Either, for different jobs" if ships["left"] else "Skip both for now"
        dissent = [f"the {persona} reviewer skips {names[side]}" for persona, side, v in votes if v == "skip"]
        summary = (
            f"{names['left']} gets {ships['left']} ship verdicts and {names['right']} gets "
            f"{ships['right']}. "
            + (("Dissent: " + "; ".join(dissent) + ".") if dissent else "Nobody on the panel dissents.")
            + " This is a canned summary from the fake endpoint."
        )
        return json.dumps({"pick": pick, "headline": headline, "summary": summary}, ensure_ascii=False)

    return respond


def seeded_responder(skip_every: int = 3) -> Responder:
    """Return a responder whose verdict depends on the request's seed alone: skip when seed % skip_every == 0, else
    ship (a sampled model whose answer changes with the seed; seeds 7, 8, 9 give ship, ship, skip)."""

    def respond(body: dict[str, Any]) -> str:
        persona, tool = _persona_and_tool(body)
        verdict = "skip" if int(body.get("seed") or 0) % skip_every == 0 else "ship"
        return json.dumps(
            {
                "verdict": verdict,
                "confidence": 0.6,
                "headline": f"{persona}: {verdict} {tool} at seed {body.get('seed')}",
                "review": f"{tool} was read from the {persona} seat with seed {body.get('seed')}. "
                f"The verdict is {verdict}. This is a canned review from the fake endpoint.",
                "key_points": [f"seed {body.get('seed')} decides {verdict}"],
            }
        )

    return respond


def scripted_responder(answers: Sequence[str]) -> Responder:
    """Return a responder giving answers in order, repeating the last once exhausted; raises ValueError if empty."""
    if not answers:
        raise ValueError("scripted_responder needs at least one answer")
    lock, calls = threading.Lock(), [0]

    def respond(body: dict[str, Any]) -> str:
        with lock:
            answer = answers[min(calls[0], len(answers) - 1)]
            calls[0] += 1
        return answer

    return respond


def random_faults(rate: float, seed: int, kinds: Sequence[str] = ALL_FAULTS) -> FaultPlan:
    """Return a fault plan failing each request with probability rate, decided by seed and index alone."""

    def plan(index: int, body: dict[str, Any]) -> str | None:
        rng = random.Random(seed + index)
        return rng.choice(list(kinds)) if rng.random() < rate else None

    return plan


def _fault_plan(faults: Sequence[str | None] | FaultPlan | None) -> FaultPlan:
    """Return faults as a plan callable; raises ValueError on an unknown fault name in a list."""
    if faults is None:
        return lambda index, body: None
    if callable(faults):
        return faults
    schedule = list(faults)
    unknown = [name for name in schedule if name is not None and name not in ALL_FAULTS + FATAL_FAULTS]
    if unknown:
        raise ValueError(f"unknown fault names {unknown}; known: {ALL_FAULTS + FATAL_FAULTS}")
    return lambda index, body: schedule[index] if index < len(schedule) else None


class _Server(ThreadingHTTPServer):
    """The HTTP server, pointing its handlers back at the FakeOpenAI that owns it."""

    daemon_threads = True
    # http.server's default backlog of 5 drops connections when 16 clients connect at once (the client then
    # times out on a request the fake never saw); production servers queue 128 or more.
    request_queue_size = 128
    fake: FakeOpenAI


class _Handler(BaseHTTPRequestHandler):
    """Serves one connection: /v1/models and /v1/chat/completions, applying the planned fault."""

    protocol_version = "HTTP/1.1"
    arrived_at = 0.0  # monotonic time the current request line was read
    reply_at = 0.0  # monotonic time a reply may leave: `latency` after the request line (GETs too)
    # Headers and body go out in separate writes: with Nagle on, each keep-alive reply waits ~40 ms for the
    # client's delayed ACK. Production servers set TCP_NODELAY, and latency figures must not include that stall.
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.fake._track(self.connection, add=True)

    def finish(self) -> None:
        self.server.fake._track(self.connection, add=False)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test and benchmark output quiet."""

    def _refused_key(self, body: dict[str, Any] | None) -> bool:
        """With an api_key set, answer a request without that key 401 as OpenAI does (True when refused)."""
        fake = self.server.fake
        if fake.api_key is None or self.headers.get("Authorization") == f"Bearer {fake.api_key}":
            return False
        fake._record(self.path, body, FAULT_401, self.headers.get("Authorization"))
        status, message, kind, code = STATUS_FAULTS[FAULT_401]
        self._send(status, _error(message, kind, code))
        return True

    def do_GET(self) -> None:
        if self.path.startswith(("/v1/files", "/v1/batches")):
            self.server.fake.batch_api.handle(self, "GET")
            return
        self.reply_at = self.arrived_at + self.server.fake.latency
        if self._refused_key(None):
            return
        self.server.fake._record(self.path, None, None, self.headers.get("Authorization"))
        if self.path.rstrip("/") == "/v1/models":
            self._send(
                200,
                {
                    "object": "list",
                    "data": [
                        {"id": name, "object": "model", "created": 0, "owned_by": "fake"}
                        for name in self.server.fake.models
                    ],
                },
            )
        else:
            self._send(404, _error("not found", "not_found"))

    def parse_request(self) -> bool:
        """Note when the request line arrived: a chat reply leaves `latency` after it (see do_POST)."""
        self.arrived_at = time.monotonic()
        return super().parse_request()

    def do_POST(self) -> None:
        fake = self.server.fake
        if self.path.startswith(("/v1/files", "/v1/batches")):
            fake.batch_api.handle(self, "POST")
            return
        # Fixed latency: the reply leaves `latency` after the request line arrived, however long the fake's
        # own work (headers, body, JSON, the answer) took, so that work never adds to the latency a
        # benchmark divides by.
        self.reply_at = self.arrived_at + fake.latency
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if self._refused_key(body if isinstance(body, dict) else None):
            return
        if self.path.rstrip("/") != "/v1/chat/completions" or not isinstance(body, dict):
            fake._record(self.path, body if isinstance(body, dict) else None, None)
            self._send(404 if body is not None else 400, _error("not found or not JSON", "invalid_request_error"))
            return
        index = fake._next_index()
        fault = fake.faults(index, body)
        fake._record(self.path, body, fault, self.headers.get("Authorization"))
        self._answer(fake, index, body, fault)

    def _answer(self, fake: FakeOpenAI, index: int, body: dict[str, Any], fault: str | None) -> None:
        """Write the healthy reply to a chat request, or the given fault instead."""
        if fault in STATUS_FAULTS:
            status, message, kind, code = STATUS_FAULTS[fault]
            headers = {"Retry-After": fake.retry_after} if fault == FAULT_429 else {}
            self._send(status, _error(message, kind, code), headers=headers)
        elif fault in (FAULT_RESET, FAULT_HANG):
            self._wait_for_reply_time()
            if fault == FAULT_HANG:
                fake._stopping.wait(fake.hang_seconds)
            self.close_connection = True
            try:  # linger 0 makes close() send RST; detach so the fd closes now, despite rfile/wfile
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                socket.close(self.connection.detach())
            except OSError:
                pass  # the client or stop() closed it first
        elif fault == FAULT_HTML200:
            self._send(200, b"<html><body>Gateway</body></html>", content_type="text/html")
        elif fault == FAULT_EMPTY200:
            self._send(200, b"")
        elif fault == FAULT_BAD_COMPLETION:
            self._send(
                200,
                {
                    "id": f"chatcmpl-fake-{index}",
                    "object": "chat.completion",
                    "model": "fake-model",
                    "choices": [{"index": 0, "finish_reason": "stop"}],
                },
            )
        else:
            content = fake.responder(body)
            if fault == FAULT_TRUNCATED_JSON:
                content = content[: len(content) // 2]
            elif fault == FAULT_SCHEMA_VIOLATION:
                content = SCHEMA_VIOLATION_CONTENT
            elif fault is not None:
                raise ValueError(f"unknown fault {fault!r}; known: {ALL_FAULTS + FATAL_FAULTS}")
            self._send(200, _completion(index, body, content, fake.verdict_probability))

    def _wait_for_reply_time(self) -> None:
        """Sleep until this request's reply time (a per-thread sleep that stop() cuts short)."""
        delay = self.reply_at - time.monotonic()
        if delay > 0:
            self.server.fake._stopping.wait(delay)

    def _send(
        self,
        status: int,
        payload: dict[str, Any] | bytes,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        """Write one complete response with a Content-Length, so keep-alive connections stay usable."""
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self._wait_for_reply_time()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def _error(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    """Return an OpenAI-shaped error body."""
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _logprobs(content: str, probability: float) -> dict[str, Any]:
    """Content tokens (words, spaces, punctuation runs) with log-probabilities, as OpenAI and llama.cpp send them:
    the token that begins the value of "verdict" gets log(probability), every other token log(0.99)."""
    tokens, position = [], 0
    value = re.search(r'"verdict"\s*:\s*"', content)
    for token in re.findall(r"\w+|\s+|[^\w\s]+", content):
        logprob = math.log(probability) if value is not None and position == value.end() else math.log(0.99)
        tokens.append({"token": token, "logprob": logprob, "bytes": None, "top_logprobs": []})
        position += len(token)
    return {"content": tokens, "refusal": None}


def _completion(
    index: int, body: dict[str, Any], content: str, verdict_probability: VerdictProbability | None = None
) -> dict[str, Any]:
    """Return a ChatCompletion with content as the message, or as tool-call arguments when tools were sent; with
    token log-probabilities when the request asks for them (`logprobs: true`) and `verdict_probability` is given."""
    finish_reason = "stop"
    limit = body.get("max_tokens")
    pieces = re.findall(r"\w+|\s+|[^\w\s]+", content)
    if isinstance(limit, int) and 0 < limit < len(pieces):  # cut like a server at max_tokens (its tokens: words)
        content, finish_reason = "".join(pieces[:limit]), "length"
    message: dict[str, Any] = {"role": "assistant", "content": content}
    tools = body.get("tools") or []
    if tools:
        name = tools[0].get("function", {}).get("name", "tool")
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": f"call_fake_{index}", "type": "function", "function": {"name": name, "arguments": content}}
            ],
        }
        finish_reason = "tool_calls"
    prompt = "\n".join(_text(m.get("content")) for m in body.get("messages", []) if isinstance(m, dict))
    prompt_tokens, completion_tokens = _tokens(prompt), _tokens(content)
    logprobs = None
    if body.get("logprobs") is True and verdict_probability is not None and not tools:
        logprobs = _logprobs(content, verdict_probability(body, content))
    return {
        "id": f"chatcmpl-fake-{index}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake-model"),
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": logprobs}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


class FakeOpenAI:
    """A fake OpenAI endpoint serving on 127.0.0.1 from construction until stop() (or the end of a with block)."""

    def __init__(
        self,
        responder: Responder | None = None,
        faults: Sequence[str | None] | FaultPlan | None = None,
        latency: float = 0.0,
        *,
        port: int = 0,
        retry_after: str = "0",
        hang_seconds: float = 30.0,
        models: Sequence[str] = DEFAULT_MODELS,
        api_key: str | None = None,
        verdict_probability: VerdictProbability | None = None,
    ) -> None:
        self.responder = responder or reference_responder({})
        # None: like an endpoint without log-probabilities, replies carry none even when asked.
        self.verdict_probability = verdict_probability
        self.models = list(models)  # what GET /v1/models lists (tests may change it while the fake runs)
        self.api_key = api_key  # when set, every request without `Authorization: Bearer <api_key>` gets 401
        self.faults = _fault_plan(faults)
        self.latency, self.retry_after, self.hang_seconds = latency, retry_after, hang_seconds
        self._lock = threading.Lock()
        self._records: list[RecordedRequest] = []
        self._chat_count = 0
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        # The Batch API (/v1/files, /v1/batches): tests set its steps, endings, line faults and delays on it.
        self.batch_api = FakeBatches(self)
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.fake = self
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-openai", daemon=True
        )
        self._thread.start()

    def batch_reply(self, index: int, body: dict[str, Any], fault: str | None = None) -> dict[str, Any]:
        """The completion a batch line gets: the responder's answer, cut in half or off-schema for those faults."""
        content = self.responder(body)
        if fault == FAULT_TRUNCATED_JSON:
            content = content[: len(content) // 2]
        elif fault == FAULT_SCHEMA_VIOLATION:
            content = SCHEMA_VIOLATION_CONTENT
        return _completion(index, body, content)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Return a snapshot of the requests received so far, in arrival order."""
        with self._lock:
            return list(self._records)

    def stop(self) -> None:
        """Stop serving: release hanging and sleeping requests, close open connections; safe to call twice."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._server.shutdown()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by its handler
        self._server.server_close()
        self._thread.join(timeout=2)

    def __enter__(self) -> FakeOpenAI:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _next_index(self) -> int:
        with self._lock:
            self._chat_count += 1
            return self._chat_count - 1

    def _record(
        self, path: str, body: dict[str, Any] | None, fault: str | None, authorization: str | None = None
    ) -> None:
        with self._lock:
            self._records.append(RecordedRequest(path, body, fault, time.time(), authorization))

    def _track(self, connection: socket.socket, *, add: bool) -> None:
        with self._lock:
            (self._connections.add if add else self._connections.discard)(connection)


def main(argv: Sequence[str] | None = None) -> None:
    """Serve a fake endpoint, print `READY <base_url>`, and run until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds from a request's arrival to its reply")
    parser.add_argument("--api-key", help="refuse (401) every request without this key, as OpenAI does")
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--fault-kinds", default=",".join(ALL_FAULTS), help="comma-separated fault names")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hang-seconds", type=float, default=30.0)
    parser.add_argument("--labels", type=Path, help="labelled-reviews JSONL giving each persona's verdict")
    parser.add_argument(
        "--model", action="append", dest="models", help="a model GET /v1/models lists (repeatable; default fake-model)"
    )
    args = parser.parse_args(argv)
    kinds = [kind for kind in args.fault_kinds.split(",") if kind]
    if unknown := set(kinds) - set(ALL_FAULTS):
        parser.error(f"--fault-kinds: unknown {sorted(unknown)}; known: {', '.join(ALL_FAULTS)}")
    labels = load_reference_labels(args.labels) if args.labels else {}
    faults = random_faults(args.fault_rate, args.seed, kinds) if args.fault_rate > 0 else None
    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    with FakeOpenAI(
        chair_responder(reference_responder(labels)),
        faults,
        args.latency,
        port=args.port,
        hang_seconds=args.hang_seconds,
        models=args.models or DEFAULT_MODELS,
        api_key=args.api_key,
    ) as fake:
        print(f"READY {fake.base_url}", flush=True)
        while not done.wait(0.5):
            pass


if __name__ == "__main__":
    main(sys.argv[1:])
