"""The sidecar on a real Redis with vector search and a real vLLM (tiny random model on the CPU).

Servers come from the session fixtures of tests/integration/conftest.py (started by the project's
scripts): ``redis_url``, ``redis_server`` (stop()/start() on the same port) and ``vllm_url``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

import redis
from fakes.openai_upstream import run_server
from hermes_sidecar.app import create_app
from hermes_sidecar.config import parse_config
from hermes_sidecar.embed import LocalEmbedder

pytestmark = pytest.mark.integration
CHAT = "/v1/chat/completions"
MODEL = "tiny-llama"


@pytest.fixture
def scope() -> str:
    # A fresh generation scope per test: tests never see each other's entries or records.
    return f"it-{uuid.uuid4().hex[:8]}/policy"


@pytest.fixture
def start_sidecar(
    redis_url: str, vllm_url: str, embedder: LocalEmbedder, scope: str, tmp_path: Any
) -> Iterator[Callable[..., httpx.Client]]:
    token = tmp_path / "token"
    token.write_text("integration-token")
    with ExitStack() as stack:

        def start(**cache: Any) -> httpx.Client:
            cfg = parse_config(
                {
                    "upstream": {"url": vllm_url, "timeoutSeconds": 120},
                    # The random-weight model rarely samples EOS: its answers end at max_tokens, which
                    # the sidecar does not store by default (tests/unit covers that default).
                    "cache": {
                        "backend": "redis",
                        "redisUrl": redis_url,
                        "scope": scope,
                        "storeTruncated": True,
                        **cache,
                    },
                    "admin": {"tokenFile": str(token)},
                }
            )
            url = stack.enter_context(run_server(create_app(cfg, embedder=embedder), lifespan="on"))
            return stack.enter_context(httpx.Client(base_url=url, timeout=120))

        yield start


def ask(client: httpx.Client, question: str, *, tenant: str = "acme", stream: bool = False) -> httpx.Response:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": question}],
        "max_tokens": 8,
        "temperature": 0,
        "stream": stream,
    }
    return client.post(CHAT, json=body, headers={"x-tenant-id": tenant})


def until(predicate: Callable[[], bool], timeout: float, step: float = 0.05) -> float:
    """Seconds until predicate() held; fails after timeout."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(step)
    return time.monotonic() - start


def answer_text(resp: httpx.Response) -> str:
    text: str = resp.json()["choices"][0]["message"]["content"]
    return text


def test_two_tenants_never_share_an_entry(
    start_sidecar: Callable[..., httpx.Client], redis_url: str, scope: str
) -> None:
    client = start_sidecar()
    q = "How do I rotate the API keys of my organisation?"
    first = ask(client, q, tenant="tenant-a")
    assert first.status_code == 200 and first.headers["x-hermes-cache"] == "miss"
    until(lambda: ask(client, q, tenant="tenant-a").headers["x-hermes-cache"] == "hit-exact", 5)
    # another tenant's identical question, and a third tenant's paraphrase: both go upstream
    assert ask(client, q, tenant="tenant-b").headers["x-hermes-cache"] == "miss"
    para = ask(client, "How can I rotate the API keys of my organisation?", tenant="tenant-c")
    assert para.status_code == 200 and para.headers["x-hermes-cache"] == "miss"
    until(lambda: ask(client, q, tenant="tenant-b").headers["x-hermes-cache"] == "hit-exact", 5)
    # two entries, in two partitions
    r = redis.Redis.from_url(redis_url)
    partitions = {
        r.hget(k, "partition") for k in r.scan_iter(match=f"hermes:{scope}:g:*:entry:*", count=1000)
    }
    assert len(partitions - {None}) == 3


def test_generation_switch_makes_old_entries_unreachable_within_a_second(
    start_sidecar: Callable[..., httpx.Client], redis_url: str, scope: str
) -> None:
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    key = f"hermes:{scope}:generation"
    v1 = {"version": "v1", "uid": "uid-1", "switchedAt": "2026-01-01T00:00:00Z"}
    r.set(key, json.dumps(v1))
    client = start_sidecar()
    auth = {"authorization": "Bearer integration-token"}
    assert client.get("/admin/stats", headers=auth).json()["generation"]["version"] == "v1"
    q = "What is the notice period for ending a lease?"
    ask(client, q)
    until(lambda: ask(client, q).headers["x-hermes-cache"] == "hit-exact", 5)
    old_entries = list(r.scan_iter(match=f"hermes:{scope}:g:*:entry:*"))
    assert old_entries

    v2 = {"version": "v2", "uid": "uid-1", "switchedAt": "2026-01-02T00:00:00Z"}
    r.set(key, json.dumps(v2))
    r.publish(key, json.dumps(v2))
    took = until(lambda: ask(client, q).headers["x-hermes-cache"] != "hit-exact", 1.0, step=0.02)
    assert took < 1.0
    stats = client.get("/admin/stats", headers=auth).json()
    assert stats["generation"]["version"] == "v2"
    # the old generation's entries are deleted in the background
    until(lambda: all(not r.exists(k) for k in old_entries), 10)
    # per-generation stats the operator reads
    until(lambda: int(r.hget(f"hermes:{scope}:stats:v1", "hit_exact") or 0) >= 1, 5)
    until(lambda: int(r.hget(f"hermes:{scope}:stats:v2", "miss") or 0) >= 1, 5)
    metrics = client.get("/metrics").text
    assert 'hermes_cache_generation_info{uid="uid-1",version="v2"} 1.0' in metrics


