"""The Anthropic dialect: partitions, stored answers, replay the official client can parse, and the
metrics a user reads to see what prompt caching cost and saved."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from fakes.anthropic_upstream import serve
from hermes_sidecar.config import PromptCacheConfig
from hermes_sidecar.dialects.anthropic import AnthropicDialect, PromptCacheAccounting, price_table_from_config
from hermes_sidecar.dialects.base import NotCacheable, ReplayInfo

MODEL = "claude-sonnet-5-5"  # $2 input, $2.50 5m write, $0.10 read, $10 output per MTok


def body(**extra: Any) -> dict[str, Any]:
    b: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 100,
        "system": "You are terse.",
        "messages": [{"role": "user", "content": "How do I rotate a key?"}],
    }
    b.update(extra)
    return b


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def dialect(registry: CollectorRegistry) -> AnthropicDialect:
    cfg = PromptCacheConfig()
    return AnthropicDialect(cfg, accounting=PromptCacheAccounting(price_table_from_config(cfg), registry))


def metric(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels or None) or 0.0


def test_partition_ignores_cache_markers_but_not_tools_or_sampling(dialect: AnthropicDialect) -> None:
    tools = [{"name": "lookup", "input_schema": {"type": "object"}}]
    plain = dialect.parse_request("/v1/messages", body(tools=tools))
    marked_tools = [dict(tools[0], cache_control={"type": "ephemeral"})]
    marked_system = [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}]
    marked = dialect.parse_request("/v1/messages", body(tools=marked_tools, system=marked_system))
    assert (plain.system, plain.shape, plain.turns) == (marked.system, marked.shape, marked.turns)
    assert dialect.parse_request("/v1/messages", body()).shape != plain.shape
    assert dialect.parse_request("/v1/messages", body(temperature=0.2)).sampling != plain.sampling


def test_tool_results_and_bad_requests_are_flagged(dialect: AnthropicDialect) -> None:
    msgs = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "w", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "sunny"}]},
    ]
    assert dialect.parse_request("/v1/messages", body(messages=msgs)).has_tool_results
    with pytest.raises(NotCacheable):
        dialect.parse_request("/v1/messages", body(messages=[]))
    with pytest.raises(NotCacheable):
        dialect.parse_request("/v1/messages", {"messages": [{"role": "user", "content": "x"}]})


def test_upstream_body_places_breakpoints_and_counts_them(
    dialect: AnthropicDialect, registry: CollectorRegistry
) -> None:
    sent = dialect.upstream_body(body(system="Policy. " * 1200), None)
    assert sent["system"][-1]["cache_control"] == {"type": "ephemeral", "ttl": "5m"}
    assert metric(registry, "hermes_prompt_cache_breakpoints_placed_total", place="system", ttl="5m") == 1
    assert metric(registry, "hermes_prompt_cache_breakpoints_skipped_total", place="tools",
                  reason="nothing_to_cache") == 1  # fmt: skip
    short = dialect.upstream_body(body(), None)
    assert short == body()
    assert metric(registry, "hermes_prompt_cache_breakpoints_skipped_total", place="system",
                  reason="below_minimum") == 1  # fmt: skip


def answer(usage: dict[str, Any], stop_reason: str = "end_turn") -> dict[str, Any]:
    return {
        "id": "msg_1", "type": "message", "role": "assistant", "model": MODEL,
        "content": [{"type": "text", "text": "Use the rotate command."}],
        "stop_reason": stop_reason, "stop_sequence": None, "usage": usage,
    }  # fmt: skip


WRITE = {"input_tokens": 20, "output_tokens": 100, "cache_creation_input_tokens": 10_000,
         "cache_read_input_tokens": 0,
         "cache_creation": {"ephemeral_5m_input_tokens": 10_000, "ephemeral_1h_input_tokens": 0}}  # fmt: skip
READ = {"input_tokens": 20, "output_tokens": 100, "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 10_000}  # fmt: skip


def stream_bytes(message: dict[str, Any]) -> list[bytes]:
    """What the API streams for ``message`` (usage in message_start, cumulative in message_delta)."""
    from hermes_sidecar.dialects.anthropic import replay_events

    return list(replay_events(message))


def test_recorder_rebuilds_the_message(dialect: AnthropicDialect) -> None:
    req = dialect.parse_request("/v1/messages", body(stream=True))
    tool = {"type": "tool_use", "id": "toolu_1", "name": "rotate", "input": {"key": "k1", "force": True}}
    msg = answer(READ, stop_reason="tool_use") | {"content": [answer(READ)["content"][0], tool]}
    rec = dialect.recorder(req)
    raw = b"".join(stream_bytes(msg))
    for i in range(0, len(raw), 7):  # events split across network chunks
        assert rec.feed(raw[i : i + 7]) == raw[i : i + 7]
    stored = rec.finish(complete=True)
    assert stored is not None
    assert stored.body["content"] == msg["content"] and stored.body["stop_reason"] == "tool_use"
    assert stored.body["usage"]["cache_read_input_tokens"] == 10_000  # kept to price later hits


def test_truncated_error_and_aborted_answers_are_not_stored(dialect: AnthropicDialect) -> None:
    req = dialect.parse_request("/v1/messages", body())
    assert dialect.answer_from_json(req, answer(READ, stop_reason="max_tokens")) is None
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    assert dialect.answer_from_json(req, error) is None
    rec = dialect.recorder(dialect.parse_request("/v1/messages", body(stream=True)))
    for part in stream_bytes(answer(WRITE))[:3]:
        rec.feed(part)
    assert rec.finish(complete=False) is None


@pytest.fixture
def replay_server(dialect: AnthropicDialect) -> Iterator[str]:
    stored = dialect.answer_from_json(dialect.parse_request("/v1/messages", body()), answer(WRITE))
    assert stored is not None

    async def messages(request: Request) -> Response:
        payload = await request.json()
        req = dialect.parse_request("/v1/messages", payload)
        info = ReplayInfo("hit-exact")
        if payload.get("stream"):
            return StreamingResponse(dialect.replay_sse(req, stored, info), media_type="text/event-stream")
        return Response(dialect.replay_json(req, stored, info), media_type="application/json")

    with serve(Starlette(routes=[Route("/v1/messages", messages, methods=["POST"])])) as url:
        yield url


def test_official_client_parses_replayed_json_and_stream(
    replay_server: str, registry: CollectorRegistry
) -> None:
    with anthropic.Anthropic(base_url=replay_server, api_key="k", max_retries=0) as client:
        got = client.messages.create(**body())  # type: ignore[call-overload]
        with client.messages.stream(**body()) as stream:
            kinds = [e.type for e in stream]
            streamed = stream.get_final_message()
    assert got.content[0].text == streamed.content[0].text == "Use the rotate command."
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    # a hit is not billed: zero usage to the client, zero cost, the whole uncached call saved
    assert got.usage.input_tokens == 0 and streamed.usage.output_tokens == 0
    uncached_call = (10_020 * 2 + 100 * 10) / 1e6
    assert metric(registry, "hermes_prompt_cache_semantic_hit_saved_usd_total", tenant="") == pytest.approx(
        2 * uncached_call
    )
    assert metric(registry, "hermes_prompt_cache_saved_usd_total", tenant="") == pytest.approx(
        2 * uncached_call
    )
    assert metric(registry, "hermes_prompt_cache_cost_usd_total", tenant="") == 0
    assert json.dumps(got.model_dump())  # a plain, serialisable message
