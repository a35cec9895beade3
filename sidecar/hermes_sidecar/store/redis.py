"""The Redis store: one hash per entry with an absolute ``EXPIRE``, and one RediSearch index (HNSW,
cosine; redisvl) per cache generation.

Layout of generation ``G`` in scope ``S`` (everything of a generation shares the prefix
``hermes:S:g:G:``):

- ``hermes:S:g:G:entry:<exact key>``: the entries (hashes), indexed by ``hermes:S:g:G:idx:<dim>``;
- ``hermes:S:g:G:used``: a sorted set, exact key -> last use (unix time), for LRU trimming.

Why one index per generation: deleting a hash that is in an HNSW index repairs the graph inside the
command (measured 2-70 ms of Redis main-thread time per entry on a busy 2-core machine), so deleting
100k entries of a shared index stalled Redis for seconds in total. After a switch the old
generation's index is dropped instead (``FT.DROPINDEX`` without ``DD``: sub-millisecond, the hashes
stay), and its keys, no longer indexed, are removed by ``SCAN MATCH <prefix>*`` + ``UNLINK`` in
paced batches (microseconds per key). Never ``KEYS``, ``FLUSHDB`` or ``DD`` (which deletes every
hash synchronously).

Why a sorted set for LRU and not a ``used`` field in the hash: RediSearch re-indexes the whole
document on any ``HSET`` to an indexed hash, vector included (measured 7 ms per HSET at 384
dimensions, the same for a field outside the schema), which a hit must not cost; a ``ZADD`` costs
microseconds. It is sent after the hit's answer is known, without being waited for.

Lookups, writes, tag deletion and counts use the index of the generation they are given or, for
``get_exact`` and ``search`` (whose keys already include the generation), the generation the store
serves: what :meth:`RedisStore.follow` names (the sidecar passes its generation follower), else the
generation last written, else the one in the generation record. An index is created on first use,
and again after a "no such index" answer (Redis restarted empty), so caching resumes by itself.

Old generations are deleted by background work with its own client (longer timeout, so the hot
path's 0.5 s stays untouched) and its own pace: each ``UNLINK`` is sized by the time the last one
took (aiming at ``purge_target`` seconds), the purge rests at least as long as the command took,
resumes after any error with backoff, and adds its progress to the field ``removed`` of the old
generation's stats hash. A janitor (started by the first successful ``ping``) finds, at start-up and
every ``janitor_interval`` seconds, generations of this scope other than the current one, both by
their index (``FT._LIST``) and by their keys (``SCAN``; a purge cut short after dropping the index),
and deletes them, so a purge cut short by a restart is finished by the next sidecar. Several sidecars
doing this at once only share the work: UNLINK of a key already gone counts nothing.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import redis.asyncio as aioredis
import redis.exceptions
from redisvl.exceptions import RedisSearchError
from redisvl.index import AsyncSearchIndex
from redisvl.query import CountQuery, FilterQuery, VectorQuery
from redisvl.query.filter import FilterExpression, Tag
from redisvl.schema import IndexSchema

from hermes_sidecar.generations import Generation, known_version, record_key, stats_key
from hermes_sidecar.store import Entry, StoreError

log = logging.getLogger("hermes_sidecar.store.redis")

_FIELDS = ["partition", "generation", "answer", "created", "expires", "text", "context", "tags"]
# How a lost connection surfaces: redis-py's errors, socket errors, and RuntimeError from uvloop, which
# raises it (not ConnectionError) for a write to a transport the server just closed
# (MagicStack/uvloop#506; seen when Redis is killed while a connection is being set up).
_UNREACHABLE: tuple[type[Exception], ...] = (redis.exceptions.RedisError, OSError, RuntimeError)
# Reading the generation record: Redis unreachable, or a record that does not parse.
_RECORD_UNREADABLE: tuple[type[Exception], ...] = (*_UNREACHABLE, ValueError)
_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


def _glob_escape(text: str) -> str:
    return _GLOB_SPECIAL.sub(r"\\\1", text)


def _resized(size: int, took: float, target: float, cap: int, *, full: bool = True) -> int:
    """The next batch size of a paced deletion: halved after a command that took longer than
    ``target`` seconds, doubled (up to ``cap``) after a ``full`` batch that took under half of it."""
    if took > target:
        return max(1, size // 2)
    if took < target / 2 and full:
        return min(cap, size * 2)
    return size


def _missing_index(exc: Exception) -> bool:
    text = str(exc).lower()
    return "no such index" in text or "unknown index" in text


async def _index_names(client: aioredis.Redis) -> set[str]:
    """Names of every RediSearch index on the server (FT._LIST)."""
    raw = await client.execute_command("FT._LIST")  # type: ignore[no-untyped-call]
    return {n.decode() if isinstance(n, bytes) else str(n) for n in raw}


def _schema(name: str, prefix: str, dim: int, algorithm: str) -> IndexSchema:
    attrs: dict[str, Any] = {
        "dims": dim,
        "distance_metric": "cosine",
        "algorithm": algorithm,
        "datatype": "float32",
    }
    if algorithm == "hnsw":
        # Higher than redisvl's defaults: recall matters more than microseconds here (a missed
        # neighbour is a miss that costs a whole LLM call).
        attrs.update({"m": 32, "ef_construction": 400, "ef_runtime": 100})
    return IndexSchema.from_dict(
        {
            "index": {"name": name, "prefix": prefix, "storage_type": "hash"},
            "fields": [
                {"name": "partition", "type": "tag"},
                {"name": "tags", "type": "tag", "attrs": {"separator": ","}},
                {"name": "expires", "type": "numeric", "attrs": {"sortable": True}},
                {"name": "vector", "type": "vector", "attrs": attrs},
            ],
        }
    )


class RedisStore:
    name = "redis"

    def __init__(
        self,
        client: aioredis.Redis,
        scope: str,
        dim: int,
        *,
        algorithm: str = "hnsw",
        purge_batch: int = 1000,
        purge_target: float = 0.004,
        purge_pause: float = 0.005,
        trim_batch: int = 20,
        janitor_interval: float = 60.0,
    ) -> None:
        self._client = client
        self._scope = scope
        self._dim = dim
        self._algorithm = algorithm
        self._purge_batch = purge_batch
        self._purge_target = purge_target
        self._purge_size = min(100, purge_batch)  # adapted from the measured UNLINK time, kept across purges
        self._purge_pause = purge_pause
        self._trim_batch = trim_batch
        self._trim_size = 1  # entries per UNLINK while trimming, adapted like the purge's
        self._janitor_interval = janitor_interval
        self._bg: aioredis.Redis | None = None
        self._janitor: asyncio.Task[None] | None = None
        self._closing = False
        self._indexes: dict[str, AsyncSearchIndex] = {}
        self._ready: set[str] = set()
        self._flushing: set[str] = set()  # generations whose index must not come back meanwhile
        self._lock = asyncio.Lock()
        self._follow: Callable[[], str] | None = None
        self._last_put: str | None = None
        self._recorded: str | None = None  # from the generation record, read at ping and by the janitor
        self._touches: set[asyncio.Task[None]] = set()
        self._max_ttl = 0.0

    # -- names -------------------------------------------------------------------------------------

    def _base(self, generation: str) -> str:
        return f"hermes:{self._scope}:g:{generation}:"

    def prefix_of(self, generation: str) -> str:
        """Key prefix of the entries of ``generation``; the entry of exact key k is ``prefix + k``."""
        return self._base(generation) + "entry:"

    def index_name(self, generation: str) -> str:
        return self._base(generation) + f"idx:{self._dim}"

    def _used_key(self, generation: str) -> str:
        return self._base(generation) + "used"

    def _index(self, generation: str) -> AsyncSearchIndex:
        index = self._indexes.get(generation)
        if index is None:
            index = self._indexes[generation] = AsyncSearchIndex(
                _schema(self.index_name(generation), self.prefix_of(generation), self._dim, self._algorithm),
                redis_client=self._client,
                owns_client=False,
            )
        return index

    # -- which generation ----------------------------------------------------------------------------

    def follow(self, current: Callable[[], str]) -> None:
        """Look up in the generation ``current()`` names (the sidecar's generation follower): a switch
        moves lookups to the new index at once, with no Redis round trip."""
        self._follow = current

    def serving(self) -> str | None:
        """The generation ``get_exact`` and ``search`` look in."""
        if self._follow is not None:
            return self._follow()
        return self._last_put or self._recorded

    # -- index life --------------------------------------------------------------------------------

    async def _ensure_index(self, generation: str, force: bool = False) -> None:
        if generation in self._ready and not force:
            return
        if generation in self._flushing:
            raise StoreError(f"generation {generation} is being flushed; its index comes back afterwards")
        async with self._lock:
            if generation in self._ready and not force:
                return
            try:
                await self._index(generation).create(overwrite=False)
            except (RedisSearchError, redis.exceptions.RedisError) as exc:
                raise StoreError(f"cannot create the vector index of generation {generation}: {exc}") from exc
            self._ready.add(generation)

    async def _guard(self, generation: str, coro_fn: Any) -> Any:
        """Run a Redis operation on ``generation``'s index; recreate a lost index once; turn every
        failure into StoreError."""
        for attempt in (0, 1):
            try:
                await self._ensure_index(generation, force=attempt == 1)
                return await coro_fn()
            except (RedisSearchError, redis.exceptions.ResponseError) as exc:
                if attempt == 0 and _missing_index(exc):
                    self._ready.discard(generation)
                    continue
                raise StoreError(str(exc)) from exc
            except _UNREACHABLE as exc:
                self._ready.clear()  # after a reconnect the server may be a fresh one
                raise StoreError(str(exc)) from exc
        raise StoreError("unreachable")

    # -- entries -----------------------------------------------------------------------------------

    @staticmethod
    def _decode(key: str, h: dict[Any, Any]) -> Entry:
        def s(name: str) -> str:
            v = h.get(name.encode(), h.get(name, b""))
            return v.decode() if isinstance(v, bytes) else str(v)

        raw_vec = h.get(b"vector", h.get("vector"))
        vector = np.frombuffer(raw_vec, dtype=np.float32) if isinstance(raw_vec, bytes) and raw_vec else None
        text = s("text")
        return Entry(
            key=key,
            partition=s("partition"),
            generation=s("generation"),
            answer=s("answer"),
            created=float(s("created") or 0),
            expires=float(s("expires") or 0),
            text=text or None,
            context=s("context"),
            vector=vector,
            tags=tuple(t for t in s("tags").split(",") if t),
        )

    def _touch(self, generation: str, keys: list[str]) -> None:
        """Record a use of ``keys`` for LRU trimming, without making the request wait for it. ``XX``:
        an entry deleted meanwhile does not come back into the set."""
        if not keys:
            return
        now = time.time()

        async def send() -> None:
            try:
                await self._client.zadd(self._used_key(generation), dict.fromkeys(keys, now), xx=True)
            except _UNREACHABLE as exc:
                log.warning("could not record the use of %d entries for LRU trimming: %s", len(keys), exc)

        task = asyncio.create_task(send())
        self._touches.add(task)
        task.add_done_callback(self._touches.discard)

    async def get_exact(self, key: str, now: float) -> Entry | None:
        generation = self.serving()
        if generation is None or generation in self._flushing:
            return None  # nothing written and no generation record, or being flushed: nothing to find
        try:
            # The fields an answer needs, not the vector: an exact hit has no use for its 1.5 KB.
            values = await self._client.hmget(self.prefix_of(generation) + key, _FIELDS)
        except _UNREACHABLE as exc:
            self._ready.clear()
            raise StoreError(str(exc)) from exc
        h = {name: v for name, v in zip(_FIELDS, values, strict=True) if v is not None}
        if not h:
            return None
        entry = self._decode(key, h)
        if entry.expires <= now:
            return None
        self._touch(generation, [key])
        return entry

    async def search(
        self, partition: str, vector: npt.NDArray[np.float32], k: int, now: float
    ) -> list[tuple[Entry, float]]:
        generation = self.serving()
        if generation is None:
            return []
        query = VectorQuery(
            vector=vector.astype(np.float32).tobytes(),
            vector_field_name="vector",
            return_fields=[*_FIELDS, "vector_distance"],
            filter_expression=Tag("partition") == partition,
            num_results=k,
            dtype="float32",
        )
        index = self._index(generation)

        async def op() -> list[dict[str, Any]]:
            result: list[dict[str, Any]] = await index.query(query)
            return result

        rows = await self._guard(generation, op)
        prefix = self.prefix_of(generation)
        found: list[tuple[Entry, float]] = []
        for row in rows:
            key = str(row["id"])[len(prefix) :]
            entry = self._decode(key, {k: v for k, v in row.items() if k != "vector"})
            if entry.expires <= now:
                continue
            # redisvl reports cosine distance (1 - cosine similarity)
            found.append((entry, 1.0 - float(row["vector_distance"])))
        # Every candidate returned counts as used, as in the memory store.
        self._touch(generation, [e.key for e, _ in found])
        return found

    async def put(self, entry: Entry) -> None:
        mapping: dict[str, Any] = {
            "partition": entry.partition,
            "generation": entry.generation,
            "answer": entry.answer,
            "created": entry.created,
            "expires": entry.expires,
            "text": entry.text or "",
            "context": entry.context,
            "tags": ",".join(entry.tags),
        }
        if entry.vector is not None and entry.vector.shape == (self._dim,):
            mapping["vector"] = entry.vector.astype(np.float32).tobytes()
        elif entry.vector is not None:
            # RediSearch would silently leave a wrong-sized vector out of the index: say it, keep exact.
            log.warning(
                "vector of size %d for an index of %d: stored for exact reuse only",
                entry.vector.size,
                self._dim,
            )
            mapping["text"] = ""
        ttl = max(0.001, entry.expires - entry.created)
        self._max_ttl = max(self._max_ttl, ttl)
        key = self.prefix_of(entry.generation) + entry.key

        async def op() -> None:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.delete(key)
                pipe.hset(key, mapping=mapping)  # type: ignore[arg-type]
                pipe.pexpire(key, int(ttl * 1000))
                pipe.zadd(self._used_key(entry.generation), {entry.key: entry.created})
                await pipe.execute()

        await self._guard(entry.generation, op)
        self._last_put = entry.generation

    async def delete_tag(self, generation: str, tag: str) -> int:
        """Delete the entries of ``generation`` that carry ``tag``; returns when none is left. They are
        indexed, so each UNLINK pays for the HNSW repair (2-70 ms per entry here): small batches on the
        background client, sized and rested like a trim's, so a large tag slows this call, not
        Redis."""
        index = self._index(generation)
        prefix = self.prefix_of(generation)
        deleted = 0
        while True:
            query = FilterQuery(Tag("tags") == tag, return_fields=["id"], num_results=self._trim_size)

            async def op(q: FilterQuery = query) -> list[dict[str, Any]]:
                rows: list[dict[str, Any]] = await index.query(q)
                return rows

            rows = await self._guard(generation, op)
            if not rows:
                return deleted
            try:
                n = await self._unlink_entries(generation, [str(r["id"])[len(prefix) :] for r in rows])
            except _UNREACHABLE as exc:
                raise StoreError(f"invalidating tag {tag!r} stopped after {deleted} entries: {exc}") from exc
            deleted += n
            if n == 0:
                return deleted  # the index still lists keys that are gone: nothing more to do here

    async def count(self, generation: str) -> int:
        """Entries of ``generation``: from its index or, when it has none (an old generation being
        deleted, or Redis restarted empty), by scanning its keys. Counting never creates an index: a
        count of an old generation must not index it again."""
        try:
            return int(await self._index(generation).query(CountQuery(FilterExpression("*"))))
        except (RedisSearchError, redis.exceptions.ResponseError) as exc:
            if not _missing_index(exc):
                raise StoreError(str(exc)) from exc
        except _UNREACHABLE as exc:
            self._ready.clear()
            raise StoreError(str(exc)) from exc
        self._ready.discard(generation)
        return await self._count_keys(generation)

    async def _count_keys(self, generation: str) -> int:
        n = 0
        try:
            async for _ in self._background.scan_iter(
                match=_glob_escape(self.prefix_of(generation)) + "*", count=1000
            ):
                n += 1
        except _UNREACHABLE as exc:
            raise StoreError(str(exc)) from exc
        return n

    # -- LRU trimming ------------------------------------------------------------------------------

    async def trim(self, generation: str, max_entries: int) -> int:
        """Delete the least recently used entries of ``generation`` beyond ``max_entries`` (a hit or a
        write is a use, as in the memory store). Redis ``maxmemory`` with ``volatile-lru`` is the hard
        bound; this keeps one generation from filling it. The entries are indexed, so each UNLINK pays
        for the HNSW repair: batches on the background client, sized and rested like a purge's."""
        bg = self._background
        used = self._used_key(generation)
        deleted = 0
        try:
            if self._max_ttl:
                # Members not used for longer than any TTL written belong to entries that expired.
                await bg.zremrangebyscore(used, "-inf", time.time() - self._max_ttl)
            excess = await self.count(generation) - max_entries
            while excess > 0:
                members = await bg.zrange(used, 0, min(excess, self._trim_size) - 1)
                if not members:
                    break
                n = await self._unlink_entries(
                    generation, [m.decode() if isinstance(m, bytes) else str(m) for m in members]
                )
                deleted += n
                excess -= n
        except _UNREACHABLE as exc:
            raise StoreError(
                f"trimming generation {generation} stopped after {deleted} entries: {exc}"
            ) from exc
        return deleted

    async def _unlink_entries(self, generation: str, keys: list[str]) -> int:
        """UNLINK indexed entries of ``generation`` (exact keys) and forget them in the recency set, on
        the background client; the batch size for the next call follows the time the UNLINK took, and
        the call rests at least as long. Trimming and tag deletion share this pace."""
        bg = self._background
        prefix = self.prefix_of(generation)
        t0 = time.monotonic()
        n = int(await bg.unlink(*[prefix + k for k in keys]))
        took = time.monotonic() - t0
        await bg.zrem(self._used_key(generation), *keys)
        full = len(keys) == self._trim_size
        self._trim_size = _resized(self._trim_size, took, self._purge_target, self._trim_batch, full=full)
        await asyncio.sleep(max(self._purge_pause, took))
        return n

    # -- deleting generations ----------------------------------------------------------------------

    @property
    def _background(self) -> aioredis.Redis:
        if self._bg is None:
            self._bg = background_client(self._client)
        return self._bg

    async def _current_generation(self) -> str | None:
        raw = await self._background.get(record_key(self._scope))
        self._recorded = Generation.parse(raw).id if raw is not None else None
        return self._recorded

    async def delete_generation(self, generation: str) -> int:
        """Delete every entry of ``generation``. An old generation (not the one the record names) is
        purged until none is left, whatever happens meanwhile (cancellation aside); the current one
        (``/admin/flush``) is deleted at the same pace but a failure raises StoreError at once, and
        its index is created again afterwards (lookups meanwhile fail open)."""
        try:
            current = await self._current_generation()
        except _RECORD_UNREADABLE:
            current = None  # unknown: treat it as old, a flush must not be lost either
        if generation != current and generation != self.serving():
            return await self.purge_generation(generation)
        self._flushing.add(generation)
        try:
            return await self.purge_generation(generation, persistent=False)
        finally:
            self._flushing.discard(generation)

    async def purge_generation(self, generation: str, *, persistent: bool = True) -> int:
        """Drop the index of ``generation`` (without ``DD``: the hashes stay, unindexed), then delete its
        keys in paced SCAN + UNLINK batches; returns how many entries this call removed.

        ``persistent``: after an error, log it, wait (0.5 s doubling to 30 s) and resume, until none is
        left; otherwise raise StoreError."""
        version = known_version(generation)
        label = f"{version} ({generation})" if version is not None else generation
        removed = 0
        started = time.monotonic()
        backoff = 0.5
        while True:
            try:
                dropped = await self._drop_indexes(generation)
                removed += await self._unlink_keys(generation, version)
                break
            except (RedisSearchError, *_UNREACHABLE) as exc:
                _reraise_cancel(exc)
                if self._closing:
                    raise StoreError(f"deleting generation {label} stopped: the store is closing") from exc
                if not persistent:
                    raise StoreError(
                        f"deleting generation {label} stopped after {removed} entries: {exc}"
                    ) from exc
                log.warning(
                    "deleting generation %s: %s after %d entries; resuming in %.1f s",
                    label,
                    exc,
                    removed,
                    backoff,
                )
                await asyncio.sleep(backoff)
                backoff = min(30.0, backoff * 2)
        self._indexes.pop(generation, None)
        log.info(
            "deleted %d entries of generation %s in %.1f s (indexes dropped: %s)",
            removed,
            label,
            time.monotonic() - started,
            ", ".join(dropped) or "none left",
        )
        return removed

    async def _drop_indexes(self, generation: str) -> list[str]:
        """FT.DROPINDEX (no DD) of every index of ``generation`` in this scope, whatever its dimension."""
        self._ready.discard(generation)
        base = self._base(generation)
        dropped = []
        for name in await _index_names(self._background):
            if not name.startswith(base + "idx:"):
                continue
            try:
                # no DD: dropping the documents too would delete every hash inside this one command
                await self._background.ft(name).dropindex(delete_documents=False)
                dropped.append(name)
            except redis.exceptions.ResponseError as exc:
                if not _missing_index(exc):
                    raise  # dropped by another sidecar meanwhile is fine, anything else is not
        return dropped

    async def _unlink_keys(self, generation: str, version: str | None) -> int:
        """SCAN MATCH the generation's prefix + UNLINK, paced; the entries count into ``removed``."""
        bg = self._background
        match = _glob_escape(self._base(generation)) + "*"
        entry_prefix = self.prefix_of(generation).encode()
        removed = 0
        cursor: int = 0
        while True:
            cursor, keys = await bg.scan(cursor=cursor, match=match, count=self._purge_size)
            if keys:
                entry_keys = [k for k in keys if isinstance(k, bytes) and k.startswith(entry_prefix)]
                others = [k for k in keys if not (isinstance(k, bytes) and k.startswith(entry_prefix))]
                t0 = time.monotonic()
                async with bg.pipeline(transaction=False) as pipe:
                    if entry_keys:
                        pipe.unlink(*entry_keys)
                    if others:
                        pipe.unlink(*others)
                    done = await pipe.execute()
                # count what this call unlinked, not what SCAN listed: another sidecar's janitor purging
                # the same generation, or SCAN returning a key twice, must not count an entry twice
                entries = int(done[0]) if entry_keys else 0
                if entries and version is not None:
                    await bg.hincrby(stats_key(self._scope, version), "removed", entries)
                took = time.monotonic() - t0
                removed += entries
                # Unindexed keys cost microseconds each; should an index still hold them (a lagging
                # sidecar recreated it), the batch shrinks to what the target allows.
                self._purge_size = _resized(self._purge_size, took, self._purge_target, self._purge_batch)
                await asyncio.sleep(max(self._purge_pause, took))
            if cursor == 0:
                return removed

    async def _leftover_generations(self, current: str) -> set[str]:
        """Generations of this scope other than ``current`` that still have an index or keys."""
        base = f"hermes:{self._scope}:g:"
        found: set[str] = set()
        for name in await _index_names(self._background):
            if name.startswith(base):
                found.add(name[len(base) :].split(":", 1)[0])
        cursor: int = 0
        while True:
            cursor, keys = await self._background.scan(
                cursor=cursor, match=_glob_escape(base) + "*", count=1000
            )
            for key in keys:
                text = key.decode() if isinstance(key, bytes) else str(key)
                found.add(text[len(base) :].split(":", 1)[0])
            if cursor == 0:
                break
            await asyncio.sleep(self._purge_pause)
        found.discard(current)
        found.discard(self.serving() or current)
        return found

    async def _janitor_loop(self) -> None:
        """Delete the generations but the current one, now and every janitor_interval."""
        while not self._closing:
            try:
                current = await self._current_generation()
                if current is not None:
                    for gen in sorted(await self._leftover_generations(current)):
                        # Read the record again: a switch since the scan makes ``gen`` the current one.
                        if gen == await self._current_generation():
                            continue
                        await self.purge_generation(gen)
            except (RedisSearchError, *_UNREACHABLE, ValueError) as exc:
                _reraise_cancel(exc)
                log.warning("generation janitor: %s; retrying in %.0f s", exc, self._janitor_interval)
            await asyncio.sleep(self._janitor_interval)

    # -- life --------------------------------------------------------------------------------------

    async def ping(self) -> None:
        try:
            await self._client.ping()
        except _UNREACHABLE as exc:
            self._ready.clear()
            raise StoreError(f"redis unreachable: {exc}") from exc
        if self._follow is None:
            try:
                await self._current_generation()
            except _RECORD_UNREADABLE as exc:
                raise StoreError(f"cannot read the generation record: {exc}") from exc
        generation = self.serving()
        if generation is not None:
            await self._ensure_index(generation)
        if self._janitor is None:
            self._janitor = asyncio.create_task(self._janitor_loop(), name="hermes-generation-janitor")

    async def aclose(self) -> None:
        self._closing = True
        pending = {t for t in (self._janitor, *self._touches) if t is not None}
        # A cancel can reach a task inside the Redis client, which may turn it into a connection error;
        # the loops re-raise it (see _reraise_cancel) and stop when closing, and a task that still runs
        # is cancelled again rather than awaited for ever.
        for t in pending:
            t.cancel()
        while pending:
            _, pending = await asyncio.wait(pending, timeout=1.0)
            for t in pending:
                t.cancel()
        if self._bg is not None:
            await self._bg.aclose()
        await self._client.aclose()


def _reraise_cancel(exc: BaseException) -> None:
    """Raise CancelledError when the running task was cancelled and the Redis client turned that into
    another error (a connection closed mid-command): a retry loop that caught it must not go on."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from exc


def redis_client(url: str, timeout: float = 0.5, *, password: str | None = None) -> aioredis.Redis:
    # Short timeouts: the cache is an optimisation, a slow Redis must not slow requests down.
    extra: dict[str, Any] = {"password": password} if password else {}
    return aioredis.Redis.from_url(
        url,
        **extra,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=5,
        retry_on_timeout=False,
    )


def background_client(client: aioredis.Redis, timeout: float = 10.0) -> aioredis.Redis:
    """A client to the same server as ``client`` (address, password, database) with its own connection
    and a longer timeout: background deletions must not share the hot path's 0.5 s budget or its
    connections."""
    kwargs = dict(client.connection_pool.connection_kwargs)
    kwargs.update(socket_timeout=timeout, socket_connect_timeout=timeout, retry_on_timeout=False)
    pool = client.connection_pool.__class__(
        connection_class=client.connection_pool.connection_class, max_connections=4, **kwargs
    )
    # from_pool: the client owns the pool, so aclose() disconnects it (a pool passed as
    # connection_pool= stays open, and its sockets leaked until garbage collection)
    return aioredis.Redis.from_pool(pool)