def sse_payloads(raw: bytes) -> list[str]:
    """The stream must be nothing but ``data: <payload>\\n\\n`` events."""
    assert raw.endswith(b"\n\n")
    events = raw.split(b"\n\n")[:-1]
    payloads = []
    for ev in events:
        assert ev.startswith(b"data: ") and b"\n" not in ev, ev[:200]
        payloads.append(ev[6:].decode())
    return payloads


def test_streamed_hit_is_valid_sse_with_the_recorded_text(start_sidecar: Callable[..., httpx.Client]) -> None:
    client = start_sidecar()
    q = "Describe the water cycle in a few words"
    miss = ask(client, q, stream=True)
    assert miss.status_code == 200 and miss.headers["x-hermes-cache"] == "miss"
    miss_events = sse_payloads(miss.content)
    assert miss_events[-1] == "[DONE]"
    miss_chunks = [json.loads(p) for p in miss_events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in miss_chunks if c["choices"])

    def hit() -> httpx.Response | None:
        resp = ask(client, q, stream=True)
        return resp if resp.headers["x-hermes-cache"] == "hit-exact" else None

    until(lambda: hit() is not None, 5)
    replay = ask(client, q, stream=True)
    assert replay.headers["x-hermes-cache"] == "hit-exact"
    assert replay.headers["content-type"].startswith("text/event-stream")
    events = sse_payloads(replay.content)
    assert events[-1] == "[DONE]" and events.count("[DONE]") == 1
    chunks = [json.loads(p) for p in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == text
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert chunks[-1]["choices"][0]["finish_reason"] == miss_chunks[-1]["choices"][0]["finish_reason"]
    # the openai SDK reads the replay like vLLM's own stream
    json_hit = ask(client, q)
    assert json_hit.headers["x-hermes-cache"] == "hit-exact" and answer_text(json_hit) == text


def test_fail_open_when_redis_is_down_and_caching_resumes(
    start_sidecar: Callable[..., httpx.Client], redis_server: Any
) -> None:
    client = start_sidecar()
    redis_server.stop()
    try:
        q = "Which plants grow well in shade?"
        for _ in range(3):
            resp = ask(client, q)
            assert resp.status_code == 200 and resp.headers["x-hermes-cache"] == "miss"
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["cache"] == "degraded" and "store" in ready.json()["degraded"]
        metrics = client.get("/metrics").text
        assert 'hermes_cache_requests_total{result="error",tenant="h:acme",variant="default"} 3.0' in metrics
    finally:
        redis_server.start()
    until(lambda: client.get("/readyz").json()["cache"] == "ok", 10)
    q2 = "Which vegetables grow well in shade?"
    ask(client, q2)
    until(lambda: ask(client, q2).headers["x-hermes-cache"] == "hit-exact", 5)


def test_redis_killed_and_restarted_during_1000_requests_loses_no_request(
    start_sidecar: Callable[..., httpx.Client], redis_server: Any
) -> None:
    client = start_sidecar()
    questions = [f"Give me fact number {i} about the ocean" for i in range(40)]

    def one(i: int) -> tuple[int, str, str]:
        resp = ask(client, questions[i % len(questions)], tenant=f"t{i % 3}")
        body = resp.json()
        return (
            resp.status_code,
            resp.headers.get("x-hermes-cache", ""),
            body["choices"][0]["message"]["content"],
        )

    results: list[tuple[int, str, str]] = []
    with ThreadPoolExecutor(max_workers=16) as pool:
        futures = [pool.submit(one, i) for i in range(1000)]
        # kill Redis (SIGKILL, as a crash) once a quarter of the requests are done, back a second later
        until(lambda: sum(f.done() for f in futures) >= 250, 300)
        redis_server.kill()
        time.sleep(1.0)
        redis_server.start()
        results = [f.result() for f in futures]
    assert len(results) == 1000
    assert all(status == 200 for status, _, _ in results)
    assert all(isinstance(text, str) for _, _, text in results)
    metrics = client.get("/metrics").text
    served = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("hermes_cache_requests_total{")
    )
    assert served == 1000
    # the outage was seen (requests went through while Redis was away) and the cache served hits
    errors = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith('hermes_cache_requests_total{result="error",')  # every tenant
    )
    assert errors >= 1
    assert any(result == "hit-exact" for _, result, _ in results)
    # caching is back without a restart
    q = "One more question after the outage"
    until(lambda: client.get("/readyz").json()["cache"] == "ok", 10)
    ask(client, q)
    until(lambda: ask(client, q).headers["x-hermes-cache"] == "hit-exact", 5)


