"""The sidecar in front of the (fake) Anthropic API, driven by the official ``anthropic`` client.

The Anthropic API is unreachable from here; ``tests/fakes/anthropic_upstream.py`` speaks its wire
format and simulates its prompt cache. The sidecar runs in-process with its real app, memory store
and local embedder, on a loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fakes.anthropic_upstream import FakeAnthropic, serve
from hermes_sidecar.app import create_app
from hermes_sidecar.config import parse_config

pytestmark = pytest.mark.integration

MODEL = "claude-sonnet-5-5"
SYSTEM = (
    "You are the contracts assistant of a legal team. Answer in plain English, cite the clause "
    "number, never give advice beyond the document, and flag anything that looks unusual. "
) * 60  # about 2,000 tokens: above Sonnet's 1,024-token minimum
QUESTIONS = ("What does clause 4 say about termination?", "List every payment deadline with its amount.")


@pytest.fixture
def fake() -> FakeAnthropic:
    return FakeAnthropic()


@pytest.fixture
def sidecar(fake: FakeAnthropic, tmp_path: Path) -> Iterator[str]:
    with serve(fake.app) as upstream:
        key_file = tmp_path / "anthropic-key"
        key_file.write_text("sk-sidecar-key\n")
        cfg = parse_config(
            {
                "listen": "127.0.0.1:1",  # not used: the test server binds its own port
                "upstream": {"kind": "anthropic", "url": upstream, "apiKeyFile": str(key_file)},
                "cache": {"backend": "memory"},
            }
        )
        with serve(create_app(cfg), lifespan="on") as url:
            yield url


def client(url: str, key: str = "sk-client") -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key=key, max_retries=0)


def metrics(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{url}/metrics").text
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def total(m: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **match: str) -> float:
    return sum(
        v for (n, labels), v in m.items() if n == name and all((k, w) in labels for k, w in match.items())
    )


def ask(c: anthropic.Anthropic, question: str, stream: bool) -> tuple[Any, str]:
    kw: dict[str, Any] = {"model": MODEL, "max_tokens": 200, "system": SYSTEM,
                          "messages": [{"role": "user", "content": question}]}  # fmt: skip
    if stream:
        with c.messages.stream(**kw) as s:
            message = s.get_final_message()
            header = s.response.headers.get("x-hermes-cache", "")
        return message, header
    raw = c.messages.with_raw_response.create(**kw)
    return raw.parse(), raw.headers.get("x-hermes-cache", "")


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_long_system_prompt_twice_writes_then_reads_and_metrics_show_the_saving(
    fake: FakeAnthropic, sidecar: str, stream: bool
) -> None:
    with client(sidecar) as c:
        first, h1 = ask(c, QUESTIONS[0], stream)
        second, h2 = ask(c, QUESTIONS[1], stream)
    assert (h1, h2) == ("miss", "miss")
    # the client set no cache_control: the sidecar placed between 1 and 4 breakpoints
    seen = fake.messages_requests
    assert len(seen) == 2
    assert all(1 <= len(s.breakpoints) <= 4 for s in seen)
    assert first.usage.cache_creation_input_tokens > 1024 and first.usage.cache_read_input_tokens == 0
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    m = metrics(sidecar)
    read = total(m, "hermes_prompt_cache_tokens_total", **{"class": "cache_read"})
    written = total(m, "hermes_prompt_cache_tokens_total", **{"class": "cache_write_5m"})
    assert read == second.usage.cache_read_input_tokens
    assert written == first.usage.cache_creation_input_tokens
    assert total(m, "hermes_prompt_cache_tokens_total", **{"class": "output"}) == (
        first.usage.output_tokens + second.usage.output_tokens
    )
    # Sonnet 5.5: a 5m write costs $0.50/MTok above input, a read saves $1.90/MTok
    saved = total(m, "hermes_prompt_cache_saved_usd_total")
    assert saved == pytest.approx((read * 1.90 - written * 0.50) / 1e6)
    assert saved > 0
    assert total(m, "hermes_prompt_cache_unrecovered_premium_usd") == 0
    cost = total(m, "hermes_prompt_cache_cost_usd_total")
    assert total(m, "hermes_prompt_cache_uncached_cost_usd_total") - cost == pytest.approx(saved)


def test_streaming_reports_the_same_numbers_as_json(fake: FakeAnthropic, sidecar: str) -> None:
    with client(sidecar) as c:
        ask(c, QUESTIONS[0], stream=False)
        as_json, _ = ask(c, QUESTIONS[1], stream=False)
        as_stream, _ = ask(c, "Which clause covers confidentiality obligations?", stream=True)
    assert as_stream.usage.cache_read_input_tokens == as_json.usage.cache_read_input_tokens
    assert as_stream.usage.cache_creation_input_tokens == as_json.usage.cache_creation_input_tokens == 0


def test_a_repeat_is_served_from_the_semantic_cache_as_a_valid_stream_and_counted_as_saved(
    fake: FakeAnthropic, sidecar: str
) -> None:
    with client(sidecar) as c:
        original, _ = ask(c, QUESTIONS[0], stream=False)
        before = metrics(sidecar)
        replay, header = ask(c, QUESTIONS[0], stream=True)
        again, header_json = ask(c, QUESTIONS[0], stream=False)
    assert header.startswith("hit-") and header_json.startswith("hit-")
    assert len(fake.messages_requests) == 1, "a hit must not reach the upstream"
    assert replay.content[0].text == again.content[0].text == original.content[0].text
    assert replay.usage.input_tokens == replay.usage.output_tokens == 0  # not billed
    after = metrics(sidecar)
    assert total(after, "hermes_prompt_cache_cost_usd_total") == total(
        before, "hermes_prompt_cache_cost_usd_total"
    )
    tokens = "hermes_prompt_cache_tokens_total"
    assert total(after, tokens) == total(before, tokens), "a hit adds no billed tokens"
    u = original.usage
    uncached_call = ((u.input_tokens + u.cache_creation_input_tokens + u.cache_read_input_tokens) * 2
                     + u.output_tokens * 10) / 1e6  # fmt: skip
    gained = total(after, "hermes_prompt_cache_semantic_hit_saved_usd_total")
    assert gained == pytest.approx(2 * uncached_call)


def test_the_client_key_wins_and_the_key_file_fills_in(fake: FakeAnthropic, sidecar: str) -> None:
    with client(sidecar, key="sk-client") as c:
        ask(c, QUESTIONS[0], stream=False)
    payload = {"model": MODEL, "max_tokens": 50, "messages": [{"role": "user", "content": "Hello there"}]}
    reply = httpx.post(f"{sidecar}/v1/messages", json=payload, headers={"anthropic-version": "2023-06-01"})
    assert reply.status_code == 200
    # this SDK sends its key as "authorization: Bearer"; either way the client's own key is kept
    keys = [s.headers.get("x-api-key") or s.headers.get("authorization") for s in fake.messages_requests]
    assert keys == ["Bearer sk-client", "sk-sidecar-key"]


def test_other_routes_pass_through(fake: FakeAnthropic, sidecar: str) -> None:
    with client(sidecar) as c:
        count = c.messages.count_tokens(
            model=MODEL, system=SYSTEM, messages=[{"role": "user", "content": "hi"}]
        )
        models = c.models.list()
    assert count.input_tokens > 1024
    assert "claude-sonnet-5-5" in {m.id for m in models.data}
    assert [s.path for s in fake.seen] == ["/v1/messages/count_tokens", "/v1/models"]


def test_a_fifth_breakpoint_from_the_client_reaches_the_client_as_the_real_400(sidecar: str) -> None:
    five = [
        {"type": "text", "text": f"part {i} " * 300, "cache_control": {"type": "ephemeral"}} for i in range(5)
    ]
    with client(sidecar) as c, pytest.raises(anthropic.BadRequestError, match="maximum of 4 blocks"):
        c.messages.create(model=MODEL, max_tokens=20, system=five,  # type: ignore[arg-type]
                          messages=[{"role": "user", "content": "hi"}])  # fmt: skip
