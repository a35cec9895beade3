"""After a generation switch the old generation is deleted in the background: its index is dropped
and every one of its keys removed, also when the deletion is interrupted (by a Redis restart, or by a
sidecar that stops after dropping the index), in which case another store's janitor finishes it."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator

import numpy as np
import pytest
from conftest import RedisServer

import redis
from hermes_sidecar.generations import Generation, record_key, stats_key
from hermes_sidecar.store import Entry
from hermes_sidecar.store.redis import RedisStore, redis_client

pytestmark = pytest.mark.integration
DIM = 32
ENTRIES = 1000


def entries(generation: str, n: int, start: int = 0) -> list[Entry]:
    rng = np.random.default_rng(7 + start)
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    now = time.time()
    return [
        Entry(f"k{i}", "p", generation, "{}", now, now + 3600, f"question {i}", vector=vectors[i - start])
        for i in range(start, start + n)
    ]


async def fill(store: RedisStore, generation: str, n: int) -> None:
    """n indexed entries of ``generation``, written as the sidecar writes them (creates its index)."""
    for entry in entries(generation, n):
        await store.put(entry)


def seed_unindexed(url: str, store: RedisStore, generation: str, n: int) -> None:
    """n hashes of ``generation`` whose index is gone: what a purge cut short after the drop leaves."""
    client = redis.Redis.from_url(url)
    pipe = client.pipeline(transaction=False)
    for e in entries(generation, n):
        pipe.hset(store.prefix_of(generation) + e.key, mapping={"partition": "p", "answer": "{}"})
    pipe.execute()
    client.close()


def switch(url: str, scope: str, gen: Generation) -> None:
    client = redis.Redis.from_url(url)
    client.set(record_key(scope), json.dumps({"version": gen.version, "uid": gen.uid}))
    client.close()
    Generation.parse(json.dumps({"version": gen.version, "uid": gen.uid}))  # as the follower reads it


def keys_of(url: str, scope: str, gen: Generation) -> list[bytes]:
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"hermes:{scope}:g:{gen.id}:*", count=1000))
    client.close()
    return keys


def indexes(url: str) -> set[str]:
    client = redis.Redis.from_url(url)
    names = {n.decode() for n in client.execute_command("FT._LIST")}
    client.close()
    return names


OLD = Generation("v1", "uid-1")
NEW = Generation("v2", "uid-1")
OLDER = Generation("v0", "uid-1")


@pytest.fixture
def scope() -> str:
    return f"test/cleanup-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def store(redis_url: str, scope: str) -> AsyncIterator[RedisStore]:
    """A store serving NEW whose janitor looks for stray generations every 0.5 s."""
    s = RedisStore(redis_client(redis_url), scope, DIM, janitor_interval=0.5)
    s.follow(lambda: NEW.id)
    await s.ping()
    yield s
    await s.aclose()


async def wait_until_gone(url: str, scope: str, gen: Generation, limit: float) -> None:
    deadline = time.monotonic() + limit
    while keys_of(url, scope, gen):
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(keys_of(url, scope, gen))} keys of {gen} left after {limit} s")
        await asyncio.sleep(0.1)


def removed(url: str, scope: str, gen: Generation) -> int:
    client = redis.Redis.from_url(url)
    value = client.hget(stats_key(scope, gen.version), "removed")
    client.close()
    return int(value or 0)


async def test_switch_drops_the_old_index_and_removes_every_key(
    redis_url: str, scope: str, store: RedisStore
) -> None:
    switch(redis_url, scope, OLD)
    await fill(store, OLD.id, ENTRIES)
    assert store.index_name(OLD.id) in indexes(redis_url)
    assert await store.count(OLD.id) == ENTRIES
    switch(redis_url, scope, NEW)
    await fill(store, NEW.id, 10)
    # what the sidecar does after a switch; its janitor may share the work meanwhile. How long Redis
    # stalls meanwhile is a benchmark figure (bench/switch.py), not a test bound on a shared machine.
    await asyncio.wait_for(store.delete_generation(OLD.id), timeout=120)
    assert store.index_name(OLD.id) not in indexes(redis_url), "the old generation's index is dropped"
    assert keys_of(redis_url, scope, OLD) == [], "no entry and no LRU set of the old generation is left"
    assert await store.count(OLD.id) == 0
    assert store.index_name(NEW.id) in indexes(redis_url)
    assert await store.count(NEW.id) == 10, "only the old generation is deleted"
    assert removed(redis_url, scope, OLD) == ENTRIES, "the stats hash counts every removed entry once"


async def test_two_sidecars_purging_one_generation_at_once_count_each_entry_once(
    redis_url: str, scope: str
) -> None:
    # small batches and pauses, so the two purges interleave over many SCAN rounds
    stores = [
        RedisStore(
            redis_client(redis_url), scope, DIM, janitor_interval=3600, purge_batch=20, purge_pause=0.005
        )
        for _ in range(2)
    ]
    try:
        switch(redis_url, scope, OLD)
        stores[0].follow(lambda: OLD.id)
        await fill(stores[0], OLD.id, ENTRIES)
        switch(redis_url, scope, NEW)
        for s in stores:
            s.follow(lambda: NEW.id)
        counts = await asyncio.wait_for(asyncio.gather(*(s.purge_generation(OLD.id) for s in stores)), 120)
        assert keys_of(redis_url, scope, OLD) == []
        assert sum(counts) == ENTRIES, f"each entry is counted by the purge that removed it: {counts}"
        assert removed(redis_url, scope, OLD) == ENTRIES, "the stats hash counts every removed entry once"
    finally:
        for s in stores:
            await s.aclose()


async def test_a_purge_cut_short_is_finished_by_another_stores_janitor(redis_url: str, scope: str) -> None:
    first = RedisStore(redis_client(redis_url), scope, DIM, janitor_interval=3600)
    switch(redis_url, scope, OLDER)
    first.follow(lambda: OLDER.id)
    await fill(first, OLDER.id, 200)  # a generation whose deletion never started: index and keys
    switch(redis_url, scope, OLD)
    first.follow(lambda: OLD.id)
    await fill(first, OLD.id, 300)
    await first.aclose()
    # The first sidecar stopped right after dropping OLD's index: its keys are still there, unindexed.
    client = redis.Redis.from_url(redis_url)
    client.ft(f"hermes:{scope}:g:{OLD.id}:idx:{DIM}").dropindex(delete_documents=False)
    client.close()
    switch(redis_url, scope, NEW)
    assert len(keys_of(redis_url, scope, OLD)) == 300 + 1  # entries and the LRU set

    second = RedisStore(redis_client(redis_url), scope, DIM, janitor_interval=0.2)
    second.follow(lambda: NEW.id)
    try:
        await second.ping()  # starts the janitor
        await wait_until_gone(redis_url, scope, OLD, 60)
        await wait_until_gone(redis_url, scope, OLDER, 60)
        assert {n for n in indexes(redis_url) if n.startswith(f"hermes:{scope}:")} == {
            second.index_name(NEW.id)
        }, "only the served generation keeps an index"
        assert removed(redis_url, scope, OLD) == 300
        assert removed(redis_url, scope, OLDER) == 200
    finally:
        await second.aclose()


async def test_deletion_resumes_after_redis_restarts(
    redis_url: str, scope: str, redis_server: RedisServer
) -> None:
    # small batches, so that the deletion is still under way when it is interrupted
    store = RedisStore(
        redis_client(redis_url), scope, DIM, janitor_interval=3600, purge_batch=5, purge_pause=0.02
    )
    store.follow(lambda: NEW.id)
    await store.ping()
    try:
        switch(redis_url, scope, OLD)
        await fill(store, OLD.id, ENTRIES)
        switch(redis_url, scope, NEW)
        task = asyncio.create_task(store.delete_generation(OLD.id))
        while removed(redis_url, scope, OLD) < 100:
            await asyncio.sleep(0.05)
        redis_server.stop()
        await asyncio.sleep(1.5)  # the purge meets refused connections and backs off
        assert not task.done(), "the purge gave up while Redis was down"
        redis_server.start()
        # The restarted server is empty (no persistence); put back what a persistent one would still
        # hold (keys whose index is gone), so the purge has to find and finish them.
        switch(redis_url, scope, NEW)
        seed_unindexed(redis_url, store, OLD.id, ENTRIES // 2)
        await asyncio.wait_for(task, timeout=120)
        await wait_until_gone(redis_url, scope, OLD, 5)
    finally:
        await store.aclose()