def test_warm_up_after_a_switch_and_size_bound(
    start_sidecar: Callable[..., httpx.Client], redis_url: str, scope: str
) -> None:
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    key = f"hermes:{scope}:generation"
    warm = "What are your opening hours?"
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": warm}],
        "max_tokens": 8,
        "temperature": 0,
    }
    client = start_sidecar(warmup=[{"body": body, "tenant": "acme"}], maxEntries=5)
    v2 = json.dumps({"version": "v2", "uid": "u", "switchedAt": "2026-01-01T00:00:00Z"})
    r.set(key, v2)
    r.publish(key, v2)
    # the new generation starts with the warm-up answer in it: the first user request is a hit
    until(lambda: ask(client, warm).headers["x-hermes-cache"] == "hit-exact", 30)
    for i in range(12):
        ask(client, f"Tell me about planet number {i}")
    until(lambda: len(list(r.scan_iter(match=f"hermes:{scope}:g:*:entry:*"))) <= 5, 15)


def test_generation_switch_resets_vllm_prefix_cache_when_configured(
    start_sidecar: Callable[..., httpx.Client], redis_url: str, scope: str
) -> None:
    # vLLM is started with VLLM_SERVER_DEV_MODE=1 by the fixtures, which opens /reset_prefix_cache
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    client = start_sidecar(resetPrefixCache=True)
    ask(client, "Warm some prefix blocks")
    record = json.dumps({"version": "v9", "uid": "u", "switchedAt": "2026-01-01T00:00:00Z"})
    r.set(f"hermes:{scope}:generation", record)
    r.publish(f"hermes:{scope}:generation", record)
    until(
        lambda: 'hermes_cache_prefix_cache_resets_total{outcome="ok"} 1.0' in client.get("/metrics").text, 15
    )


@pytest.fixture(scope="module")
def vllm_embed_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """vLLM serving the tiny model as an embedding model (pooling runner), started by the project's
    script on its own port; HERMES_TEST_VLLM_EMBED_URL names a running one instead."""
    if os.environ.get("HERMES_TEST_VLLM_EMBED_URL"):
        yield os.environ["HERMES_TEST_VLLM_EMBED_URL"].rstrip("/")
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    state = tmp_path_factory.mktemp("vllm-embed")
    env = {**os.environ, "HERMES_VLLM_ARGS": "--runner pooling --convert embed"}
    script = Path(__file__).resolve().parents[2] / "scripts/vllm"
    subprocess.run(["bash", str(script / "start.sh"), str(port), str(state)], env=env, check=True)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        subprocess.run(["bash", str(script / "stop.sh"), str(port), str(state)], check=False)


def test_openai_embedder_on_a_vllm_embedding_endpoint(
    vllm_url: str, vllm_embed_url: str, redis_url: str, scope: str, tmp_path: Path
) -> None:
    cfg = parse_config(
        {
            "upstream": {"url": vllm_url, "timeoutSeconds": 120},
            "cache": {"backend": "redis", "redisUrl": redis_url, "scope": scope, "storeTruncated": True},
            "embedding": {"provider": "openai", "url": vllm_embed_url, "model": MODEL},
        }
    )
    r = redis.Redis.from_url(redis_url)
    with run_server(create_app(cfg), lifespan="on") as url, httpx.Client(base_url=url, timeout=120) as client:
        q = "How long does a passport renewal take?"
        assert ask(client, q).headers["x-hermes-cache"] == "miss"
        until(lambda: ask(client, q).headers["x-hermes-cache"] == "hit-exact", 5)
        assert ask(client, "Which documents does a passport renewal need?").status_code == 200
        metrics = client.get("/metrics").text
        assert 'hermes_cache_requests_total{result="error",tenant="h:acme",variant="default"} 0.0' in metrics
        assert client.get("/readyz").json()["cache"] == "ok"
        # the index took the endpoint's dimension: stored vectors are searchable, not silently dropped
        dims = {
            len(r.hget(k, "vector") or b"") // 4 for k in r.scan_iter(match=f"hermes:{scope}:g:*:entry:*")
        }
        assert dims and 0 not in dims and len(dims) == 1
        (dim,) = dims
        indexes = {i.decode() if isinstance(i, bytes) else i for i in r.execute_command("FT._LIST")}
        assert any(i.startswith(f"hermes:{scope}:g:") and i.endswith(f":idx:{dim}") for i in indexes), indexes
