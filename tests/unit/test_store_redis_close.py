"""Closing a Redis store stops its background work even when the Redis client turns the cancellation
into a connection error (a command cut off mid-read), instead of the retry loops taking it for an
outage and going on for ever: what hung a CI run's teardown while a janitor was purging a generation.

No Redis is needed: the store's own Redis calls are replaced by ones that wait and, when cancelled,
raise what the client raises for a connection closed mid-command. The real deletion is covered by
tests/integration/test_sidecar_generation_cleanup.py."""

from __future__ import annotations

import asyncio

import pytest

import redis
from hermes_sidecar.store.redis import RedisStore, redis_client


async def _cut_off(*_args: object, **_kwargs: object) -> list[str]:
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        raise redis.exceptions.ConnectionError("Connection closed by server.") from None
    return []


def _store(janitor_interval: float = 0.05) -> RedisStore:
    # an address nothing listens on: the test must not reach any Redis
    return RedisStore(redis_client("redis://127.0.0.1:9"), "test/close", 8, janitor_interval=janitor_interval)


async def test_a_cancelled_purge_stops_though_the_client_reports_a_connection_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = _store()
    monkeypatch.setattr(store, "_drop_indexes", _cut_off)
    purge = asyncio.create_task(store.purge_generation("g-old"))
    await asyncio.sleep(0.05)
    purge.cancel()
    done, _ = await asyncio.wait({purge}, timeout=5)  # no wait_for: it would await the cancel it sends
    assert purge in done, "the purge took the cancellation for a Redis outage and went on"
    assert purge.cancelled()
    await store.aclose()


async def test_closing_stops_a_janitor_in_the_middle_of_a_purge(monkeypatch: pytest.MonkeyPatch) -> None:
    store = _store()

    async def current() -> str:
        return "g-new"

    async def leftovers(_current: str) -> set[str]:
        return {"g-old"}

    monkeypatch.setattr(store, "_current_generation", current)
    monkeypatch.setattr(store, "_leftover_generations", leftovers)
    monkeypatch.setattr(store, "_drop_indexes", _cut_off)
    store._janitor = asyncio.create_task(store._janitor_loop())
    await asyncio.sleep(0.1)  # the janitor is inside the purge, waiting on "Redis"
    closing = asyncio.create_task(store.aclose())
    done, _ = await asyncio.wait({closing}, timeout=5)
    assert closing in done, "aclose() waited for a janitor that never stopped"
    assert store._janitor.done()


async def test_a_purge_still_retries_an_outage_while_the_store_is_open(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = _store()
    calls = 0

    async def flaky(_generation: str) -> list[str]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:9. Connection refused.")
        return []

    async def no_keys(_generation: str, _version: str | None) -> int:
        return 0

    monkeypatch.setattr(store, "_drop_indexes", flaky)
    monkeypatch.setattr(store, "_unlink_keys", no_keys)
    assert await asyncio.wait_for(store.purge_generation("g-old"), timeout=5) == 0
    assert calls == 2, "an outage is retried, not given up"
    await store.aclose()
