"""A running sidecar: what it holds, how it starts and stops, and what it does in the background.

:meth:`Sidecar.start` builds everything in the order each part needs the one before (Redis client,
embedder and its dimension, store, upstream client, cache, pipeline, generation follower) and
:meth:`Sidecar.stop` closes it in reverse. In the background: the generation switch
(:meth:`Sidecar.on_switch`: serve the new generation at once, reset the upstream's prefix cache, warm
up, then delete the old entries) and the entry count with the size bound (:meth:`refresh_entries`).
The routes that serve requests with it are in ``app.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from hermes_sidecar.cache import CacheService
from hermes_sidecar.config import SidecarConfig
from hermes_sidecar.dialects.base import Dialect
from hermes_sidecar.embed import Embedder, EmbedderError, build_embedder
from hermes_sidecar.generations import LOCAL, Generation, GenerationFollower, StatsWriter
from hermes_sidecar.metrics import Metrics
from hermes_sidecar.proxy import Pipeline
from hermes_sidecar.store import Store, StoreError
from hermes_sidecar.store.memory import MemoryStore
from hermes_sidecar.tenants import Tenancy
from hermes_sidecar.verify import build_verifier

__all__ = ["Sidecar"]

log = logging.getLogger("hermes_sidecar.app")


def _redis_password(cfg: SidecarConfig) -> str | None:
    """The password from cache.redisPasswordFile; unreadable means none (Redis then refuses: fail open)."""
    path = cfg.cache.redisPasswordFile
    if not path:
        return None
    try:
        return Path(path).read_text().strip() or None
    except OSError as exc:
        log.error("cache.redisPasswordFile %s unreadable (%s): Redis without a password", path, exc.strerror)
        return None


def _build_store(cfg: SidecarConfig, redis_client: Any, dim: int) -> Store:
    if cfg.cache.backend == "redis":
        from hermes_sidecar.store.redis import RedisStore

        return RedisStore(redis_client, cfg.cache.scope, dim, algorithm=cfg.cache.indexAlgorithm)
    return MemoryStore(cfg.cache.maxEntries)


async def _embedder_and_dim(cfg: SidecarConfig, embedder: Embedder | None) -> tuple[Embedder | None, int]:
    """The embedder (``embedder`` if given, else the configured one; None when it cannot load) and the
    vector dimension the index is built for."""
    if embedder is None:
        try:
            embedder = build_embedder(cfg.embedding)
        except EmbedderError as exc:
            log.error("semantic lookup off: %s", exc)
    dim = cfg.embedding.dimensions or (embedder.dim if embedder is not None else 0)
    if embedder is not None and not dim:
        # An endpoint's model decides the dimension: ask it once, the vector index needs it.
        try:
            dim = int((await embedder.embed(["hermes dimension probe"])).shape[1])
        except EmbedderError as exc:
            log.error("embedding endpoint unreachable at start and embedding.dimensions unset: %s", exc)
    return embedder, dim or 384


@dataclass
class Sidecar:
    """Everything a running sidecar holds; built in the app's lifespan, reachable as ``app.state.sidecar``."""

    cfg: SidecarConfig
    metrics: Metrics
    dialect: Dialect
    cache: CacheService
    pipeline: Pipeline
    client: httpx.AsyncClient
    stats: StatsWriter
    embedder: Embedder | None
    redis: Any = None
    follower: GenerationFollower | None = None
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    @classmethod
    async def start(
        cls, cfg: SidecarConfig, metrics: Metrics, dialect: Dialect, embedder: Embedder | None = None
    ) -> Sidecar:
        redis_client = None
        if cfg.cache.redisUrl:
            from hermes_sidecar.store.redis import redis_client as make_client

            redis_client = make_client(cfg.cache.redisUrl, password=_redis_password(cfg))
        emb, dim = await _embedder_and_dim(cfg, embedder)
        store = _build_store(cfg, redis_client, dim)
        limits = httpx.Limits(
            max_connections=1000,
            max_keepalive_connections=100,
            keepalive_expiry=cfg.upstream.keepAliveSeconds,
        )
        client = httpx.AsyncClient(
            timeout=httpx.Timeout(cfg.upstream.timeoutSeconds, connect=5.0),
            limits=limits,
            transport=dialect.transport(cfg, limits=limits),
        )
        stats = StatsWriter(redis_client, cfg.cache.scope)
        cache = CacheService(
            cfg.cache,
            store,
            emb,
            metrics,
            generation=LOCAL,
            tenant_header=cfg.tenantHeader,
            tenant_source=cfg.tenantSource,
            verifier=build_verifier(cfg.cache.guard.verifier, cfg.upstream),
            tenancy=Tenancy.from_config(cfg),
        )
        # The Redis store keeps one index per generation: lookups go to the one this sidecar serves.
        store.follow(lambda: cache.generation.id)
        pipeline = Pipeline(cache, client, cfg.upstream.url, metrics, stats, cfg.limits)
        sidecar = cls(cfg, metrics, dialect, cache, pipeline, client, stats, emb, redis_client)
        follower = sidecar.follower = GenerationFollower(redis_client, cfg.cache.scope, sidecar.on_switch)
        await follower.start()
        cache.generation = follower.current
        metrics.serve_generation(cache.generation.version, cache.generation.uid)
        try:
            await store.ping()
        except StoreError as exc:
            log.warning("cache store not reachable at start (requests pass through until it is): %s", exc)
            cache.breakers.failed("store", exc)
        await stats.start()
        sidecar.tasks.add(asyncio.create_task(sidecar.refresh_entries()))
        return sidecar

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.follower is not None:
            await self.follower.stop()
        await self.cache.aclose()
        await self.stats.stop()
        # the store owns background work (the Redis store's janitor and its own connection pool)
        await self.cache.store.aclose()
        await self.client.aclose()
        if self.embedder is not None:
            await self.embedder.aclose()
        if self.redis is not None:
            with contextlib.suppress(Exception):
                await self.redis.aclose()

    async def on_switch(self, old: Generation, new: Generation) -> None:
        """A new generation: serve it at once (keys include it), then clean up and warm up behind."""
        self.cache.generation = new
        self.metrics.generation_switches.inc()
        self.metrics.serve_generation(new.version, new.uid)
        self.metrics.entries.set(0)
        if self.cfg.cache.resetPrefixCache and self.dialect.prefix_reset_path is not None:
            await self._reset_prefix_cache(self.dialect.prefix_reset_path)
        await self._warm_up()
        try:
            deleted = await self.cache.store.delete_generation(old.id)
            self.metrics.deleted.labels("generation").inc(deleted)
            self.metrics.generation_entries.remove(old.id)
            log.info("deleted %d entries of generation %s", deleted, old.version)
        except StoreError as exc:
            log.warning("could not delete entries of generation %s yet: %s", old.version, exc)
        except KeyError:
            pass

    async def _reset_prefix_cache(self, path: str) -> None:
        # vLLM answers {"success": false} while blocks are in use: retry a few times.
        for _ in range(5):
            try:
                r = await self.client.post(self.cfg.upstream.url.rstrip("/") + path)
                if r.status_code == 200 and '"success":false' not in r.text.replace(" ", ""):
                    self.metrics.prefix_resets.labels("ok").inc()
                    return
                log.warning("reset_prefix_cache answered %s: %s", r.status_code, r.text[:200])
            except httpx.HTTPError as exc:
                log.warning("reset_prefix_cache failed: %s", exc)
            await asyncio.sleep(0.5)
        self.metrics.prefix_resets.labels("failed").inc()

    async def _warm_up(self) -> None:
        for item in self.cfg.cache.warmup:
            if item.path not in self.dialect.routes:
                continue
            headers = {self.cfg.tenantHeader.lower(): item.tenant} if item.tenant else {}
            resp = await self.pipeline.run(self.dialect, item.path, json.dumps(item.body).encode(), headers)
            if hasattr(resp, "body_iterator"):
                async for _ in resp.body_iterator:
                    pass
        await self.cache.drain()

    async def refresh_entries(self) -> None:
        """Keep hermes_cache_entries and the stats hash's ``entries`` field current."""
        while True:
            gen = self.cache.generation
            with contextlib.suppress(StoreError):
                trimmed = await self.cache.store.trim(gen.id, self.cfg.cache.maxEntries)
                if trimmed is not None:
                    self.metrics.deleted.labels("size-bound").inc(trimmed)
                n = await self.cache.store.count(gen.id)
                self.metrics.entries.set(n)
                self.metrics.generation_entries.labels(gen.id).set(n)
                self.stats.set_entries(gen.version, n)
            await asyncio.sleep(2.0)
