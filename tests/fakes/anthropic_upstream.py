"""A local stand-in for the Anthropic Messages API, speaking its real wire format.

The Anthropic API is unreachable from the test machines, so tests run against this server. It is a
real HTTP server (Starlette under uvicorn, on a loopback port) and simulates what the sidecar relies
on, independently of the sidecar's own code:

* ``POST /v1/messages``: JSON and SSE (``message_start``, ``content_block_start``, ``ping``,
  ``content_block_delta``, ``content_block_stop``, ``message_delta``, ``message_stop``), ``usage``
  with ``input_tokens``, ``cache_creation_input_tokens``, ``cache_read_input_tokens``,
  ``cache_creation.ephemeral_5m_input_tokens``/``ephemeral_1h_input_tokens``, ``output_tokens``;
* a prompt cache keyed by the exact prefix (API key, model, every block up to the breakpoint, in the
  order tools, system, messages), with 5-minute and 1-hour TTLs refreshed on every read, a 20-block
  look-back from each breakpoint, and per-model minimum cacheable lengths (a shorter prefix is
  silently not cached and both counters are 0);
* the real 400 ``invalid_request_error`` for a fifth breakpoint, for a 1-hour breakpoint after a
  5-minute one and for an unknown TTL; 401 ``authentication_error`` without an API key;
* ``POST /v1/messages/count_tokens`` and ``GET /v1/models`` for pass-through tests.

Tokens are counted with a deterministic approximation (words and punctuation marks, plus a few
tokens of framing per block and message) that deliberately differs from the sidecar's estimate, as
the real tokenizer does. The clock can be advanced to expire cache entries without waiting.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from fakes.openai_upstream import run_server

TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}
LOOKBACK_BLOCKS = 20
_WORD = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    return len(_WORD.findall(text))


def min_cacheable_tokens(model: str) -> int:
    """The fake's own table (published minimums), kept apart from the sidecar's on purpose."""
    if any(k in model for k in ("opus-4-5", "opus-4-6", "haiku-4-5")):
        return 4096
    if "opus-4-7" in model:
        return 2048
    if any(k in model for k in ("opus-5", "fable-5", "mythos-5")) and "opus-5-5" not in model:
        return 512
    return 1024


class Clock:
    """Monotonic time plus an offset that tests move forward with :meth:`advance`."""

    def __init__(self) -> None:
        self._offset = 0.0

    def now(self) -> float:
        return time.monotonic() + self._offset

    def advance(self, seconds: float) -> None:
        self._offset += seconds


@dataclass
class _Entry:
    tokens: int
    ttl: str
    expires: float


@dataclass
class Seen:
    """One request as the upstream received it."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def breakpoints(self) -> list[str]:
        """TTLs of the ``cache_control`` markers in the body, in processing order."""
        return [ttl for _, ttl in _breakpoints(_sequence(self.body), self.body)[0]]


class ApiError(Exception):
    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


def _error(status: int, kind: str, message: str) -> JSONResponse:
    request_id = "req_" + uuid.uuid4().hex[:24]
    return JSONResponse(
        {"type": "error", "error": {"type": kind, "message": message}, "request_id": request_id},
        status_code=status,
        headers={"request-id": request_id},
    )


def _blocks(value: Any) -> list[Any]:
    if isinstance(value, str):
        return [{"type": "text", "text": value}] if value else []
    return list(value) if isinstance(value, list) else []


@dataclass
class _Block:
    where: str  # "tools" | "system" | "messages"
    role: str
    block: Any
    tokens: int


def _block_tokens(where: str, block: Any) -> int:
    if where == "tools":
        shown = {k: v for k, v in block.items() if k != "cache_control"} if isinstance(block, dict) else block
        return count_tokens(json.dumps(shown)) + 5
    if isinstance(block, dict) and block.get("type") == "text":
        return count_tokens(str(block.get("text", ""))) + 2
    if isinstance(block, dict):
        shown = {k: v for k, v in block.items() if k != "cache_control"}
        return count_tokens(json.dumps(shown)) + 2
    return count_tokens(str(block)) + 2


def _sequence(body: Mapping[str, Any]) -> list[_Block]:
    seq: list[_Block] = []
    for tool in _blocks(body.get("tools")):
        seq.append(_Block("tools", "", tool, _block_tokens("tools", tool)))
    for block in _blocks(body.get("system")):
        seq.append(_Block("system", "", block, _block_tokens("system", block)))
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        role = str(message.get("role"))
        content = _blocks(message.get("content"))
        for i, block in enumerate(content):
            # a message's framing (role marker) is charged on its first block
            seq.append(
                _Block("messages", role, block, _block_tokens("messages", block) + (4 if i == 0 else 0))
            )
    return seq


