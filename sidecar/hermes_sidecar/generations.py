"""Cache generations: follow the operator's generation record and keep per-generation stats.

The record is the Redis key ``hermes:{scope}:generation`` (JSON ``{"version", "uid", "switchedAt"}``),
and the same JSON is PUBLISHed on the channel of the same name. The follower reads the key at
start-up, then listens on the channel; after a lost connection it reads the key again, so a switch
published while it was away still lands. Every cache key and vLLM ``cache_salt`` includes the
generation id, so switching the in-memory value stops serving the old generation at once; the old
entries are then deleted in the background (small paced batches, resumed after errors, finished by
the store's janitor after a restart; never KEYS or FLUSHDB; see ``store.redis``).

Per-generation counters go to the hash ``hermes:{scope}:stats:{version}`` (fields ``hit_exact``,
``hit_semantic``, ``miss``, ``bypass``, ``error``, ``entries``) in batched pipelines, off the hot path;
the background deletion adds ``removed`` to the old generation's hash as it goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions

from .contract import parse_record
from .contract import record_key as record_key
from .contract import stats_key as stats_key

log = logging.getLogger("hermes_sidecar.generations")


@dataclass(frozen=True)
class Generation:
    version: str
    uid: str
    switched_at: str | None = None

    @property
    def id(self) -> str:
        """Short stable id used in keys, tags and salts (version strings may hold any character)."""
        return hashlib.sha256(f"{self.uid}\0{self.version}".encode()).hexdigest()[:16]

    def as_dict(self) -> dict[str, Any]:
        return {"version": self.version, "uid": self.uid, "switchedAt": self.switched_at, "id": self.id}

    @classmethod
    def parse(cls, raw: str | bytes) -> Generation:
        record = parse_record(raw)
        gen = cls(record.version, record.uid, record.switched_at)
        _seen[gen.id] = gen.version
        return gen


# id -> version of every generation this process has read, so that a background purge (which only
# sees ids on entries) can report progress into the stats hash of the right version.
_seen: dict[str, str] = {}


def known_version(generation_id: str) -> str | None:
    """The version behind a generation id, when this process has seen its record."""
    return _seen.get(generation_id)


LOCAL = Generation("0", "local")


class GenerationFollower:
    """Holds the current generation; ``on_switch(old, new)`` runs (as a task) after every change."""

    def __init__(
        self,
        client: aioredis.Redis | None,
        scope: str,
        on_switch: Callable[[Generation, Generation], Coroutine[Any, Any, None]],
        *,
        reread_seconds: float = 5.0,
    ) -> None:
        self._client = client
        self._scope = scope
        self._on_switch = on_switch
        self._reread = reread_seconds
        self.current = LOCAL
        self.connected = client is None
        self._task: asyncio.Task[None] | None = None
        self._switch_tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        if self._client is None:
            return
        with contextlib.suppress(redis.exceptions.RedisError, OSError, ValueError):
            await self._read()
        self._task = asyncio.create_task(self._follow(), name="hermes-generation-follower")

    async def _read(self) -> None:
        assert self._client is not None
        raw = await self._client.get(record_key(self._scope))
        if raw is not None:
            self.apply(Generation.parse(raw))

    def apply(self, new: Generation) -> None:
        old = self.current
        if new.id == old.id:
            return
        self.current = new
        log.info("cache generation switched from %s to %s", old.version, new.version)
        task = asyncio.create_task(self._on_switch(old, new))
        self._switch_tasks.add(task)
        task.add_done_callback(self._switch_tasks.discard)

    async def _follow(self) -> None:
        assert self._client is not None
        channel = record_key(self._scope)
        while True:
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(channel)
                # Read after subscribing: a switch between the two is then seen by one of them.
                await self._read()
                self.connected = True
                while True:
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=self._reread)
                    if msg is None:
                        await self._read()  # safety net: a lost message costs at most reread_seconds
                        continue
                    if msg.get("type") == "message":
                        try:
                            self.apply(Generation.parse(msg["data"]))
                        except ValueError as exc:
                            log.warning("ignoring bad generation message: %s", exc)
            except asyncio.CancelledError:
                await _close(pubsub)
                raise
            except (redis.exceptions.RedisError, OSError, ValueError) as exc:
                self.connected = False
                log.warning("generation channel lost (%s); retrying", exc)
                await _close(pubsub)
                await asyncio.sleep(0.5)

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._switch_tasks) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class StatsWriter:
    """Buffers per-generation counters and flushes them with one pipeline every ``interval`` seconds."""

    def __init__(self, client: aioredis.Redis | None, scope: str, *, interval: float = 0.5) -> None:
        self._client = client
        self._scope = scope
        self._interval = interval
        self._pending: Counter[tuple[str, str]] = Counter()
        self._entries: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    def count(self, version: str, result: str) -> None:
        if self._client is not None:
            self._pending[(version, result)] += 1

    def set_entries(self, version: str, entries: int) -> None:
        if self._client is not None:
            self._entries[version] = entries

    async def start(self) -> None:
        if self._client is not None:
            self._task = asyncio.create_task(self._loop(), name="hermes-stats-writer")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.flush()

    async def flush(self) -> None:
        if self._client is None or not (self._pending or self._entries):
            return
        pending, self._pending = self._pending, Counter()
        entries, self._entries = self._entries, {}
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for (version, result), n in pending.items():
                    pipe.hincrby(stats_key(self._scope, version), result, n)
                for version, n in entries.items():
                    pipe.hset(stats_key(self._scope, version), "entries", n)
                await pipe.execute()
        except (redis.exceptions.RedisError, OSError):
            # Keep the counts for the next flush: Redis being down must not lose the numbers.
            self._pending.update(pending)
            for version, n in entries.items():
                self._entries.setdefault(version, n)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.flush()


async def _close(pubsub: aioredis.client.PubSub) -> None:
    """Close a subscription whose connection may already be gone.

    Called through ``Any``: redis-py types ``PubSub.aclose`` from 8.2 on and not before, and the
    lock may move between them; a ``type: ignore`` holds for only one of the two.
    """
    closable: Any = pubsub
    with contextlib.suppress(Exception):
        await closable.aclose()
