"""The Redis store with one index per generation: the new generation serves while the old one is
deleted, LRU trimming keeps what is used, and a Redis restart brings the current index back."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator

import numpy as np
import pytest
from conftest import RedisServer

import redis
from hermes_sidecar.generations import Generation
from hermes_sidecar.store import Entry, StoreError
from hermes_sidecar.store.redis import RedisStore, redis_client

pytestmark = pytest.mark.integration
DIM = 32
OLD = Generation("v1", "uid-g")
NEW = Generation("v2", "uid-g")


def entry(generation: str, i: int, created: float) -> Entry:
    vector = np.random.default_rng(i).standard_normal(DIM).astype(np.float32)
    vector /= np.linalg.norm(vector)
    return Entry(f"k{i}", "p", generation, f'{{"i": {i}}}', created, created + 3600, f"q{i}", vector=vector)


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[RedisStore]:
    s = RedisStore(redis_client(redis_url, timeout=5), f"test/gens-{uuid.uuid4().hex[:8]}", DIM)
    yield s
    await s.aclose()


async def test_the_new_generation_serves_while_the_old_one_is_deleted(store: RedisStore) -> None:
    serving = [OLD.id]
    store.follow(lambda: serving[0])
    now = time.time()
    for i in range(1000):
        await store.put(entry(OLD.id, i, now))
    new = [entry(NEW.id, 10_000 + i, now) for i in range(5)]
    serving[0] = NEW.id
    for e in new:
        await store.put(e)
    assert await store.get_exact("k1", now) is None, "an old entry is not found once the switch is served"

    purge = asyncio.create_task(store.purge_generation(OLD.id))
    during = 0
    while not purge.done():
        for e in new:
            hit = await store.get_exact(e.key, time.time())
            assert hit is not None and hit.answer == e.answer
            assert e.vector is not None
            found = await store.search("p", e.vector, 3, time.time())
            assert found and found[0][0].key == e.key and found[0][1] > 0.99
        during += 1
        await asyncio.sleep(0)
    assert await purge == 1000
    assert during > 0, "lookups ran while the purge was under way"
    assert await store.count(OLD.id) == 0
    assert await store.count(NEW.id) == 5


async def test_trim_drops_the_least_recently_used_not_the_oldest(store: RedisStore) -> None:
    store.follow(lambda: NEW.id)
    t0 = time.time() - 100
    for i in range(6):
        await store.put(entry(NEW.id, i, t0 + i))  # k0 written first, k5 last
    # k0 and k1 are hit exactly, k2 is the nearest neighbour of a semantic lookup: used recently,
    # although written earliest and closest to expiry.
    assert await store.get_exact("k0", time.time()) is not None
    assert await store.get_exact("k1", time.time()) is not None
    vector = entry(NEW.id, 2, t0).vector
    assert vector is not None
    found = await store.search("p", vector, 1, time.time())
    assert [e.key for e, _ in found] == ["k2"]
    await asyncio.sleep(0.2)  # uses are recorded without the lookup waiting for it

    assert await store.trim(NEW.id, 3) == 3
    now = time.time()
    kept = {k for k in (f"k{i}" for i in range(6)) if await store.get_exact(k, now) is not None}
    assert kept == {"k0", "k1", "k2"}
    assert await store.count(NEW.id) == 3
    assert await store.trim(NEW.id, 3) == 0, "nothing beyond the bound: nothing deleted"


async def test_invalidating_a_tag_removes_exactly_its_entries_in_paced_batches(store: RedisStore) -> None:
    store.follow(lambda: NEW.id)
    now = time.time()
    tagged = [dataclasses.replace(entry(NEW.id, i, now), tags=("billing", "eu")) for i in range(60)]
    others = [dataclasses.replace(entry(NEW.id, 100 + i, now), tags=("shipping",)) for i in range(20)]
    for e in tagged + others:
        await store.put(e)

    assert await store.delete_tag(NEW.id, "billing") == 60
    assert all([await store.get_exact(e.key, now) is None for e in tagged])
    assert all([await store.get_exact(e.key, now) is not None for e in others])
    assert tagged[0].vector is not None
    found = await store.search("p", tagged[0].vector, 10, time.time())
    assert {e.key for e, _ in found} <= {e.key for e in others}, "no invalidated entry is a candidate"
    assert await store.count(NEW.id) == 20
    assert await store.delete_tag(NEW.id, "billing") == 0
    # the recency set forgets them too, so a later trim does not count or chase them
    used = await store._client.zrange(store._used_key(NEW.id), 0, -1)
    assert {m.decode() for m in used} == {e.key for e in others}


async def test_a_redis_restart_recreates_the_current_generations_index(
    redis_url: str, redis_server: RedisServer, store: RedisStore
) -> None:
    store.follow(lambda: NEW.id)
    e = entry(NEW.id, 1, time.time())
    await store.put(e)
    assert e.vector is not None
    redis_server.stop()
    redis_server.start()  # empty: no persistence, as a fresh pod without a volume
    deadline = time.monotonic() + 30
    while True:
        try:
            assert await store.search("p", e.vector, 1, time.time()) == []
            break
        except StoreError:  # the first command on the dropped connection fails; the cache fails open
            assert time.monotonic() < deadline, "the store never recovered after the restart"
            await asyncio.sleep(0.2)
    client = redis.Redis.from_url(redis_url)
    names = {n.decode() for n in client.execute_command("FT._LIST")}
    client.close()
    assert store.index_name(NEW.id) in names
    await store.put(e)
    found = await store.search("p", e.vector, 1, time.time())
    assert [x.key for x, _ in found] == ["k1"]