def _breakpoints(seq: list[_Block], body: Mapping[str, Any]) -> tuple[list[tuple[int, str]], list[str]]:
    """(position, ttl) of every breakpoint and a list of problems found in the markers."""
    found: list[tuple[int, str]] = []
    problems: list[str] = []
    for pos, item in enumerate(seq):
        cc = item.block.get("cache_control") if isinstance(item.block, dict) else None
        if cc is None:
            continue
        if not isinstance(cc, dict) or cc.get("type") != "ephemeral":
            problems.append(f"{item.where}: cache_control.type: Input should be 'ephemeral'")
            continue
        ttl = cc.get("ttl", "5m")
        if ttl not in TTL_SECONDS:
            problems.append(f"{item.where}: cache_control.ttl: Input should be '5m' or '1h'")
            continue
        if isinstance(item.block, dict) and item.block.get("type") == "text" and not item.block.get("text"):
            problems.append("cache_control cannot be set for empty text blocks")
        found.append((pos, ttl))
    top = body.get("cache_control")
    if isinstance(top, dict):
        ttl = top.get("ttl", "5m")
        if ttl not in TTL_SECONDS:
            problems.append("cache_control.ttl: Input should be '5m' or '1h'")
        else:
            # automatic caching: the breakpoint goes on the last cacheable block
            last = max((p for p, b in enumerate(seq) if _cacheable(b.block)), default=None)
            if last is not None:
                found.append((last, ttl))
    return found, problems


def _cacheable(block: Any) -> bool:
    if not isinstance(block, dict) or block.get("type") in ("thinking", "redacted_thinking"):
        return False
    return not (block.get("type") == "text" and not block.get("text"))


@dataclass
class Usage:
    input: int
    write_5m: int
    write_1h: int
    read: int
    output: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input,
            "cache_creation_input_tokens": self.write_5m + self.write_1h,
            "cache_read_input_tokens": self.read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.write_5m,
                "ephemeral_1h_input_tokens": self.write_1h,
            },
            "output_tokens": self.output,
            "service_tier": "standard",
        }


