"""Similarity decay (cache.decay) through the live sidecar on a real Redis and a real vLLM.

Each step runs a fresh sidecar (create_app, its lifespan, the Redis store) against the same Redis
scope, so an entry's age can only come from the ``created`` stored in Redis: nothing in the process
that stored it survives. A fake clock replaces the running CacheService's clock (``cache.clock``,
the unix time of lookups and stores) before the first request. The similarities below are the
default embedder's (tests/unit/test_sidecar_decay.py has the same questions).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import redis
from fakes.openai_upstream import run_server
from hermes_sidecar.app import create_app
from hermes_sidecar.config import parse_config
from hermes_sidecar.embed import LocalEmbedder

pytestmark = pytest.mark.integration
CHAT = "/v1/chat/completions"
MODEL = "tiny-llama"
HOUR, DAY = 3600.0, 86400.0

STORED = "How do I reset my account password?"
FAR = "What are the steps to reset my account password?"  # cosine 0.975 with STORED
# cosine 0.992 with FAR, 0.968 with STORED: only FAR's entry is near enough once STORED's is 5 h old
NEXT = "What steps do I take to reset my account password?"
HALF_LIFE = {"mode": "halfLife", "halfLifeSeconds": HOUR, "ceiling": 0.98}  # 0.9719 at 4 h, 0.9759 at 5 h


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def scope() -> str:
    return f"it-decay-{uuid.uuid4().hex[:8]}/policy"


@pytest.fixture
def clock() -> Clock:
    # whole seconds from now on: Redis' own TTLs (real time) stay far away, and ages sum exactly
    return Clock(float(int(time.time())))


@pytest.fixture
def sidecar(
    redis_url: str, vllm_url: str, embedder: LocalEmbedder, scope: str, clock: Clock
) -> Callable[..., Any]:
    @contextmanager
    def start(**cache: Any) -> Iterator[httpx.Client]:
        cfg = parse_config(
            {
                "upstream": {"url": vllm_url, "timeoutSeconds": 120},
                # the random-weight model's answers end at max_tokens: store them anyway
                "cache": {
                    "backend": "redis",
                    "redisUrl": redis_url,
                    "scope": scope,
                    "storeTruncated": True,
                    "ttlSeconds": 7 * DAY,
                    **cache,
                },
            }
        )
        app = create_app(cfg, embedder=embedder)
        with run_server(app, lifespan="on") as url:
            app.state.sidecar.cache.clock = clock
            with httpx.Client(base_url=url, timeout=120) as client:
                yield client

    return start


def ask(client: httpx.Client, question: str) -> httpx.Response:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": question}],
        "max_tokens": 8,
        "temperature": 0,
    }
    resp = client.post(CHAT, json=body, headers={"x-tenant-id": "acme"})
    assert resp.status_code == 200, resp.text
    return resp


def text(resp: httpx.Response) -> str:
    content: str = resp.json()["choices"][0]["message"]["content"]
    return content


def sample(client: httpx.Client, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


def stored_created(redis_url: str, scope: str, count: int) -> list[float]:
    """``created`` of the scope's entries in Redis, once ``count`` of them are there.

    Stores run in the background after the response, and entries of earlier sidecars stay in
    Redis: wait for the number the test expects, never for this process's stored counter alone.
    """
    r = redis.Redis.from_url(redis_url, decode_responses=True)

    def entries() -> list[str]:
        return list(r.scan_iter(match=f"hermes:{scope}:g:*:entry:*", count=1000))

    keys: list[str] = []
    for _ in range(200):
        keys = entries()
        if len(keys) >= count:
            time.sleep(0.2)  # nothing more arrives: a late extra store would show here
            return sorted(float(r.hget(k, "created") or 0) for k in entries())
        time.sleep(0.05)
    pytest.fail(f"{count} entries expected in Redis, found {len(keys)}")


def store_at_t0(sidecar: Callable[..., Any], redis_url: str, scope: str, clock: Clock, **cache: Any) -> str:
    """STORED asked once (vLLM answers, the answer is stored at the clock's time); its answer."""
    t0 = clock.now
    with sidecar(**cache) as client:
        first = ask(client, STORED)
        assert first.headers["x-hermes-cache"] == "miss" and first.json()["model"] == MODEL
        assert stored_created(redis_url, scope, 1) == [t0]
    return text(first)


def test_an_old_entry_is_served_only_to_closer_questions_and_a_decay_miss_refreshes_it(
    sidecar: Callable[..., Any], redis_url: str, scope: str, clock: Clock
) -> None:
    t0 = clock.now
    answer = store_at_t0(sidecar, redis_url, scope, clock, decay=HALF_LIFE)

    # 4 h old: the paraphrase (0.975) is above the bar (0.9719), served from Redis with its age
    clock.now = t0 + 4 * HOUR
    with sidecar(decay=HALF_LIFE) as client:
        young = ask(client, FAR)
        assert young.headers["x-hermes-cache"] == "hit-semantic" and text(young) == answer
        assert sample(client, "hermes_cache_served_age_seconds_sum") == 4 * HOUR
        assert sample(client, "hermes_cache_served_age_seconds_bucket", le="14400.0") == 1
        assert sample(client, "hermes_cache_served_age_seconds_bucket", le="7200.0") == 0
        assert sample(client, "hermes_cache_decay_refreshes_total", kind="semantic") == 0

    # 5 h old: the bar (0.9759) is above the paraphrase: vLLM answers and the answer is stored fresh
    clock.now = t0 + 5 * HOUR
    with sidecar(decay=HALF_LIFE) as client:
        old = ask(client, FAR)
        assert old.headers["x-hermes-cache"] == "miss" and old.json()["model"] == MODEL
        assert stored_created(redis_url, scope, 2) == [t0, t0 + 5 * HOUR]
        assert sample(client, "hermes_cache_decay_refreshes_total", kind="semantic") == 1
        assert sample(client, "hermes_cache_served_age_seconds_count") == 0
        refreshed = text(old)

    # 30 s later: the next paraphrase is served from the fresh entry, not from the 5 h old one
    clock.now = t0 + 5 * HOUR + 30
    with sidecar(decay=HALF_LIFE) as client:
        nxt = ask(client, NEXT)
        assert nxt.headers["x-hermes-cache"] == "hit-semantic" and text(nxt) == refreshed
        assert float(nxt.headers["x-hermes-cache-similarity"]) > 0.98  # FAR's entry (STORED's: 0.968)
        assert sample(client, "hermes_cache_served_age_seconds_sum") == 30
        assert sample(client, "hermes_cache_served_age_seconds_count") == 1
        assert sample(client, "hermes_cache_decay_refreshes_total", kind="semantic") == 0


def test_with_decay_off_an_old_entry_is_served_until_its_ttl(
    sidecar: Callable[..., Any], redis_url: str, scope: str, clock: Clock
) -> None:
    t0 = clock.now
    answer = store_at_t0(sidecar, redis_url, scope, clock)

    clock.now = t0 + 6 * DAY
    with sidecar() as client:
        old = ask(client, FAR)
        assert old.headers["x-hermes-cache"] == "hit-semantic" and text(old) == answer
        assert sample(client, "hermes_cache_served_age_seconds_sum") == 6 * DAY
        assert sample(client, "hermes_cache_served_age_seconds_bucket", le="604800.0") == 1
        assert sample(client, "hermes_cache_served_age_seconds_bucket", le="259200.0") == 0

    # past the TTL (7 days, read against the stored expiry): a plain miss, not a decay refresh
    clock.now = t0 + 8 * DAY
    with sidecar() as client:
        expired = ask(client, FAR)
        assert expired.headers["x-hermes-cache"] == "miss" and expired.json()["model"] == MODEL
        assert stored_created(redis_url, scope, 2) == [t0, t0 + 8 * DAY]
        assert sample(client, "hermes_cache_decay_refreshes_total", kind="semantic") == 0
