"""The Redis store: one hash per entry with an absolute ``EXPIRE``, indexed by redisvl (RediSearch HNSW,
cosine) with tag fields for partition, generation and user tags.

Deletion of a generation or a tag walks the index in batches (FT.SEARCH + UNLINK through redisvl's
``drop_by_filter``), never ``KEYS`` or ``FLUSHDB``. When Redis restarts without its data the index is
gone too; the store recreates it on the first "no such index" answer, so caching resumes by itself.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import numpy as np
import numpy.typing as npt
import redis.asyncio as aioredis
import redis.exceptions
from redisvl.exceptions import RedisSearchError
from redisvl.index import AsyncSearchIndex
from redisvl.query import CountQuery, FilterQuery, VectorQuery
from redisvl.query.filter import Tag
from redisvl.schema import IndexSchema

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
        self, client: aioredis.Redis, scope: str, dim: int, *, algorithm: str = "hnsw", batch_size: int = 500
    ) -> None:
        self._client = client
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

    async def delete_generation(self, generation: str) -> int:
        return await self._drop(Tag("generation") == generation)

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

    async def aclose(self) -> None:
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
