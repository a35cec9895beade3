"""A small real OpenAI-compatible HTTP server for fault injection (what real vLLM cannot be made to do
on demand): 500s, dropped streams, slow answers, answers cut by the length limit.

Speaks the wire format of vLLM's ``/v1/chat/completions`` and ``/v1/completions`` (JSON and SSE with
``data: [DONE]``, the usage chunk with ``stream_options.include_usage``), ``GET /health`` and
``GET /v1/models``. Markers in the last user message choose a fault: ``[[500]]``, ``[[drop]]`` (the
stream stops mid-way without ``[DONE]`` and the connection is cut), ``[[slow]]`` (0.3 s before
answering), ``[[length]]`` (``finish_reason: "length"``); ``faults=False`` turns the markers off.
Every answer carries a serial number, so a test can tell an upstream answer from a replayed one.

It is strict, as vLLM's request validation is: a body that is not JSON, not an object, or has a
field of the wrong type is answered ``400`` in the OpenAI error format, never with a 5xx. Every
response carries ``x-fake-upstream: openai``, so a test can tell the fake's answers from the
sidecar's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

MARK = {"x-fake-upstream": "openai"}
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_NUMBERS = ("temperature", "top_p", "presence_penalty", "frequency_penalty", "repetition_penalty", "min_p")
_INTS = ("max_tokens", "max_completion_tokens", "seed", "top_k", "min_tokens", "best_of")


class Refused(Exception):
    """What the fake refuses: answered 400, naming the field (``param``)."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    if _is_int(value):
        return abs(value) < 2**1023  # what a float holds
    return isinstance(value, float) and math.isfinite(value)


