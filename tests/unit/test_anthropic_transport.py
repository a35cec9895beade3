"""Accounting at the upstream transport: every billed Messages call counted once, whatever the cache
decided, and the configured API key used only when the client sends none."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from hermes_sidecar.dialects.anthropic import PromptCacheAccounting, replay_events
from hermes_sidecar.dialects.anthropic.pricing import PriceTable
from hermes_sidecar.dialects.anthropic.transport import AnthropicTransport, read_api_key

MODEL = "claude-sonnet-5-5"  # $2 input, $2.50 5m write, $0.10 read, $10 output per MTok
WRITE = {"input_tokens": 20, "output_tokens": 100, "cache_creation_input_tokens": 10_000,
         "cache_read_input_tokens": 0,
         "cache_creation": {"ephemeral_5m_input_tokens": 10_000, "ephemeral_1h_input_tokens": 0}}  # fmt: skip
READ = {"input_tokens": 20, "output_tokens": 100, "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 10_000}  # fmt: skip


def message(usage: dict[str, Any], model: str = MODEL, stop_reason: str = "end_turn") -> dict[str, Any]:
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": "Done."}], "stop_reason": stop_reason,
            "stop_sequence": None, "usage": usage}  # fmt: skip


class Upstream:
    """Answers each call with the next queued (status, message, streamed)."""

    def __init__(self) -> None:
        self.queue: list[tuple[int, dict[str, Any], bool]] = []
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        status, doc, streamed = self.queue.pop(0)
        if streamed:
            return httpx.Response(status, content=b"".join(replay_events(doc)),
                                  headers={"content-type": "text/event-stream"})  # fmt: skip
        return httpx.Response(status, json=doc)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def upstream() -> Upstream:
    return Upstream()


def client(upstream: Upstream, registry: CollectorRegistry, api_key: str | None = None) -> httpx.AsyncClient:
    acct = PromptCacheAccounting(PriceTable(), registry)
    transport = AnthropicTransport(httpx.MockTransport(upstream), acct, api_key=api_key)
    return httpx.AsyncClient(transport=transport, base_url="http://upstream")


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def total(registry: CollectorRegistry, name: str, **match: str) -> float:
    """Sum of a metric over every label set (for example over all tenants)."""
    return sum(
        s.value for m in registry.collect() for s in m.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in match.items())
    )  # fmt: skip


async def call(c: httpx.AsyncClient, headers: dict[str, str] | None = None, stream: bool = False) -> bytes:
    body = {
        "model": MODEL,
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
        "stream": stream,
    }
    async with c.stream(
        "POST", "/v1/messages", json=body, headers={"x-api-key": "k"} if headers is None else headers
    ) as resp:
        return b"".join([chunk async for chunk in resp.aiter_bytes()])


async def test_write_then_read_streamed_and_not(upstream: Upstream, registry: CollectorRegistry) -> None:
    upstream.queue = [(200, message(WRITE), False), (200, message(READ), True)]
    tenant = {"tenant": "h:team-a"}
    async with client(upstream, registry) as c:
        await call(c, {"x-api-key": "k", "x-tenant-id": "team-a"})
        assert value(registry, "hermes_prompt_cache_saved_usd_total", **tenant) == 0
        assert value(registry, "hermes_prompt_cache_unrecovered_premium_usd", **tenant) == pytest.approx(
            0.005
        )
        raw = await call(c, {"x-api-key": "k", "x-tenant-id": "team-a"}, stream=True)
    assert raw == b"".join(replay_events(message(READ)))  # relayed unchanged
    tokens = {k: value(registry, "hermes_prompt_cache_tokens_total", **{"class": k}, **tenant)
              for k in ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")}  # fmt: skip
    # the streamed answer repeats its cumulative usage in message_delta: still counted once
    assert tokens == {"input": 40, "output": 200, "cache_write_5m": 10_000, "cache_write_1h": 0,
                      "cache_read": 10_000}  # fmt: skip
    # read saves 10,000 x ($2 - $0.10)/MTok = $0.019; the $0.005 write premium comes off first
    assert value(registry, "hermes_prompt_cache_saved_usd_total", **tenant) == pytest.approx(0.014)
    assert value(registry, "hermes_prompt_cache_unrecovered_premium_usd", **tenant) == 0
    cost = (40 * 2 + 200 * 10 + 10_000 * 2.5 + 10_000 * 0.10) / 1e6
    assert value(registry, "hermes_prompt_cache_cost_usd_total", **tenant) == pytest.approx(cost)


async def test_errors_bill_nothing_and_truncated_answers_are_billed(
    upstream: Upstream, registry: CollectorRegistry
) -> None:
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    upstream.queue = [(529, error, False), (200, message(READ, stop_reason="max_tokens"), False)]
    async with client(upstream, registry) as c:
        await call(c)
        assert total(registry, "hermes_prompt_cache_tokens_total") == 0
        await call(c)
    assert total(registry, "hermes_prompt_cache_tokens_total", **{"class": "cache_read"}) == 10_000
    assert total(registry, "hermes_prompt_cache_cost_usd_total") > 0


async def test_a_stream_cut_short_is_billed_for_what_arrived(
    upstream: Upstream, registry: CollectorRegistry
) -> None:
    upstream.queue = [(200, message(WRITE), True)]
    async with client(upstream, registry) as c:
        body = {
            "model": MODEL,
            "max_tokens": 100,
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
        }
        async with c.stream("POST", "/v1/messages", json=body, headers={"x-api-key": "k"}) as resp:
            async for _ in resp.aiter_raw():
                break  # the client went away after the first chunk
    assert total(registry, "hermes_prompt_cache_tokens_total", **{"class": "cache_write_5m"}) == 10_000


async def test_unknown_models_are_priced_by_family_and_flagged(
    upstream: Upstream, registry: CollectorRegistry
) -> None:
    upstream.queue = [(200, message(READ, model="claude-opus-7"), False)]
    async with client(upstream, registry) as c:
        await call(c)
    assert value(registry, "hermes_prompt_cache_unpriced_calls_total", family="opus") == 1


async def test_api_key_from_file_only_when_the_client_sends_none(
    upstream: Upstream, registry: CollectorRegistry, tmp_path: Any
) -> None:
    secret = tmp_path / "key"
    secret.write_text("sk-from-file\n")
    upstream.queue = [(200, message(READ), False)] * 3
    async with client(upstream, registry, api_key=read_api_key(str(secret))) as c:
        await call(c, {})
        await call(c, {"x-api-key": "sk-client"})
        await call(c, {"authorization": "Bearer sk-oauth"})
    assert [r.headers.get("x-api-key") for r in upstream.seen] == ["sk-from-file", "sk-client", None]
    assert json.loads(upstream.seen[0].content)["model"] == MODEL


def test_unreadable_key_file_names_the_field(tmp_path: Any) -> None:
    with pytest.raises(ValueError, match=r"upstream.apiKeyFile .* cannot be read"):
        read_api_key(str(tmp_path / "missing"))
    (tmp_path / "empty").write_text("")
    with pytest.raises(ValueError, match="is empty"):
        read_api_key(str(tmp_path / "empty"))
