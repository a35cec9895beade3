"""Tool plans (cache.toolPlans) through the HTTP sidecar on a real Redis, in front of a real vLLM.

Two upstreams:

- the real vLLM (tiny random model on the CPU): the session's ``vllm_url`` (tests/integration/conftest.py),
  started with tool calling on (``HERMES_VLLM_TOOLS=1`` in scripts/vllm/start.sh: the pythonic parser,
  structured outputs through xgrammar without free whitespace). The random model never chooses to call
  a tool by itself, but with a named ``tool_choice`` vLLM constrains its output to the tool's JSON
  schema, so it answers with real ``tool_calls`` in OpenAI's wire format: this tests the wire (vLLM's
  tool_calls stored, replayed, and the agent's follow-up with ``role: tool`` messages).
- recorded answers of a capable model (bench/data/agent_trace.jsonl) served by a small HTTP server,
  so that the plans are realistic ones: the reuse rules are tested on them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import REPO_ROOT
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fakes.openai_upstream import run_server
from hermes_sidecar.app import create_app
from hermes_sidecar.config import parse_config
from hermes_sidecar.embed import LocalEmbedder

pytestmark = pytest.mark.integration
CHAT = "/v1/chat/completions"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city",
        "parameters": {
            "type": "object",
            # one city: the random model's plan then names the city the question does, which a paraphrase
            # needs to be served it (a plan is served only to a question naming its string arguments)
            "properties": {"city": {"type": "string", "enum": ["Paris"]}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
TRACE = REPO_ROOT / "bench" / "data" / "agent_trace.jsonl"


@pytest.fixture
def start_sidecar(
    redis_url: str, embedder: LocalEmbedder, tmp_path: Path
) -> Iterator[Callable[..., httpx.Client]]:
    scope = f"it-{uuid.uuid4().hex[:8]}/plans"
    with ExitStack() as stack:

        def start(upstream: str, **cache: Any) -> httpx.Client:
            cfg = parse_config(
                {
                    "upstream": {"url": upstream, "timeoutSeconds": 120},
                    "cache": {"backend": "redis", "redisUrl": redis_url, "scope": scope, **cache},
                }
            )
            url = stack.enter_context(run_server(create_app(cfg, embedder=embedder), lifespan="on"))
            return stack.enter_context(httpx.Client(base_url=url, timeout=120))

        yield start


def until_hit(send: Callable[[], httpx.Response], timeout: float = 10.0) -> httpx.Response:
    """The first response served from the cache (answers are stored in the background)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        resp = send()
        if resp.headers["x-hermes-cache"].startswith("hit") or time.monotonic() > deadline:
            return resp
        time.sleep(0.05)


def tool_calls(resp: httpx.Response) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = resp.json()["choices"][0]["message"].get("tool_calls") or []
    return calls


# -- the wire, with the real vLLM ---------------------------------------------------------------------


def test_vllm_tool_calls_are_reused_as_the_plan_and_the_answer_only_for_identical_results(
    start_sidecar: Callable[..., httpx.Client], vllm_url: str
) -> None:
    client = start_sidecar(vllm_url, toolPlans={"enabled": True}, storeTruncated=True)
    named = {"type": "function", "function": {"name": "get_weather"}}

    def ask(question: str) -> httpx.Response:
        body = {
            "model": "tiny-llama",
            "messages": [{"role": "user", "content": question}],
            "tools": [WEATHER_TOOL],
            "tool_choice": named,
            "temperature": 0,
            "max_tokens": 32,
        }
        return client.post(CHAT, json=body, headers={"x-tenant-id": "agents"})

    first = ask("What's the weather in Paris today?")
    assert first.status_code == 200, first.text
    assert first.headers["x-hermes-cache"] == "miss"  # a live-data question, no longer passed through
    plan = tool_calls(first)
    assert plan and plan[0]["function"]["name"] == "get_weather"
    city = json.loads(plan[0]["function"]["arguments"])["city"]
    assert city == "Paris"  # vLLM held the random model to the schema
    repeat = until_hit(lambda: ask("What's the weather in Paris today?"))
    assert repeat.headers["x-hermes-cache"] == "hit-exact"
    assert tool_calls(repeat) == plan  # the ids too: the agent answers each call by its id
    para = ask("How is the weather in Paris today?")
    assert para.headers["x-hermes-cache"] == "hit-semantic" and tool_calls(para) == plan

    # the agent ran the tool; vLLM answers from the result (tool_choice none: text)
    def follow_up(result: str, call_id: str) -> httpx.Response:
        call = {**plan[0], "id": call_id}
        body = {
            "model": "tiny-llama",
            "messages": [
                {"role": "user", "content": "What's the weather in Paris today?"},
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": call_id, "content": result},
            ],
            "tools": [WEATHER_TOOL],
            "tool_choice": "none",
            "temperature": 0,
            "max_tokens": 8,
        }
        return client.post(CHAT, json=body, headers={"x-tenant-id": "agents"})

    rain = json.dumps({"city": city, "temp_c": 14, "sky": "rain"})
    answered = follow_up(rain, plan[0]["id"])
    assert answered.status_code == 200, answered.text
    assert answered.headers["x-hermes-cache"] == "miss"
    text = answered.json()["choices"][0]["message"]["content"]
    # identical results, though another run of the agent gave the call another id
    again = until_hit(lambda: follow_up(rain, "call_other_run"))
    assert again.headers["x-hermes-cache"] == "hit-exact"
    assert again.json()["choices"][0]["message"]["content"] == text
    # the live data moved: vLLM answers again
    sun = json.dumps({"city": city, "temp_c": 15, "sky": "sun"})
    assert follow_up(sun, plan[0]["id"]).headers["x-hermes-cache"] == "miss"