def _text(value: Any, param: str) -> str:
    """Message content: a string, a list of parts (text parts joined), or null."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        texts = []
        for i, part in enumerate(value):
            if not isinstance(part, Mapping) or not isinstance(part.get("type"), str):
                raise Refused(f"{param}.{i}", "each content part must be an object with a string type")
            if part["type"] == "text":
                if not isinstance(part.get("text"), str):
                    raise Refused(f"{param}.{i}.text", "a text part needs a string text")
                texts.append(part["text"])
        return "\n".join(texts)
    raise Refused(param, "content must be a string, a list of parts or null")


def validate(body: Any, chat: bool) -> str:
    """The prompt (last user message or completion prompt) of a request the fake accepts, or Refused."""
    if not isinstance(body, Mapping):
        raise Refused("", "the body must be a JSON object")
    if "model" in body and not isinstance(body["model"], str):
        raise Refused("model", "model must be a string")
    for key in ("stream", "echo", "logprobs", "ignore_eos"):
        if key in body and body[key] is not None and not isinstance(body[key], bool):
            raise Refused(key, f"{key} must be a boolean")
    opts = body.get("stream_options")
    if opts is not None:
        if not isinstance(opts, Mapping):
            raise Refused("stream_options", "stream_options must be an object")
        if not isinstance(opts.get("include_usage", False), bool):
            raise Refused("stream_options.include_usage", "include_usage must be a boolean")
    for key in _NUMBERS:
        if body.get(key) is not None and not _is_number(body[key]):
            raise Refused(key, f"{key} must be a finite number")
    for key in (*_INTS, "n"):
        if body.get(key) is not None and not _is_int(body[key]):
            raise Refused(key, f"{key} must be an integer")
    if body.get("n") is not None and not 1 <= body["n"] <= 16:
        raise Refused("n", "n must be between 1 and 16")
    stop = body.get("stop")
    strings = isinstance(stop, list) and all(isinstance(s, str) for s in stop)
    if stop is not None and not isinstance(stop, str) and not strings:
        raise Refused("stop", "stop must be a string or a list of strings")
    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise Refused("messages", "messages must be a non-empty list")
        prompt = ""
        for i, m in enumerate(messages):
            if not isinstance(m, Mapping) or not isinstance(m.get("role"), str) or m["role"] not in _ROLES:
                raise Refused(
                    f"messages.{i}", f"each message must be an object with a role in {sorted(_ROLES)}"
                )
            text = _text(m.get("content"), f"messages.{i}.content")
            if m["role"] == "user":
                prompt = text
        return prompt
    prompt = body.get("prompt")
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        return "\n".join(prompt)
    if isinstance(prompt, list) and prompt and all(_is_int(p) for p in prompt):
        return " ".join(map(str, prompt))  # token ids
    if not isinstance(prompt, str):
        raise Refused("prompt", "prompt must be a string, a list of strings or a list of token ids")
    return prompt


@dataclass
class FakeOpenAI:
    model: str = "tiny-llama"
    requests: list[dict[str, Any]] = field(default_factory=list)
    # the client's (host, port) of each completion request: a new port is a new connection
    peers: list[tuple[str, int]] = field(default_factory=list)
    healthy: bool = True
    faults: bool = True  # the [[500]], [[drop]], [[slow]] markers
    # seconds between a stream's `data: [DONE]` and the end of its body (vLLM takes a moment to finish)
    linger: float = 0.0
    _serial: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def _answer(self, prompt: str) -> tuple[str, str]:
        n = next(self._serial)
        finish = "length" if "[[length]]" in prompt else "stop"
        return f"answer {n} to: {prompt}", finish

    async def _complete(self, request: Request) -> Response:
        chat = request.url.path.endswith("/chat/completions")
        try:
            body = json.loads(await request.body())
            prompt = validate(body, chat)
        except (ValueError, RecursionError) as exc:
            return _refuse("", f"the body is not valid JSON: {exc}")
        except Refused as exc:
            return _refuse(exc.param, str(exc))
        self.requests.append(body)
        if request.client is not None:
            self.peers.append((request.client.host, request.client.port))
        if self.faults and "[[500]]" in prompt:
            return JSONResponse(
                {"error": {"message": "injected failure", "type": "InternalServerError"}}, 500, headers=MARK
            )
        if self.faults and "[[slow]]" in prompt:
            await asyncio.sleep(0.3)
        text, finish = self._answer(prompt)
        usage = {"prompt_tokens": len(prompt.split()) + 5, "completion_tokens": len(text.split())}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        rid, created = f"{'chatcmpl' if chat else 'cmpl'}-{time.monotonic_ns()}", int(time.time())
        if not body.get("stream"):
            choice: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": finish}
            if chat:
                choice["message"] = {"role": "assistant", "content": text}
            else:
                choice["text"] = text
            doc = {
                "id": rid,
                "object": "chat.completion" if chat else "text_completion",
                "created": created,
                "model": body.get("model", self.model),
                "choices": [choice],
                "usage": usage,
            }
            return JSONResponse(doc, headers=MARK)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        drop = self.faults and "[[drop]]" in prompt

        async def events() -> AsyncIterator[bytes]:
            obj = "chat.completion.chunk" if chat else "text_completion"

            def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
                doc = {
                    "id": rid,
                    "object": obj,
                    "created": created,
                    "model": body.get("model"),
                    "choices": choices,
                }
                return b"data: " + json.dumps({**doc, **extra}).encode() + b"\n\n"

            if chat:
                yield chunk(
                    [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]
                )
            words = text.split(" ")
            for i, w in enumerate(words):
                piece = w if i == 0 else " " + w
                if chat:
                    yield chunk(
                        [{"index": 0, "delta": {"content": piece}, "logprobs": None, "finish_reason": None}]
                    )
                else:
                    yield chunk([{"index": 0, "text": piece, "logprobs": None, "finish_reason": None}])
                if drop and i == len(words) // 2:
                    raise ConnectionResetError("injected stream drop")
                await asyncio.sleep(0)
            last = {"index": 0, "logprobs": None, "finish_reason": finish}
            last.update({"delta": {}} if chat else {"text": ""})
            yield chunk([last])
            if include_usage:
                yield chunk([], usage=usage)
            yield b"data: [DONE]\n\n"
            if self.linger:
                await asyncio.sleep(self.linger)

        return StreamingResponse(events(), media_type="text/event-stream", headers=MARK)

    async def _health(self, request: Request) -> Response:
        return Response(status_code=200 if self.healthy else 503, headers=MARK)

    async def _models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": self.model, "object": "model"}]}, headers=MARK)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._complete, methods=["POST"]),
                Route("/v1/completions", self._complete, methods=["POST"]),
                Route("/health", self._health, methods=["GET"]),
                Route("/v1/models", self._models, methods=["GET"]),
            ]
        )


def _refuse(param: str, message: str) -> Response:
    error = {"message": message, "type": "BadRequestError", "param": param or None, "code": 400}
    return JSONResponse({"error": error}, 400, headers=MARK)


@contextlib.contextmanager
def run_server(app: Any, *, lifespan: str = "off") -> Iterator[str]:
    """Run an ASGI app under uvicorn on a free loopback port in a thread; yield its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan=lifespan, ws="none", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
