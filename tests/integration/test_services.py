"""The real services the other tiers build on: Redis with vector search and vLLM on the CPU.

Both are started by the project's scripts through the fixtures in conftest.py.
"""

from __future__ import annotations

import re
import struct
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.commands.search.query import Query

import redis

pytestmark = pytest.mark.integration
MODEL = "tiny-llama"
DOCS = Path(__file__).resolve().parents[2] / "docs"
# 1 GiB of KV space (VLLM_CPU_KVCACHE_SPACE=1) / 512 bytes per token of the tiny model
# (2 layers x 1 KV head x head_dim 64 x K,V x 2 bytes)
TINY_KV_TOKENS_PER_GIB = 2**30 // (2 * 1 * 64 * 2 * 2)


# ---------------------------------------------------------------------------------------------- Redis


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        client.close()


def vec(*xs: float) -> bytes:
    return struct.pack(f"<{len(xs)}f", *xs)


def test_redis_has_vector_search_with_hnsw_cosine(r: redis.Redis) -> None:
    modules = {m[b"name"].decode().lower(): m[b"ver"] for m in r.module_list()}
    assert modules.get("search", 0) >= 21000, modules  # RediSearch 2.10+: HNSW and FLAT vector fields
    idx, prefix = f"t-{uuid.uuid4().hex[:8]}", f"t-{uuid.uuid4().hex[:8]}:"
    r.execute_command(
        "FT.CREATE", idx, "ON", "HASH", "PREFIX", "1", prefix,
        "SCHEMA", "tenant", "TAG",
        "v", "VECTOR", "HNSW", "10", "TYPE", "FLOAT32", "DIM", "4", "DISTANCE_METRIC", "COSINE",
        "M", "16", "EF_CONSTRUCTION", "200",
    )  # fmt: skip
    try:
        r.hset(f"{prefix}a", mapping={"tenant": "acme", "v": vec(1, 0, 0, 0)})
        r.hset(f"{prefix}b", mapping={"tenant": "acme", "v": vec(0, 1, 0, 0)})
        r.hset(f"{prefix}c", mapping={"tenant": "other", "v": vec(0.9, 0.1, 0, 0)})
        query = Query("(@tenant:{acme})=>[KNN 2 @v $q AS dist]").sort_by("dist").return_fields("dist")
        res = r.ft(idx).search(query.dialect(2), query_params={"q": vec(0.8, 0.2, 0, 0)})
        # nearest in the tenant's partition first; c (other tenant) is filtered out
        assert [d.id for d in res.docs] == [f"{prefix}a", f"{prefix}b"]
        assert 0.0 < float(res.docs[0].dist) < 0.1  # cosine distance 1 - 0.8/sqrt(0.68) = 0.0299
        assert float(res.docs[1].dist) > 0.5
        info = repr(r.ft(idx).info())
        assert "HNSW" in info and "COSINE" in info
    finally:
        r.execute_command("FT.DROPINDEX", idx, "DD")


def test_redis_server_stops_and_starts_on_the_same_port(redis_server: Any, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=1)
    try:
        assert client.ping()
        redis_server.stop()
        assert not redis_server.is_running()
        with pytest.raises(redis.ConnectionError):
            client.ping()
        redis_server.start()
        assert client.ping()
        assert client.execute_command("FT._LIST") is not None
        redis_server.kill()
        with pytest.raises(redis.ConnectionError):
            client.ping()
        redis_server.start()
        assert client.ping()
    finally:
        client.close()


# ----------------------------------------------------------------------------------------------- vLLM


@pytest.fixture
def http(vllm_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=vllm_url, timeout=120) as client:
        yield client


def chat(http: httpx.Client, content: str, max_tokens: int = 4, **extra: object) -> dict[str, Any]:
    body = {"model": MODEL, "messages": [{"role": "user", "content": content}], "max_tokens": max_tokens}
    resp = http.post("/v1/chat/completions", json={**body, **extra})
    assert resp.status_code == 200, resp.text
    data: dict[str, Any] = resp.json()
    return data