def test_without_tool_plans_the_live_data_question_is_passed_through(
    start_sidecar: Callable[..., httpx.Client], vllm_url: str
) -> None:
    client = start_sidecar(vllm_url)
    body = {
        "model": "tiny-llama",
        "messages": [{"role": "user", "content": "What's the weather in Paris today?"}],
        "tools": [WEATHER_TOOL],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "temperature": 0,
        "max_tokens": 32,
    }
    for _ in range(2):
        resp = client.post(CHAT, json=body)
        assert resp.status_code == 200 and resp.headers["x-hermes-cache"] == "bypass"
        assert tool_calls(resp)


# -- realistic plans, recorded -------------------------------------------------------------------------


class Recorded:
    """Answers as the recorded model did: the plan to a question, the final answer to tool results."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.plans: dict[str, dict[str, Any]] = {}
        self.finals: dict[str, dict[str, Any]] = {}
        for row in rows:
            msgs = row["messages"]
            question = next(m["content"] for m in msgs if m["role"] == "user")
            self.plans[question] = next(m for m in msgs if m.get("tool_calls"))
            results = tuple(m["content"] for m in msgs if m["role"] == "tool")
            self.finals[json.dumps([question, results])] = msgs[-1]
        self.calls = 0

    async def complete(self, request: Request) -> Response:
        body = await request.json()
        self.calls += 1
        msgs = body["messages"]
        question = next(m["content"] for m in msgs if m["role"] == "user")
        results = tuple(m["content"] for m in msgs if m["role"] == "tool")
        message = self.finals[json.dumps([question, results])] if results else self.plans[question]
        finish = "tool_calls" if message.get("tool_calls") else "stop"
        return JSONResponse(
            {
                "id": f"chatcmpl-rec-{self.calls}",
                "object": "chat.completion",
                "created": 1796371200,
                "model": body["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": {"prompt_tokens": 310, "completion_tokens": 24, "total_tokens": 334},
            }
        )

    def app(self) -> Starlette:
        return Starlette(routes=[Route(CHAT, self.complete, methods=["POST"])])


def test_recorded_plans_are_reused_across_paraphrases_and_dated_plans_never(
    start_sidecar: Callable[..., httpx.Client],
) -> None:
    rows = [json.loads(line) for line in TRACE.read_text().splitlines()]
    recorded = Recorded(rows)
    with run_server(recorded.app()) as upstream:
        client = start_sidecar(upstream, toolPlans={"enabled": True})

        def ask(question: str) -> httpx.Response:
            row = next(r for r in rows if question in [m.get("content") for m in r["messages"]])
            messages = [m for m in row["messages"] if m["role"] == "system"] + [
                {"role": "user", "content": question}
            ]
            body = {"model": "agent-model", "messages": messages, "tools": row["tools"], "temperature": 0}
            return client.post(CHAT, json=body, headers={"x-tenant-id": "agents"})

        first = ask("What's the weather in Berlin today?")
        assert first.headers["x-hermes-cache"] == "miss" and recorded.calls == 1
        plan = tool_calls(first)
        assert [json.loads(c["function"]["arguments"]) for c in plan] == [{"city": "Berlin"}]
        para = until_hit(lambda: ask("How's the weather in Berlin today?"))
        assert para.headers["x-hermes-cache"] == "hit-semantic" and tool_calls(para) == plan
        assert para.json()["choices"][0]["finish_reason"] == "tool_calls"
        # another city: a plan of its own
        assert ask("What's the weather in Madrid today?").headers["x-hermes-cache"] == "miss"
        # get_forecast(date="2026-12-05") was made for one day: never stored, never served
        calls = recorded.calls
        for _ in range(2):
            dated = ask("What's the weather forecast for Paris tomorrow?")
            assert dated.headers["x-hermes-cache"] == "miss"
        assert recorded.calls == calls + 2
        assert tool_calls(dated)[0]["function"]["name"] == "get_forecast"
    metrics = client.get("/metrics").text
    assert 'hermes_cache_not_stored_total{reason="plan-depends-on-time"} 2.0' in metrics
    assert 'hermes_cache_tool_plan_requests_total{result="hit_semantic",stage="plan"} 1.0' in metrics
