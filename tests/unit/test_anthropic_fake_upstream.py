"""The fake Anthropic upstream behaves like the real prompt cache, so sidecar tests mean something.

Driven with the official ``anthropic`` client, straight at the fake (no sidecar in between)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from fakes.anthropic_upstream import FakeAnthropic, serve

MODEL = "claude-sonnet-5-5"
LONG = "You review contracts for a legal team and answer in plain English. " * 150  # ~1,800 fake tokens


@pytest.fixture
def fake() -> FakeAnthropic:
    return FakeAnthropic()


@pytest.fixture
def client(fake: FakeAnthropic) -> Iterator[anthropic.Anthropic]:
    with serve(fake.app) as url, anthropic.Anthropic(base_url=url, api_key="test-key", max_retries=0) as c:
        yield c


def system(ttl: str | None = "5m", text: str = LONG) -> list[dict[str, Any]]:
    block: dict[str, Any] = {"type": "text", "text": text}
    if ttl:
        block["cache_control"] = {"type": "ephemeral", "ttl": ttl}
    return [block]


def ask(client: anthropic.Anthropic, sys: Any, question: str = "What is clause 4?", **kw: Any) -> Any:
    return client.messages.create(
        model=MODEL, max_tokens=200, system=sys, messages=[{"role": "user", "content": question}], **kw
    )


def test_first_call_writes_second_reads_the_same_prefix(client: anthropic.Anthropic) -> None:
    first = ask(client, system())
    second = ask(client, system(), "And clause 5?")
    assert first.usage.cache_creation_input_tokens > 1024
    assert first.usage.cache_read_input_tokens == 0
    assert first.usage.cache_creation is not None
    assert first.usage.cache_creation.ephemeral_5m_input_tokens == first.usage.cache_creation_input_tokens
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    assert second.usage.cache_creation_input_tokens == 0
    assert second.usage.input_tokens > 0


def test_streamed_usage_arrives_in_message_start_and_delta(client: anthropic.Anthropic) -> None:
    ask(client, system())
    with client.messages.stream(
        model=MODEL, max_tokens=200, system=system(), messages=[{"role": "user", "content": "Summarise it."}]
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "content_block_delta" in kinds and "message_delta" in kinds
    assert final.usage.cache_read_input_tokens > 1024
    assert final.content[0].type == "text" and final.content[0].text.startswith("Answer to:")


def test_a_prefix_below_the_model_minimum_is_silently_not_cached(client: anthropic.Anthropic) -> None:
    short = system(text="Be brief. " * 50)
    for _ in range(2):
        usage = ask(client, short).usage
        assert usage.cache_creation_input_tokens == 0 and usage.cache_read_input_tokens == 0


def test_entries_expire_after_their_ttl_and_reads_refresh_it(
    fake: FakeAnthropic, client: anthropic.Anthropic
) -> None:
    ask(client, system("5m"))
    fake.clock.advance(240)
    assert ask(client, system("5m")).usage.cache_read_input_tokens > 0  # read at 4 min: refreshed
    fake.clock.advance(240)
    assert ask(client, system("5m")).usage.cache_read_input_tokens > 0  # 8 min after the write
    fake.clock.advance(301)
    assert ask(client, system("5m")).usage.cache_creation_input_tokens > 0  # expired, written again
    hour = system("1h", text=LONG + " Hourly edition.")
    ask(client, hour, "x")
    fake.clock.advance(1800)
    assert ask(client, hour, "y").usage.cache_read_input_tokens > 0


def test_mixed_ttls_split_the_write(client: anthropic.Anthropic) -> None:
    sys = [
        *system("1h"),
        {"type": "text", "text": "Extra policy. " * 200, "cache_control": {"type": "ephemeral"}},
    ]
    usage = ask(client, sys).usage
    assert usage.cache_creation is not None
    assert usage.cache_creation.ephemeral_1h_input_tokens > 1024
    assert usage.cache_creation.ephemeral_5m_input_tokens > 0
    assert usage.cache_creation_input_tokens == (
        usage.cache_creation.ephemeral_1h_input_tokens + usage.cache_creation.ephemeral_5m_input_tokens
    )


def test_a_changed_prefix_misses(client: anthropic.Anthropic) -> None:
    ask(client, system())
    changed = ask(client, system(text=LONG + " Today is Tuesday."))
    assert changed.usage.cache_read_input_tokens == 0
    assert changed.usage.cache_creation_input_tokens > 0


def test_a_fifth_breakpoint_is_the_real_400(client: anthropic.Anthropic) -> None:
    five = [{"type": "text", "text": f"part {i}", "cache_control": {"type": "ephemeral"}} for i in range(5)]
    with pytest.raises(anthropic.BadRequestError) as err:
        ask(client, five)
    assert err.value.status_code == 400
    body = err.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert "maximum of 4 blocks with cache_control" in body["error"]["message"]


def test_one_hour_after_five_minutes_is_the_real_400(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError, match="ttl='1h' must not come after"):
        ask(client, system("5m") + system("1h", text="more"))


def test_missing_api_key_is_a_401(fake: FakeAnthropic) -> None:
    with serve(fake.app) as url:
        reply = httpx.post(f"{url}/v1/messages", json={"model": MODEL, "max_tokens": 5, "messages": []})
    assert reply.status_code == 401
    assert reply.json()["error"]["type"] == "authentication_error"