def metric_sum(text: str, name: str) -> float:
    """Sum of a metric's samples over all label sets."""
    pattern = re.compile(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", re.M)
    return sum(float(v) for v in pattern.findall(text))


def prefix_hits(http: httpx.Client) -> float:
    return metric_sum(http.get("/metrics").text, "vllm:prefix_cache_hits_total")


def long_prompt(words: int = 600) -> str:
    """A prompt of several prefix blocks (the CPU backend uses 128-token blocks), unique to this call."""
    vocab = [
        "cache",
        "model",
        "request",
        "token",
        "prefix",
        "server",
        "redis",
        "vector",
        "search",
        "python",
        "tenant",
        "policy",
    ]
    body = " ".join(vocab[(i * 7 + i // 5) % len(vocab)] for i in range(words))
    return f"{uuid.uuid4()} {body}"


def wait_hits_above(http: httpx.Client, floor: float, timeout: float = 10) -> float:
    deadline = time.monotonic() + timeout
    while (hits := prefix_hits(http)) <= floor and time.monotonic() < deadline:
        time.sleep(0.1)
    return hits


def test_vllm_serves_the_tiny_model(http: httpx.Client) -> None:
    assert http.get("/health").status_code == 200
    models = [m["id"] for m in http.get("/v1/models").json()["data"]]
    assert models == [MODEL]


def test_vllm_chat_completion_reports_usage(http: httpx.Client) -> None:
    data = chat(http, "How do I install Python 3.11 on Ubuntu?", max_tokens=8)
    usage = data["usage"]
    assert usage["prompt_tokens"] > 0 and 0 < usage["completion_tokens"] <= 8
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    choice = data["choices"][0]
    assert choice["message"]["role"] == "assistant" and isinstance(choice["message"]["content"], str)


def test_vllm_accepts_cache_salt(http: httpx.Client) -> None:
    data = chat(http, "hello", cache_salt="x")
    assert data["model"] == MODEL


def test_vllm_prefix_cache_hits_grow_on_a_repeated_long_prompt(http: httpx.Client) -> None:
    prompt = long_prompt()
    before = prefix_hits(http)
    first = chat(http, prompt, max_tokens=2)
    assert first["usage"]["prompt_tokens"] >= 256
    after_first = prefix_hits(http)
    assert after_first == before  # a new prompt: nothing to reuse
    chat(http, prompt, max_tokens=2)
    after_second = wait_hits_above(http, after_first)
    assert after_second - after_first >= 128  # at least one full block reused


def test_vllm_cache_salt_separates_prefix_caches(http: httpx.Client) -> None:
    prompt = long_prompt()
    chat(http, prompt, max_tokens=2, cache_salt="gen-1")
    h0 = prefix_hits(http)
    chat(http, prompt, max_tokens=2, cache_salt="gen-2")  # another salt: no reuse
    time.sleep(0.5)
    h1 = prefix_hits(http)
    assert h1 == h0
    chat(http, prompt, max_tokens=2, cache_salt="gen-1")  # the first salt again: reuse
    assert wait_hits_above(http, h1) - h1 >= 128


def test_vllm_exposes_the_metrics_the_chart_uses(http: httpx.Client) -> None:
    text = http.get("/metrics").text
    for name in (
        "vllm:prefix_cache_queries_total",
        "vllm:prefix_cache_hits_total",
        "vllm:kv_cache_usage_perc",
        "vllm:num_requests_waiting",
        "vllm:num_requests_running",
    ):
        assert re.search(rf"^{re.escape(name)}[{{ ]", text, re.M), name
    live = set(re.findall(r"^(vllm:[A-Za-z0-9_:]+)[{ ]", text, re.M))
    live |= set(re.findall(r"^# TYPE (vllm:[A-Za-z0-9_:]+) ", text, re.M))
    recorded = set((DOCS / "vllm-metrics.txt").read_text().split())
    missing = sorted(recorded - live)
    assert not missing, (
        f"docs/vllm-metrics.txt lists names this vLLM does not expose: {missing}; regenerate it with "
        "python scripts/vllm/metric_names.py http://127.0.0.1:PORT/metrics > docs/vllm-metrics.txt"
    )


def test_vllm_logs_its_kv_cache_capacity(vllm_server: Any) -> None:
    log = vllm_server.log.read_text(errors="replace")
    m = re.findall(r"CPU KV cache size: ([\d,]+) tokens", log)
    assert m, "no 'CPU KV cache size: N tokens' line in " + str(vllm_server.log)
    assert int(m[-1].replace(",", "")) == TINY_KV_TOKENS_PER_GIB  # 2,097,152 with 1 GiB
