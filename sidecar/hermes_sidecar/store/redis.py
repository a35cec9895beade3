"""The Redis store: one hash per entry with an absolute ``EXPIRE``, indexed by redisvl (RediSearch HNSW,
cosine) with tag fields for partition, generation and user tags.

Deletion of a tag walks the index in batches (FT.SEARCH + UNLINK through redisvl's
``drop_by_filter``), never ``KEYS`` or ``FLUSHDB``. When Redis restarts without its data the index is
gone too; the store recreates it on the first "no such index" answer, so caching resumes by itself.

Deleting a whole generation (after a switch: 100k entries and more) is background work with its own
client (longer timeout, so the hot path's 0.5 s stays untouched) and its own pace: every deleted hash
also leaves the HNSW graph, whose neighbours Redis repairs inside the UNLINK (measured: 2-8 ms per
entry at 384 dimensions and m=32 on a busy 2-core machine, so the 500-entry batches of
``drop_by_filter`` blocked the server for up to seconds). The purge therefore sizes each UNLINK by
the time the last one took, aiming at ``purge_target`` seconds (down to one entry, up to
``purge_batch``), rests at least as long as the command took (Redis spends at most half its time on
it), resumes after any error with backoff, and adds its progress to the field ``removed`` of the old
generation's stats hash. A janitor (started by the first successful ``ping``) also deletes, at
start-up and every ``janitor_interval`` seconds, entries of any generation other than the current one,
so a purge cut short by a restart is finished by the next sidecar. Several sidecars of one policy
doing this at once
only share the work: UNLINK of a key already gone counts nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import numpy as np
import numpy.typing as npt
import redis.asyncio as aioredis
import redis.exceptions
from redis.commands.search.query import Query
from redisvl.exceptions import RedisSearchError
from redisvl.index import AsyncSearchIndex
from redisvl.query import CountQuery, FilterQuery, VectorQuery
from redisvl.query.filter import Tag
from redisvl.schema import IndexSchema

from hermes_sidecar.generations import Generation, known_version, record_key, stats_key
from hermes_sidecar.store import Entry, StoreError

log = logging.getLogger("hermes_sidecar.store.redis")

_FIELDS = ["partition", "generation", "answer", "created", "expires", "text", "context", "tags"]


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
                {"name": "generation", "type": "tag"},
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
        batch_size: int = 500,
        purge_batch: int = 200,
        purge_target: float = 0.004,
        purge_pause: float = 0.005,
        janitor_interval: float = 60.0,
    ) -> None:
        self._client = client
        self._scope = scope
        self._purge_batch = purge_batch
        self._purge_target = purge_target
        self._purge_size = 1  # adapted from the measured UNLINK time, kept across purges
        self._purge_pause = purge_pause
        self._last_unlink = 0.0
        self._janitor_interval = janitor_interval
        self._bg: aioredis.Redis | None = None
        self._janitor: asyncio.Task[None] | None = None
        self.prefix = f"hermes:{scope}:entry:"
        self._index = AsyncSearchIndex(
            _schema(f"hermes:{scope}:idx:{dim}", self.prefix, dim, algorithm),
            redis_client=client,
            owns_client=False,
        )
        self._dim = dim
        self._batch = batch_size
        self._index_ready = False
        self._lock = asyncio.Lock()

    async def _ensure_index(self, force: bool = False) -> None:
        if self._index_ready and not force:
            return
        async with self._lock:
            if self._index_ready and not force:
                return
            try:
                await self._index.create(overwrite=False)
            except (RedisSearchError, redis.exceptions.RedisError) as exc:
                raise StoreError(f"cannot create the vector index: {exc}") from exc
            self._index_ready = True

    async def _guard(self, coro_fn: Any) -> Any:
        """Run a Redis operation; recreate a lost index once; turn every failure into StoreError."""
        for attempt in (0, 1):
            try:
                await self._ensure_index(force=attempt == 1)
                return await coro_fn()
            except (RedisSearchError, redis.exceptions.ResponseError) as exc:
                if attempt == 0 and "no such index" in str(exc).lower():
                    self._index_ready = False
                    continue
                raise StoreError(str(exc)) from exc
            except (redis.exceptions.RedisError, OSError) as exc:
                self._index_ready = False  # after a reconnect the server may be a fresh one
                raise StoreError(str(exc)) from exc
        raise StoreError("unreachable")

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

    async def get_exact(self, key: str, now: float) -> Entry | None:
        try:
            h = await self._client.hgetall(self.prefix + key)
        except (redis.exceptions.RedisError, OSError) as exc:
            self._index_ready = False
            raise StoreError(str(exc)) from exc
        if not h:
            return None
        entry = self._decode(key, h)
        return entry if entry.expires > now else None

    async def search(
        self, partition: str, vector: npt.NDArray[np.float32], k: int, now: float
    ) -> list[tuple[Entry, float]]:
        query = VectorQuery(
            vector=vector.astype(np.float32).tobytes(),
            vector_field_name="vector",
            return_fields=[*_FIELDS, "vector_distance"],
            filter_expression=Tag("partition") == partition,
            num_results=k,
            dtype="float32",
        )

        async def op() -> list[dict[str, Any]]:
            result: list[dict[str, Any]] = await self._index.query(query)
            return result

        rows = await self._guard(op)
        found: list[tuple[Entry, float]] = []
        for row in rows:
            key = str(row["id"])[len(self.prefix) :]
            entry = self._decode(key, {k: v for k, v in row.items() if k != "vector"})
            if entry.expires <= now:
                continue
            # redisvl reports cosine distance (1 - cosine similarity)
            found.append((entry, 1.0 - float(row["vector_distance"])))
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
        ttl_ms = max(1, int((entry.expires - entry.created) * 1000))

        async def op() -> None:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.delete(self.prefix + entry.key)
                pipe.hset(self.prefix + entry.key, mapping=mapping)  # type: ignore[arg-type]
                pipe.pexpire(self.prefix + entry.key, ttl_ms)
                await pipe.execute()

        await self._guard(op)

    async def _drop(self, expr: Any) -> int:
        async def op() -> int:
            result = await self._index.drop_by_filter(expr, batch_size=self._batch)
            return int(result.processed)

        deleted: int = await self._guard(op)
        return deleted

    @property
    def _background(self) -> aioredis.Redis:
        if self._bg is None:
            self._bg = background_client(self._client)
        return self._bg

    async def _current_generation(self) -> str | None:
        raw = await self._background.get(record_key(self._scope))
        return Generation.parse(raw).id if raw is not None else None

    async def delete_generation(self, generation: str) -> int:
        """Delete every entry of ``generation``. An old generation (not the one the record names) is
        purged until none is left, whatever happens meanwhile (cancellation aside); the current one
        (``/admin/flush``) is deleted at the same pace but a failure raises StoreError at once."""
        try:
            current = await self._current_generation()
        except (redis.exceptions.RedisError, OSError, ValueError):
            current = None  # unknown: treat it as old, a flush must not be lost either
        return await self.purge_generation(generation, persistent=generation != current)

    async def purge_generation(self, generation: str, *, persistent: bool = True) -> int:
        """Delete the entries of ``generation`` in small paced batches; returns how many this call removed.

        ``persistent``: after an error, log it, wait (0.5 s doubling to 30 s) and resume, until none is
        left; otherwise raise StoreError."""
        query = str(Tag("generation") == generation)
        version = known_version(generation)
        label = f"{version} ({generation})" if version is not None else generation
        removed = 0
        started = time.monotonic()
        backoff = 0.5
        while True:
            try:
                n = await self._purge_batch_once(query, version)
            except (RedisSearchError, redis.exceptions.RedisError, OSError) as exc:
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
                continue
            if n is None:
                break
            removed += n
            backoff = 0.5
            await asyncio.sleep(max(self._purge_pause, self._last_unlink))
        log.info("deleted %d entries of generation %s in %.1f s", removed, label, time.monotonic() - started)
        return removed

    async def _purge_batch_once(self, query: str, version: str | None) -> int | None:
        """One FT.SEARCH + UNLINK (+ HINCRBY removed); None when nothing matches any more."""
        bg = self._background
        try:
            result = await bg.ft(self._index.name).search(
                Query(query).no_content().paging(0, self._purge_size).dialect(2)
            )
        except redis.exceptions.ResponseError as exc:
            if "no such index" not in str(exc).lower():
                raise
            # Redis came back empty (or the index was dropped): recreate it; creating it indexes the
            # hashes still there, so the next round finds them.
            self._index_ready = False
            try:
                await self._ensure_index()
            except StoreError as create_exc:
                raise redis.exceptions.ConnectionError(str(create_exc)) from create_exc
            return 0
        keys = [doc.id for doc in result.docs]
        if not keys:
            return None
        t0 = time.monotonic()
        n = int(await bg.unlink(*keys))
        took = self._last_unlink = time.monotonic() - t0
        # Round trips include the client's own latency, so this errs on the small side.
        if took > self._purge_target:
            self._purge_size = max(1, self._purge_size // 2)
        elif took < self._purge_target / 2 and len(keys) == self._purge_size:
            self._purge_size = min(self._purge_batch, self._purge_size * 2)
        if n and version is not None:
            await bg.hincrby(stats_key(self._scope, version), "removed", n)
        return n

    async def _janitor_loop(self) -> None:
        """Delete entries of every generation but the current one, now and every janitor_interval."""
        while True:
            try:
                current = await self._current_generation()
                if current is not None:
                    values = await self._background.ft(self._index.name).tagvals("generation")
                    for raw in values:
                        gen = raw.decode() if isinstance(raw, bytes) else str(raw)
                        if gen != current:
                            await self.purge_generation(gen)
            except (RedisSearchError, redis.exceptions.RedisError, OSError, ValueError) as exc:
                log.warning("generation janitor: %s; retrying in %.0f s", exc, self._janitor_interval)
            await asyncio.sleep(self._janitor_interval)

    async def delete_tag(self, generation: str, tag: str) -> int:
        return await self._drop((Tag("generation") == generation) & (Tag("tags") == tag))

    async def trim(self, generation: str, max_entries: int) -> int:
        """Delete the entries of ``generation`` closest to expiry beyond ``max_entries`` (TTLs are equal
        per config, so these are the oldest). Redis ``maxmemory`` with ``volatile-lru`` is the hard
        bound; this keeps one generation from filling it."""
        excess = await self.count(generation) - max_entries
        deleted = 0
        while excess > 0:
            query = FilterQuery(
                Tag("generation") == generation,
                return_fields=["id"],
                num_results=min(excess, self._batch),
                sort_by="expires",
            )

            async def op(q: FilterQuery = query) -> int:
                rows: list[dict[str, Any]] = await self._index.query(q)
                if not rows:
                    return 0
                return int(await self._client.unlink(*[r["id"] for r in rows]))

            n: int = await self._guard(op)
            if n == 0:
                break
            deleted += n
            excess -= n
        return deleted

    async def count(self, generation: str) -> int:
        async def op() -> int:
            return int(await self._index.query(CountQuery(Tag("generation") == generation)))

        counted: int = await self._guard(op)
        return counted

    async def ping(self) -> None:
        try:
            await self._client.ping()
        except (redis.exceptions.RedisError, OSError) as exc:
            self._index_ready = False
            raise StoreError(f"redis unreachable: {exc}") from exc
        await self._ensure_index()
        if self._janitor is None:
            self._janitor = asyncio.create_task(self._janitor_loop(), name="hermes-generation-janitor")

    async def aclose(self) -> None:
        if self._janitor is not None:
            self._janitor.cancel()
            await asyncio.gather(self._janitor, return_exceptions=True)
        if self._bg is not None:
            await self._bg.aclose()
        await self._client.aclose()


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
