"""The sidecar in front of the real vLLM (tiny random model on the CPU), driven by the official
``openai`` client: sync and async, JSON and streams with ``stream_options.include_usage``, and
``with_raw_response`` to read ``x-hermes-cache``.

What a client library relies on must hold through the sidecar, hit or miss: the response parses into
the SDK's types, a replayed stream ends properly and carries the usage chunk, and the sidecar's own
refusals (issue 15) reach the SDK as the errors it knows (``openai.BadRequestError``).

vLLM comes from the session fixture ``vllm_url`` (tests/integration/conftest.py); the sidecar runs
in-process with its real app, memory store and local embedder, on a loopback port.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from fakes.openai_upstream import run_server
from hermes_sidecar.app import create_app
from hermes_sidecar.config import parse_config
from hermes_sidecar.embed import LocalEmbedder

pytestmark = pytest.mark.integration
MODEL = "tiny-llama"


@pytest.fixture(scope="module")
def sidecar(vllm_url: str) -> Iterator[str]:
    cfg = parse_config(
        {
            "upstream": {"url": vllm_url, "timeoutSeconds": 120},
            # The random-weight model rarely samples EOS: its answers end at max_tokens, which the
            # sidecar does not store by default (tests/unit covers that default).
            "cache": {"backend": "memory", "storeTruncated": True},
            "limits": {"maxJsonDepth": 32},
        }
    )
    with run_server(create_app(cfg, embedder=LocalEmbedder()), lifespan="on") as url:
        yield url + "/v1"


def stored(base: str) -> float:
    """hermes_cache_stored_total of the sidecar at ``base`` (its /v1 URL)."""
    text = httpx.get(base.removesuffix("/v1") + "/metrics").text
    return sum(
        float(line.split()[-1]) for line in text.splitlines() if line.startswith("hermes_cache_stored_total")
    )


def settle(base: str, before: float) -> None:
    """Wait for the answer of the last miss to be stored: the sidecar stores in the background, after
    the client has read the end of a stream."""
    deadline = time.monotonic() + 10
    while stored(base) <= before and time.monotonic() < deadline:
        time.sleep(0.05)


def question() -> str:
    # unique per call: no test is answered from another test's entry
    return f"What is the capital of country number {uuid.uuid4().hex[:8]}?"


def chat(q: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": q}],
        "max_tokens": 8,
        "temperature": 0,
        **extra,
    }


def test_sync_json_miss_then_hit(sidecar: str) -> None:
    client = openai.OpenAI(base_url=sidecar, api_key="sk-test", max_retries=0, timeout=120)
    q, before = question(), stored(sidecar)
    first = client.chat.completions.with_raw_response.create(**chat(q))
    settle(sidecar, before)
    again = client.chat.completions.with_raw_response.create(**chat(q))
    assert (first.headers["x-hermes-cache"], again.headers["x-hermes-cache"]) == ("miss", "hit-exact")
    miss, hit = first.parse(), again.parse()
    assert hit.choices[0].message.content == miss.choices[0].message.content
    assert hit.choices[0].finish_reason == miss.choices[0].finish_reason
    assert hit.usage is not None and miss.usage is not None
    assert hit.usage.completion_tokens == miss.usage.completion_tokens
    assert hit.id != miss.id  # a replay is a new response


def _read_stream(stream: Any) -> tuple[str, Any, str | None]:
    text, usage, finish = [], None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            text.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    return "".join(text), usage, finish


def test_sync_stream_with_usage_miss_then_hit(sidecar: str) -> None:
    client = openai.OpenAI(base_url=sidecar, api_key="sk-test", max_retries=0, timeout=120)
    q = question()
    opts = {"stream": True, "stream_options": {"include_usage": True}}
    before = stored(sidecar)
    first = client.chat.completions.with_raw_response.create(**chat(q, **opts))
    assert first.headers["x-hermes-cache"] == "miss"
    text, usage, finish = _read_stream(first.parse())
    settle(sidecar, before)
    assert text and usage is not None and usage.completion_tokens > 0 and finish is not None
    again = client.chat.completions.with_raw_response.create(**chat(q, **opts))
    assert again.headers["x-hermes-cache"] == "hit-exact"
    replayed = _read_stream(again.parse())
    assert replayed[0] == text and replayed[2] == finish
    assert replayed[1] is not None and replayed[1].completion_tokens == usage.completion_tokens
    # the JSON form of the same question is a hit too: one entry serves both forms
    json_hit = client.chat.completions.with_raw_response.create(**chat(q))
    assert json_hit.headers["x-hermes-cache"] == "hit-exact"
    assert json_hit.parse().choices[0].message.content == text


def test_stream_without_usage_gets_no_usage_chunk(sidecar: str) -> None:
    client = openai.OpenAI(base_url=sidecar, api_key="sk-test", max_retries=0, timeout=120)
    q = question()
    for expected in ("miss", "hit-exact"):
        before = stored(sidecar)
        raw = client.chat.completions.with_raw_response.create(**chat(q, stream=True))
        assert raw.headers["x-hermes-cache"] == expected
        text, usage, _ = _read_stream(raw.parse())
        assert text and usage is None
        if expected == "miss":
            settle(sidecar, before)


def test_async_client_chat_and_completions(sidecar: str) -> None:
    async def run() -> None:
        async with openai.AsyncOpenAI(
            base_url=sidecar, api_key="sk-test", max_retries=0, timeout=120
        ) as client:
            q, got = question(), []
            for _ in range(2):
                before = await asyncio.to_thread(stored, sidecar)
                got.append(await client.chat.completions.with_raw_response.create(**chat(q)))
                if len(got) == 1:  # the miss: wait until it is stored
                    await asyncio.to_thread(settle, sidecar, before)
            assert [r.headers["x-hermes-cache"] for r in got] == ["miss", "hit-exact"]
            assert got[0].parse().choices[0].message.content == got[1].parse().choices[0].message.content

            opts: dict[str, Any] = {"stream": True, "stream_options": {"include_usage": True}}
            q2, streams = question(), []
            for expected in ("miss", "hit-exact"):
                before = await asyncio.to_thread(stored, sidecar)
                raw = await client.chat.completions.with_raw_response.create(**chat(q2, **opts))
                assert raw.headers["x-hermes-cache"] == expected
                text, usage = [], None
                async for chunk in raw.parse():
                    usage = chunk.usage or usage
                    text += [c.delta.content or "" for c in chunk.choices]
                assert usage is not None
                streams.append(("".join(text), usage.completion_tokens))
                if expected == "miss":
                    await asyncio.to_thread(settle, sidecar, before)
            assert streams[0] == streams[1]

            prompt, done = question(), []
            for _ in range(2):
                before = await asyncio.to_thread(stored, sidecar)
                done.append(
                    await client.completions.with_raw_response.create(
                        model=MODEL, prompt=prompt, max_tokens=8, temperature=0
                    )
                )
                if len(done) == 1:
                    await asyncio.to_thread(settle, sidecar, before)
            assert [r.headers["x-hermes-cache"] for r in done] == ["miss", "hit-exact"]
            assert done[0].parse().choices[0].text == done[1].parse().choices[0].text

    asyncio.run(run())


def test_sidecar_refusals_are_errors_the_sdk_knows(sidecar: str) -> None:
    client = openai.OpenAI(base_url=sidecar, api_key="sk-test", max_retries=0, timeout=120)
    # too deep for limits.maxJsonDepth: the sidecar's own 400, in OpenAI's error format
    nested: Any = "x"
    for _ in range(40):
        nested = [nested]
    with pytest.raises(openai.BadRequestError) as deep:
        client.chat.completions.create(**chat(question()), extra_body={"metadata": {"n": nested}})
    assert "limits.maxJsonDepth" in deep.value.message
    assert deep.value.response.headers["x-hermes-cache"] == "bypass"
    # a field of the wrong type: passed through uncached, and vLLM's own validation answers
    with pytest.raises(openai.BadRequestError) as wrong:
        client.chat.completions.create(**chat(question()), extra_body={"stream_options": "include_usage"})
    assert wrong.value.response.headers["x-hermes-cache"] == "bypass"
    assert "maxJsonDepth" not in wrong.value.message
