"""The operator's generation switch against a real Redis: the record a sidecar reads, the message it hears.

Redis is started by the project's own script on its own port (scripts/redis/start.sh) and stopped after.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from test_handlers import RecordingKube, cr

from hermes_operator.env import Env
from hermes_operator.generations import GenerationStoreError, RedisGenerationStore, stats_key
from hermes_operator.reconcile import reconcile

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
PORT = 6413


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    state = tmp_path_factory.mktemp("redis")
    subprocess.run(["bash", str(ROOT / "scripts/redis/start.sh"), str(PORT), str(state)], check=True)
    try:
        yield f"redis://127.0.0.1:{PORT}/0"
    finally:
        subprocess.run(["bash", str(ROOT / "scripts/redis/stop.sh"), str(PORT), str(state)], check=False)


def test_cache_version_change_sets_the_key_and_publishes_the_same_json(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    store = RedisGenerationStore(redis_url)
    env = Env(kube=RecordingKube(), stores=lambda url: store)
    spec: dict[str, Any] = {"semanticCache": {"redis": {"url": redis_url}}}
    first = reconcile(cr(cacheVersion="v1", **spec), env)

    pubsub = client.pubsub()
    channel = "hermes:team-a/hermes-8b:generation"
    pubsub.subscribe(channel)
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"
    heard: list[str] = []
    listener = threading.Thread(target=lambda: heard.append(pubsub.get_message(timeout=10)["data"]))
    listener.start()
    second = reconcile(cr(generation=2, status=first, cacheVersion="v2", **spec), env)
    listener.join()

    record = json.loads(client.get(channel) or "")
    assert record == {"version": "v2", "uid": "uid-1", "switchedAt": second["cacheVersionSwitchedAt"]}
    assert json.loads(heard[0]) == record
    pubsub.close()


def test_stats_hash_becomes_status(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    store = RedisGenerationStore(redis_url)
    env = Env(kube=RecordingKube(), stores=lambda url: store)
    spec: dict[str, Any] = {"semanticCache": {"redis": {"url": redis_url}}, "cacheVersion": "v9"}
    first = reconcile(cr(**spec), env)
    key = stats_key("team-a", "hermes-8b", "v9")
    for field, n in {"hit_exact": 3, "hit_semantic": 1, "miss": 4, "bypass": 2}.items():
        client.hincrby(key, field, n)
    client.hset(key, "entries", 5)
    status = reconcile(cr(status=first, **spec), env, read_stats=True)
    assert status["semanticCache"] == {"hitRate": "0.500", "requests": 10, "entries": 5}


def test_unreachable_redis_is_a_clear_error() -> None:
    store = RedisGenerationStore("redis://:pw@127.0.0.1:1/0", timeout=0.5)
    with pytest.raises(GenerationStoreError) as err:
        store.write_generation("ns", "p", "{}")
    assert "127.0.0.1:1" in str(err.value) and "pw" not in str(err.value)
