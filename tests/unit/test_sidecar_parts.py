"""Keys, config, the OpenAI dialect's recorder and replay, the memory store, and `evaluate`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hermes_sidecar.cli import main
from hermes_sidecar.config import ConfigError, load_config, parse_config
from hermes_sidecar.dialects.base import CachedAnswer, NotCacheable, ReplayInfo, SSEParser
from hermes_sidecar.dialects.openai import CHAT, COMPLETIONS, OpenAIDialect
from hermes_sidecar.keys import ConversationLimits, cache_salt, keys_for
from hermes_sidecar.store import Entry
from hermes_sidecar.store.memory import MemoryStore
from hermes_sidecar.tenants import tenant_of

D = OpenAIDialect()
LIMITS = ConversationLimits()


def chat(content: str | list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    messages = [{"role": "user", "content": content}] if isinstance(content, str) else content
    return {"model": "m", "messages": messages, **extra}


# -- keys ------------------------------------------------------------------------------------------


def test_partition_separates_what_changes_the_answer() -> None:
    base = keys_for(D.parse_request(CHAT, chat("hi there friend")), "g1", "t1", LIMITS)
    same = keys_for(D.parse_request(CHAT, chat("hi  there friend", stream=True)), "g1", "t1", LIMITS)
    assert same.partition == base.partition and same.exact == base.exact  # whitespace, stream form
    for variant in (
        keys_for(D.parse_request(CHAT, chat("hi there friend")), "g2", "t1", LIMITS),
        keys_for(D.parse_request(CHAT, chat("hi there friend")), "g1", "t2", LIMITS),
        keys_for(D.parse_request(CHAT, chat("hi there friend", temperature=0.5)), "g1", "t1", LIMITS),
        keys_for(D.parse_request(CHAT, chat("hi there friend", max_tokens=5)), "g1", "t1", LIMITS),
        keys_for(
            D.parse_request(CHAT, chat("hi there friend", tools=[{"type": "function"}])), "g1", "t1", LIMITS
        ),
        keys_for(
            D.parse_request(CHAT, chat("hi there friend", response_format={"type": "json_object"})),
            "g1",
            "t1",
            LIMITS,
        ),
        keys_for(D.parse_request(CHAT, {**chat("hi there friend"), "model": "other"}), "g1", "t1", LIMITS),
        keys_for(
            D.parse_request(COMPLETIONS, {"model": "m", "prompt": "hi there friend"}), "g1", "t1", LIMITS
        ),
    ):
        assert variant.partition != base.partition


def test_system_prompt_partitions() -> None:
    a = D.parse_request(
        CHAT, chat([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}])
    )
    b = D.parse_request(
        CHAT, chat([{"role": "system", "content": "be long"}, {"role": "user", "content": "hi"}])
    )
    assert keys_for(a, "g", "t", LIMITS).partition != keys_for(b, "g", "t", LIMITS).partition


def test_tenant_comes_from_the_header_or_the_credential_never_the_body() -> None:
    assert tenant_of({"x-tenant-id": "acme"}, "x-tenant-id") == "h:acme"
    a = tenant_of({"authorization": "Bearer one"}, "x-tenant-id")
    b = tenant_of({"authorization": "Bearer two"}, "x-tenant-id")
    assert a != b and "one" not in a
    assert tenant_of({}, "x-tenant-id") == "anonymous"
    both = {"x-tenant-id": "acme", "authorization": "Bearer one"}
    forged = {"x-tenant-id": "acme", "authorization": "Bearer two"}
    assert tenant_of(both, "x-tenant-id", "header-and-credential") != tenant_of(
        forged, "x-tenant-id", "header-and-credential"
    )
    assert tenant_of(both, "x-tenant-id", "credential") == a
    assert cache_salt("g1", a) != cache_salt("g1", b) != cache_salt("g2", b)


@pytest.mark.parametrize(
    ("turns", "refusal"),
    [
        (["I have a gym membership", "It costs 20 a month", "cancel it"], "ambiguous-last-turn"),
        (["I have a gym membership", "Sure", "yes please"], "ambiguous-last-turn"),
        (["Hello", "Hi, how can I help?", "What is the cooling-off period for broadband contracts?"], None),
    ],
)
def test_conversation_limits(turns: list[str], refusal: str | None) -> None:
    roles = ["user", "assistant", "user"]
    req = D.parse_request(CHAT, chat([{"role": r, "content": t} for r, t in zip(roles, turns, strict=True)]))
    keys = keys_for(req, "g", "t", LIMITS)
    assert keys.refusal == refusal
    assert (keys.semantic_text is None) == (refusal is not None)


def test_tool_results_allow_only_exact_reuse() -> None:
    msgs = [
        {"role": "user", "content": "weather in Oslo please"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "1", "type": "function", "function": {"name": "w", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "1", "content": "12C and rain"},
    ]
    keys = keys_for(D.parse_request(CHAT, chat(msgs)), "g", "t", LIMITS)
    assert keys.semantic_text is None and keys.refusal is not None


# -- config ----------------------------------------------------------------------------------------


def test_unknown_keys_are_an_error_naming_the_field() -> None:
    with pytest.raises(ConfigError, match=r"cache\.similarityTreshold"):
        parse_config({"cache": {"similarityTreshold": 0.9}})


def test_bad_values_name_field_value_and_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cache\.bypass\.patterns.*'\(oops'"):
        parse_config({"cache": {"bypass": {"patterns": ["(oops"]}}})
    with pytest.raises(ConfigError, match=r"listen 'nowhere' must be host:port"):
        parse_config({"listen": "nowhere"})
    f = tmp_path / "c.yaml"
    f.write_text("cache: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(f)


def test_contract_keys_still_parse() -> None:
    cfg = parse_config(
        {
            "listen": "0.0.0.0:8080",
            "upstream": {"kind": "openai", "url": "http://127.0.0.1:8000"},
            "cache": {
                "backend": "redis",
                "redisUrl": "redis://r:6379",
                "similarityThreshold": 0.8,
                "ttlSeconds": 60,
            },
            "tenantHeader": "x-org",
            "embedding": {"provider": "local"},
            "admin": {"tokenFile": "/etc/hermes/token"},
        }
    )
    assert cfg.cache.redisUrl == "redis://r:6379" and cfg.tenantHeader == "x-org"


# -- OpenAI dialect --------------------------------------------------------------------------------


def sse(*docs: dict[str, Any] | str) -> bytes:
    return b"".join(b"data: " + (d if isinstance(d, str) else json.dumps(d)).encode() + b"\n\n" for d in docs)


def test_recorder_rebuilds_tool_calls_and_reasoning_across_split_chunks() -> None:
    req = D.parse_request(CHAT, chat("what is the weather", stream=True))
    rec = D.recorder(req)
    stream = sse(
        {"id": "x", "created": 1, "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant"}}]},
        {"id": "x", "choices": [{"index": 0, "delta": {"reasoning_content": "think"}}]},
        {
            "id": "x",
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "c1",
                                "type": "function",
                                "function": {"name": "w", "arguments": '{"ci'},
                            }
                        ]
                    },
                }
            ],
        },
        {
            "id": "x",
            "choices": [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 0, "function": {"arguments": 'ty":"Oslo"}'}}]},
                }
            ],
        },
        {"id": "x", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        {"id": "x", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}},
        "[DONE]",
    )
    forwarded = b"".join(rec.feed(stream[i : i + 7]) for i in range(0, len(stream), 7))
    assert b'"usage"' not in forwarded and forwarded.endswith(b"data: [DONE]\n\n")
    answer = rec.finish(complete=True)
    assert answer is not None
    msg = answer.body["choices"][0]["message"]
    assert msg["tool_calls"][0]["function"] == {"name": "w", "arguments": '{"city":"Oslo"}'}
    assert msg["reasoning_content"] == "think"
    replay = b"".join(D.replay_sse(req, answer, ReplayInfo("hit-exact")))
    events = [d for _, d in SSEParser().feed(replay)]
    assert events[-1] == "[DONE]"
    deltas = [json.loads(e)["choices"][0]["delta"] for e in events[:-1]]
    assert any(d.get("tool_calls") for d in deltas) and any(d.get("reasoning_content") for d in deltas)


@pytest.mark.parametrize(
    ("stream", "complete"),
    [
        (
            sse({"id": "x", "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}]}),
            True,
        ),
        (
            sse(
                {"id": "x", "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "length"}]},
                "[DONE]",
            ),
            True,
        ),
        (
            sse(
                {"id": "x", "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}]},
                "[DONE]",
            ),
            False,
        ),
        (sse({"error": {"message": "boom"}}, "[DONE]"), True),
    ],
)
def test_recorder_refuses_incomplete_cut_or_failed_streams(stream: bytes, complete: bool) -> None:
    rec = D.recorder(D.parse_request(CHAT, chat("hi", stream=True)))
    rec.feed(stream)
    assert rec.finish(complete=complete) is None


def test_upstream_body_sets_the_salt_and_asks_for_usage() -> None:
    out = D.upstream_body(chat("hi", stream=True, cache_salt="client"), "server-salt")
    assert out["cache_salt"] == "server-salt" and out["stream_options"]["include_usage"] is True


@pytest.mark.parametrize("body", [{"messages": []}, {"model": "m", "prompt": ["a", "b"]}, {"model": "m"}])
def test_requests_outside_the_cache_are_not_cacheable(body: dict[str, Any]) -> None:
    route = COMPLETIONS if "prompt" in body else CHAT
    with pytest.raises(NotCacheable):
        D.parse_request(route, body)


def test_text_completion_replay() -> None:
    req = D.parse_request(COMPLETIONS, {"model": "m", "prompt": "Once upon", "stream": True})
    answer = CachedAnswer(
        "openai",
        {
            "object": "text_completion",
            "model": "m",
            "choices": [{"index": 0, "text": " a time", "finish_reason": "stop"}],
        },
    )
    events = [d for _, d in SSEParser().feed(b"".join(D.replay_sse(req, answer, ReplayInfo("hit-exact"))))]
    assert "".join(json.loads(e)["choices"][0]["text"] for e in events[:-1]) == " a time"
    assert json.loads(D.replay_json(req, answer, ReplayInfo("hit-exact")))["choices"][0]["text"] == " a time"


# -- memory store ----------------------------------------------------------------------------------


async def test_memory_store_ttl_is_absolute_and_size_bounded() -> None:
    store = MemoryStore(max_entries=2)
    v = np.array([1, 0], dtype=np.float32)
    await store.put(Entry("a", "p", "g", "{}", created=0, expires=100, text="a", vector=v))
    assert await store.get_exact("a", now=50) is not None
    assert await store.get_exact("a", now=99) is not None  # a hit does not extend the TTL
    assert await store.get_exact("a", now=100) is None
    await store.put(Entry("b", "p", "g", "{}", created=0, expires=100, text="b", vector=v))
    await store.put(Entry("c", "p", "g", "{}", created=0, expires=100, text="c", vector=v))
    await store.get_exact("b", now=1)
    await store.put(Entry("d", "p", "g", "{}", created=0, expires=100, text="d", vector=v))
    assert await store.get_exact("c", now=1) is None  # least recently used went first
    assert await store.get_exact("b", now=1) is not None
    assert [e.key for e, _ in await store.search("p", v, 5, now=1)] in (["b", "d"], ["d", "b"])
    assert await store.search("other", v, 5, now=1) == []


# -- evaluate --------------------------------------------------------------------------------------


def test_evaluate_prints_rates_per_category(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pairs = tmp_path / "pairs.jsonl"
    lines = [
        {
            "id": "1",
            "category": "repeat",
            "a": "How do I reset my modem?",
            "b": "How do I reset my modem?",
            "same_answer": True,
        },
        {
            "id": "2",
            "category": "flip",
            "a": "How do I enable sync?",
            "b": "How do I disable sync?",
            "same_answer": False,
        },
        {
            "id": "3",
            "category": "conv",
            "same_answer": False,
            "a": [
                {"role": "user", "content": "I pay 10 a month for Flixora"},
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": "cancel it"},
            ],
            "b": [
                {"role": "user", "content": "I pay 20 a month for PulseFit"},
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": "cancel it"},
            ],
        },
    ]
    pairs.write_text("\n".join(json.dumps(line) for line in lines))
    assert main(["evaluate", "--pairs", str(pairs)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["served_rate"] == 1.0 and report["wrong_rate"] == 0.0
    assert set(report["categories"]) == {"repeat", "flip", "conv"}
    assert report["conversations"]["pairs"] == 1


def test_evaluate_rejects_a_malformed_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": "x"}\n')
    assert main(["evaluate", "--pairs", str(bad)]) == 2
    assert "bad.jsonl:1" in capsys.readouterr().err


def test_limits_are_optional_with_defaults_and_refuse_nonsense() -> None:
    limits = parse_config({}).limits
    assert (limits.maxBodyBytes, limits.maxJsonDepth) == (16 * 1024 * 1024, 128)
    # the decoder itself gives up near 1,000 levels: a limit above 512 would never be reached
    for bad in ({"maxJsonDepth": 5000}, {"maxBodyBytes": 10}, {"maxBodyBytes": "big"}, {"maxDepth": 3}):
        with pytest.raises(ConfigError) as err:
            parse_config({"limits": bad})
        assert err.value.problems[0].loc == f"limits.{next(iter(bad))}"


@pytest.mark.parametrize(
    "body",
    [
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": "yes"},
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream_options": "include_usage"},
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], "n": True},
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 10**400},
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": "0"},
        {"model": ["m"], "messages": [{"role": "user", "content": "hi"}]},
        {"model": "m", "messages": {"role": "user", "content": "hi"}},
        {"model": "m", "messages": ["hi"]},
        {"model": "m", "messages": [{"role": None, "content": "hi"}]},
        {"model": "m", "messages": [{"role": "user", "content": 5}]},
    ],
)
def test_wrong_types_are_unparsable_and_bypass_body_copes(body: dict[str, Any]) -> None:
    dialect = OpenAIDialect()
    with pytest.raises(NotCacheable) as err:
        dialect.parse_request(CHAT, body)
    assert err.value.reason == "unparsable"
    sent = dialect.bypass_body(body, "salt")
    assert sent["cache_salt"] == "salt" and {k: v for k, v in sent.items() if k != "cache_salt"} == body


def test_unknown_role_reason_does_not_carry_the_role() -> None:
    # the reason is a metric label: a client must not be able to mint label values
    with pytest.raises(NotCacheable) as err:
        OpenAIDialect().parse_request(
            CHAT, {"model": "m", "messages": [{"role": "x" * 500, "content": "hi"}]}
        )
    assert err.value.reason == "unknown role"