@dataclass
class FakeAnthropic:
    """The fake API's state. ``app`` is the ASGI app; :func:`serve` runs it on a loopback port."""

    clock: Clock = field(default_factory=Clock)
    seen: list[Seen] = field(default_factory=list)
    # Failures to return on the next requests to /v1/messages: (status, error type), in order.
    failures: list[tuple[int, str]] = field(default_factory=list)
    # Pause between streamed deltas, seconds (0: none).
    stream_delay: float = 0.0
    _cache: dict[str, _Entry] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def messages_requests(self) -> list[Seen]:
        return [s for s in self.seen if s.path == "/v1/messages"]

    # -- the prompt cache -------------------------------------------------------------------------

    def _prefix_hashes(self, api_key: str, model: str, seq: list[_Block]) -> list[str]:
        digest = hashlib.sha256(f"{api_key}\0{model}".encode()).hexdigest()
        out = []
        for item in seq:
            block = item.block
            shown = (
                {k: v for k, v in block.items() if k != "cache_control"} if isinstance(block, dict) else block
            )
            text = f"{digest}\0{item.where}\0{item.role}\0{json.dumps(shown, sort_keys=True)}"
            digest = hashlib.sha256(text.encode()).hexdigest()
            out.append(digest)
        return out

    def account(self, api_key: str, body: Mapping[str, Any]) -> Usage:
        """Validate the breakpoints, look the prefix up, write what is new; return the input usage."""
        model = str(body.get("model", ""))
        seq = _sequence(body)
        marks, problems = _breakpoints(seq, body)
        if problems:
            raise ApiError(400, "invalid_request_error", problems[0])
        if len(marks) > 4:
            raise ApiError(
                400,
                "invalid_request_error",
                f"A maximum of 4 blocks with cache_control may be provided. Found {len(marks)}.",
            )
        seen_5m = False
        for _, ttl in marks:
            if ttl == "5m":
                seen_5m = True
            elif seen_5m:
                raise ApiError(
                    400,
                    "invalid_request_error",
                    "A cache_control block with ttl='1h' must not come after a block with ttl='5m'. "
                    "Blocks are processed in this order: tools, system, messages.",
                )
        prefix = []
        running = 0
        for item in seq:
            running += item.tokens
            prefix.append(running)
        total = running
        hashes = self._prefix_hashes(api_key, model, seq)
        minimum = min_cacheable_tokens(model)
        now = self.clock.now()
        with self._lock:
            for key in [k for k, e in self._cache.items() if e.expires <= now]:
                del self._cache[key]
            read_pos, read = -1, 0
            for pos, _ in sorted(marks, reverse=True):
                for cand in range(pos, max(-1, pos - LOOKBACK_BLOCKS), -1):
                    entry = self._cache.get(hashes[cand])
                    if entry is not None:
                        read_pos, read = cand, entry.tokens
                        entry.expires = now + TTL_SECONDS[entry.ttl]  # every hit refreshes the TTL
                        break
                if read_pos >= 0:
                    break
            w1h_end = w_end = read
            for pos, ttl in sorted(marks):
                if pos <= read_pos or prefix[pos] < minimum:
                    continue
                self._cache[hashes[pos]] = _Entry(prefix[pos], ttl, now + TTL_SECONDS[ttl])
                w_end = max(w_end, prefix[pos])
                if ttl == "1h":
                    w1h_end = max(w1h_end, prefix[pos])
        write_1h = w1h_end - read
        write_5m = w_end - read - write_1h
        return Usage(input=total - w_end, write_5m=write_5m, write_1h=write_1h, read=read)

    # -- HTTP -------------------------------------------------------------------------------------

    def _check_auth(self, request: Request) -> str:
        key = request.headers.get("x-api-key") or ""
        if not key and request.headers.get("authorization", "").lower().startswith("bearer "):
            key = request.headers["authorization"][7:]
        if not key:
            raise ApiError(401, "authentication_error", "x-api-key header is required")
        return key

    async def _messages(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "invalid_request_error", "request body is not valid JSON")
        self.seen.append(Seen("/v1/messages", dict(request.headers), body))
        try:
            key = self._check_auth(request)
            if self.failures:
                status, kind = self.failures.pop(0)
                raise ApiError(status, kind, "Overloaded" if status == 529 else "Internal server error")
            for name in ("model", "max_tokens", "messages"):
                if name not in body:
                    raise ApiError(400, "invalid_request_error", f"{name}: Field required")
            usage = self.account(key, body)
        except ApiError as exc:
            return _error(exc.status, exc.kind, exc.message)
        words, stop_reason = self._answer(body)
        usage.output = len(words) + 1
        message_id = "msg_" + uuid.uuid4().hex[:24]
        headers = {"request-id": "req_" + uuid.uuid4().hex[:24]}
        if not body.get("stream"):
            return JSONResponse(
                {
                    "id": message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": body["model"],
                    "content": [{"type": "text", "text": " ".join(words)}],
                    "stop_reason": stop_reason,
                    "stop_sequence": None,
                    "usage": usage.as_json(),
                },
                headers=headers,
            )
        return StreamingResponse(
            self._events(message_id, body["model"], words, stop_reason, usage),
            media_type="text/event-stream",
            headers={**headers, "cache-control": "no-cache"},
        )

    def _answer(self, body: Mapping[str, Any]) -> tuple[list[str], str]:
        """A deterministic reply that depends on the last user text; cut at ``max_tokens``."""
        last = ""
        for message in body.get("messages") or []:
            if isinstance(message, dict) and message.get("role") == "user":
                texts = [b.get("text", "") for b in _blocks(message.get("content")) if isinstance(b, dict)]
                last = " ".join(t for t in texts if isinstance(t, str))
        words = ["Answer", "to:", *last.split()[:40]]
        limit = max(1, int(body.get("max_tokens", 1024)) - 1)
        if len(words) > limit:
            return words[:limit], "max_tokens"
        return words, "end_turn"

    async def _events(
        self, message_id: str, model: str, words: list[str], stop_reason: str, usage: Usage
    ) -> AsyncIterator[bytes]:
        import asyncio

        def event(kind: str, data: Mapping[str, Any]) -> bytes:
            return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()

        start = usage.as_json() | {"output_tokens": 1}
        yield event(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": start,
                },
            },
        )
        yield event(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        )
        yield event("ping", {"type": "ping"})
        for i, word in enumerate(words):
            if self.stream_delay:
                await asyncio.sleep(self.stream_delay)
            text = word if i == 0 else " " + word
            yield event(
                "content_block_delta",
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}},
            )
        yield event("content_block_stop", {"type": "content_block_stop", "index": 0})
        final = usage.as_json()
        delta_usage = {
            k: final[k]
            for k in (
                "input_tokens",
                "cache_creation_input_tokens",
                "cache_read_input_tokens",
                "output_tokens",
            )
        }
        yield event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": delta_usage,
            },
        )
        yield event("message_stop", {"type": "message_stop"})

    async def _count_tokens(self, request: Request) -> Response:
        body = await request.json()
        self.seen.append(Seen("/v1/messages/count_tokens", dict(request.headers), body))
        try:
            self._check_auth(request)
        except ApiError as exc:
            return _error(exc.status, exc.kind, exc.message)
        return JSONResponse({"input_tokens": sum(b.tokens for b in _sequence(body))})

    async def _models(self, request: Request) -> Response:
        self.seen.append(Seen("/v1/models", dict(request.headers), {}))
        ids = ["claude-sonnet-5-5", "claude-opus-5-5", "claude-haiku-5-5"]
        data = [
            {"type": "model", "id": i, "display_name": i, "created_at": "2026-06-01T00:00:00Z"} for i in ids
        ]
        return JSONResponse({"data": data, "has_more": False, "first_id": ids[0], "last_id": ids[-1]})

    @property
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/messages", self._messages, methods=["POST"]),
                Route("/v1/messages/count_tokens", self._count_tokens, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
            ]
        )


# The same loopback uvicorn runner as the OpenAI fake; `serve` is the name these tests use.
serve = run_server
