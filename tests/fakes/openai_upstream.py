"""A small real OpenAI-compatible HTTP server for fault injection (what real vLLM cannot be made to do
on demand): 500s, dropped streams, slow answers, answers cut by the length limit.

Speaks the wire format of vLLM's ``/v1/chat/completions`` and ``/v1/completions`` (JSON and SSE with
``data: [DONE]``, the usage chunk with ``stream_options.include_usage``), ``GET /health`` and
``GET /v1/models``. Markers in the last user message choose a fault: ``[[500]]``, ``[[drop]]`` (the
stream stops mid-way without ``[DONE]`` and the connection is cut), ``[[slow]]`` (0.3 s before
answering), ``[[length]]`` (``finish_reason: "length"``). Every answer carries a serial number, so a
test can tell an upstream answer from a replayed one.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


@dataclass
class FakeOpenAI:
    model: str = "tiny-llama"
    requests: list[dict[str, Any]] = field(default_factory=list)
    healthy: bool = True
    _serial: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def _answer(self, prompt: str) -> tuple[str, str]:
        n = next(self._serial)
        finish = "length" if "[[length]]" in prompt else "stop"
        return f"answer {n} to: {prompt}", finish

    async def _complete(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        chat = request.url.path.endswith("/chat/completions")
        if chat:
            prompt = next((m["content"] for m in reversed(body["messages"]) if m["role"] == "user"), "")
        else:
            prompt = body["prompt"]
        if "[[500]]" in prompt:
            return JSONResponse(
                {"error": {"message": "injected failure", "type": "InternalServerError"}}, 500
            )
        if "[[slow]]" in prompt:
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
            return JSONResponse(doc)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        drop = "[[drop]]" in prompt

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

        return StreamingResponse(events(), media_type="text/event-stream")

    async def _health(self, request: Request) -> Response:
        return Response(status_code=200 if self.healthy else 503)

    async def _models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": self.model, "object": "model"}]})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._complete, methods=["POST"]),
                Route("/v1/completions", self._complete, methods=["POST"]),
                Route("/health", self._health, methods=["GET"]),
                Route("/v1/models", self._models, methods=["GET"]),
            ]
        )


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
