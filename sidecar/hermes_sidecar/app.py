"""The sidecar's ASGI app (Starlette) and server (uvicorn).

Routes: a POST route per dialect route (``/v1/chat/completions``, ``/v1/completions`` for an
OpenAI-compatible upstream; ``/v1/messages`` for Anthropic), ``/healthz``, ``/readyz``, ``/metrics``,
``/upstream/metrics`` (vLLM's own metrics, which Prometheus cannot reach on the pod's loopback),
``/admin/{stats,flush,invalidate}`` behind a bearer token, and everything else passed through.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from hermes_sidecar import __version__
from hermes_sidecar.cache import CacheService
from hermes_sidecar.config import SidecarConfig
from hermes_sidecar.dialect import Dialect
from hermes_sidecar.embed import Embedder, EmbedderError, build_embedder
from hermes_sidecar.generations import LOCAL, Generation, GenerationFollower, StatsWriter
from hermes_sidecar.metrics import RESULTS, Metrics
from hermes_sidecar.openai_compat import OpenAIDialect
from hermes_sidecar.proxy import Pipeline
from hermes_sidecar.store import Store, StoreError
from hermes_sidecar.store.memory import MemoryStore
from hermes_sidecar.verify import build_verifier

log = logging.getLogger("hermes_sidecar.app")


def build_dialects(cfg: SidecarConfig, metrics: Metrics) -> list[Dialect]:
    if cfg.upstream.kind == "anthropic":
        from hermes_sidecar.anthropic import build_dialect

        return [build_dialect(cfg, metrics.registry, tenant_label=metrics.tenant_label)]
    return [OpenAIDialect(store_truncated=cfg.cache.storeTruncated)]


@dataclass
class Sidecar:
    """Everything a running sidecar holds; built in the app's lifespan, reachable as ``app.state.sidecar``."""

    cfg: SidecarConfig
    metrics: Metrics
    cache: CacheService
    pipeline: Pipeline
    client: httpx.AsyncClient
    stats: StatsWriter
    embedder: Embedder | None
    redis: Any = None
    dialects: list[Dialect] = field(default_factory=list)
    follower: GenerationFollower | None = None
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    async def on_switch(self, old: Generation, new: Generation) -> None:
        """A new generation: serve it at once (keys include it), then clean up and warm up behind."""
        self.cache.generation = new
        self.metrics.generation_switches.inc()
        self.metrics.serve_generation(new.version, new.uid)
        self.metrics.entries.set(0)
        if self.cfg.cache.resetPrefixCache and self.cfg.upstream.kind == "openai":
            await self._reset_prefix_cache()
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

    async def _reset_prefix_cache(self) -> None:
        # vLLM answers {"success": false} while blocks are in use: retry a few times.
        for _ in range(5):
            try:
                r = await self.client.post(self.cfg.upstream.url.rstrip("/") + "/reset_prefix_cache")
                if r.status_code == 200 and '"success":false' not in r.text.replace(" ", ""):
                    self.metrics.prefix_resets.labels("ok").inc()
                    return
                log.warning("reset_prefix_cache answered %s: %s", r.status_code, r.text[:200])
            except httpx.HTTPError as exc:
                log.warning("reset_prefix_cache failed: %s", exc)
            await asyncio.sleep(0.5)
        self.metrics.prefix_resets.labels("failed").inc()

    async def _warm_up(self) -> None:
        dialects = {r: d for d in self.dialects for r in d.routes}
        for item in self.cfg.cache.warmup:
            dialect = dialects.get(item.path)
            if dialect is None:
                continue
            headers = {self.cfg.tenantHeader.lower(): item.tenant} if item.tenant else {}
            resp = await self.pipeline.run(dialect, item.path, json.dumps(item.body).encode(), headers)
            if hasattr(resp, "body_iterator"):
                async for _ in resp.body_iterator:
                    pass
        await self.cache.drain()

    async def refresh_entries(self) -> None:
        """Keep hermes_cache_entries and the stats hash's ``entries`` field current."""
        while True:
            gen = self.cache.generation
            with contextlib.suppress(StoreError):
                trim = getattr(self.cache.store, "trim", None)
                if trim is not None:
                    trimmed = await trim(gen.id, self.cfg.cache.maxEntries)
                    self.metrics.deleted.labels("size-bound").inc(trimmed)
                n = await self.cache.store.count(gen.id)
                self.metrics.entries.set(n)
                self.metrics.generation_entries.labels(gen.id).set(n)
                self.stats.set_entries(gen.version, n)
            await asyncio.sleep(2.0)


def _read_token(path: str | None) -> str | None:
    if not path:
        return None
    try:
        token = Path(path).read_text().strip()
    except OSError:
        return None
    return token or None


def _admin_ok(request: Request, cfg: SidecarConfig) -> bool:
    # Read on every call: a rotated Secret volume takes effect without a restart. Admin calls are rare.
    token = _read_token(cfg.admin.tokenFile)
    got = request.headers.get("authorization", "")
    return token is not None and got.startswith("Bearer ") and hmac.compare_digest(got[7:].strip(), token)


# Prometheus scrapes time out after 10 s by default; answer (502) before the scraper gives up.
_SCRAPE_TIMEOUT = 10.0


def _scrape_timeout(headers: Mapping[str, str]) -> float:
    """Seconds to wait for vLLM's /metrics: a little less than the scraper's own timeout, if it says."""
    try:
        theirs = float(headers.get("x-prometheus-scrape-timeout-seconds", ""))
    except ValueError:
        return _SCRAPE_TIMEOUT
    return max(0.5, min(_SCRAPE_TIMEOUT, theirs - 0.5))


def _unauthorized() -> Response:
    return JSONResponse(
        {"error": "admin routes need 'Authorization: Bearer <token>' with the token from admin.tokenFile"},
        status_code=401,
        headers={"www-authenticate": "Bearer"},
    )


def _build_store(cfg: SidecarConfig, redis_client: Any, dim: int) -> Store:
    if cfg.cache.backend == "redis":
        from hermes_sidecar.store.redis import RedisStore

        return RedisStore(redis_client, cfg.cache.scope, dim, algorithm=cfg.cache.indexAlgorithm)
    return MemoryStore(cfg.cache.maxEntries)


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


def create_app(cfg: SidecarConfig, *, embedder: Embedder | None = None) -> Starlette:
    """The ASGI app. ``embedder`` overrides the configured one (the evaluator and tests share one)."""
    metrics = Metrics(max_tenants=cfg.metrics.maxTenants, tenant_header=cfg.tenantHeader)
    dialects = build_dialects(cfg, metrics)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        redis_client = None
        if cfg.cache.redisUrl:
            from hermes_sidecar.store.redis import redis_client as make_client

            redis_client = make_client(cfg.cache.redisUrl, password=_redis_password(cfg))
        emb = embedder
        if emb is None:
            try:
                emb = build_embedder(cfg.embedding)
            except EmbedderError as exc:
                log.error("semantic lookup off: %s", exc)
        dim = cfg.embedding.dimensions or (emb.dim if emb is not None else 0)
        if emb is not None and not dim:
            # An endpoint's model decides the dimension: ask it once, the vector index needs it.
            try:
                dim = int((await emb.embed(["hermes dimension probe"])).shape[1])
            except EmbedderError as exc:
                log.error("embedding endpoint unreachable at start and embedding.dimensions unset: %s", exc)
        store = _build_store(cfg, redis_client, dim or 384)
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=100)
        transport = None
        if cfg.upstream.kind == "anthropic":
            # API key from upstream.apiKeyFile, and usage accounting of every billed call
            from hermes_sidecar.anthropic import upstream_transport

            transport = upstream_transport(cfg, dialects[0], limits=limits)
        client = httpx.AsyncClient(
            timeout=httpx.Timeout(cfg.upstream.timeoutSeconds, connect=5.0),
            limits=limits,
            transport=transport,
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
            verifier=build_verifier(cfg.cache.guard.verifier),
        )
        # The Redis store keeps one index per generation: lookups go to the one this sidecar serves.
        follow = getattr(store, "follow", None)
        if follow is not None:
            follow(lambda: cache.generation.id)
        pipeline = Pipeline(
            cache, client, cfg.upstream.url, metrics, stats, salt_upstream=cfg.upstream.kind == "openai"
        )
        sidecar = Sidecar(cfg, metrics, cache, pipeline, client, stats, emb, redis_client, dialects)
        follower = sidecar.follower = GenerationFollower(redis_client, cfg.cache.scope, sidecar.on_switch)
        await follower.start()
        cache.generation = follower.current
        metrics.serve_generation(cache.generation.version, cache.generation.uid)
        try:
            await store.ping()
        except StoreError as exc:
            log.warning("cache store not reachable at start (requests pass through until it is): %s", exc)
            cache._mark("store", exc)
        await stats.start()
        sidecar.tasks.add(asyncio.create_task(sidecar.refresh_entries()))
        app.state.sidecar = sidecar
        try:
            yield
        finally:
            for t in sidecar.tasks:
                t.cancel()
            await asyncio.gather(*sidecar.tasks, return_exceptions=True)
            await follower.stop()
            await cache.aclose()
            await stats.stop()
            # the store owns background work (the Redis store's janitor and its own connection pool)
            await store.aclose()
            await client.aclose()
            if emb is not None:
                await emb.aclose()
            if redis_client is not None:
                with contextlib.suppress(Exception):
                    await redis_client.aclose()

    def sc(request: Request) -> Sidecar:
        s: Sidecar = request.app.state.sidecar
        return s

    def cacheable(dialect: Dialect, route: str) -> Any:
        async def endpoint(request: Request) -> Response:
            if cfg.upstream.kind == "anthropic":
                from hermes_sidecar.anthropic import bind_tenant

                # labels the prompt-cache metrics of hits
                bind_tenant(request.headers, cfg.tenantHeader, cfg.tenantSource)
            return await sc(request).pipeline.handle(dialect, route, request)

        return endpoint

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "version": __version__})

    async def readyz(request: Request) -> Response:
        s = sc(request)
        body: dict[str, Any] = {"ready": True, "upstream": "ok", "cache": "ok"}
        if cfg.upstream.kind == "openai":
            try:
                r = await s.client.get(cfg.upstream.url.rstrip("/") + "/health", timeout=2.0)
                if r.status_code != 200:
                    body.update(ready=False, upstream=f"/health answered {r.status_code}")
            except httpx.HTTPError as exc:
                body.update(ready=False, upstream=f"unreachable: {exc}")
        degraded = s.cache.degraded()
        if s.embedder is None:
            degraded["embedder"] = "not configured or failed to load: exact matching only"
        if degraded:
            # Fail open: the cache being down degrades, it does not stop traffic.
            body["cache"] = "degraded"
            body["degraded"] = degraded
        return JSONResponse(body, status_code=200 if body["ready"] else 503)

    async def metrics_route(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def upstream_metrics(request: Request) -> Response:
        # Prometheus scrapes vLLM through here (docs/observability.md). Body, Content-Type and
        # Content-Encoding go back unchanged; Accept goes up, so the text or OpenMetrics format is
        # vLLM's choice as if it were scraped directly. Any failure is a 502, so up{source="vllm"}
        # is 0 exactly when vLLM does not answer.
        if cfg.upstream.kind != "openai":
            return PlainTextResponse(
                f"no upstream metrics: upstream.kind is {cfg.upstream.kind!r}; only an openai "
                "upstream (vLLM) has /metrics\n",
                status_code=404,
            )
        url = cfg.upstream.url.rstrip("/") + "/metrics"
        headers = {
            "accept": request.headers.get("accept", "*/*"),
            # identity unless the scraper asked for compression: httpx would otherwise ask for gzip
            "accept-encoding": request.headers.get("accept-encoding", "identity"),
        }
        client = sc(request).client
        try:
            upstream_req = client.build_request(
                "GET", url, headers=headers, timeout=_scrape_timeout(request.headers)
            )
            resp = await client.send(upstream_req, stream=True)
            try:
                body = b"".join([chunk async for chunk in resp.aiter_raw()])
            finally:
                await resp.aclose()
        except httpx.HTTPError as exc:
            return PlainTextResponse(
                f"upstream metrics unavailable: GET {url} failed: {type(exc).__name__}: {exc}\n",
                status_code=502,
            )
        if resp.status_code != 200:
            return PlainTextResponse(
                f"upstream metrics unavailable: GET {url} answered {resp.status_code}\n", status_code=502
            )
        out = {k: v for k in ("content-type", "content-encoding") if (v := resp.headers.get(k))}
        return Response(body, headers=out)

    async def admin_stats(request: Request) -> Response:
        if not _admin_ok(request, cfg):
            return _unauthorized()
        s = sc(request)
        gen = s.cache.generation
        entries: int | None
        try:
            entries = await s.cache.store.count(gen.id)
        except StoreError:
            entries = None
        counts = dict.fromkeys(RESULTS, 0)
        for fam in metrics.requests.collect():
            for m in fam.samples:
                if m.name.endswith("_total"):
                    counts[m.labels["result"]] += int(m.value)  # summed over tenants
        return JSONResponse(
            {
                "generation": gen.as_dict(),
                "generationFollowing": s.follower is not None and s.follower.connected,
                "backend": s.cache.store.name,
                "embedder": s.embedder.name if s.embedder is not None else None,
                "entries": entries,
                "requests": counts,
                "degraded": s.cache.degraded(),
                "time": time.time(),
            }
        )

    async def admin_flush(request: Request) -> Response:
        if not _admin_ok(request, cfg):
            return _unauthorized()
        s = sc(request)
        gen = s.cache.generation
        try:
            deleted = await s.cache.store.delete_generation(gen.id)
        except StoreError as exc:
            return JSONResponse({"error": f"cache store unavailable: {exc}"}, status_code=503)
        metrics.deleted.labels("flush").inc(deleted)
        return JSONResponse({"generation": gen.as_dict(), "deleted": deleted})

    async def admin_invalidate(request: Request) -> Response:
        if not _admin_ok(request, cfg):
            return _unauthorized()
        try:
            payload = await request.json()
        except ValueError:
            payload = None
        tags = payload.get("tags", [payload.get("tag")]) if isinstance(payload, dict) else None
        if not isinstance(tags, list) or not tags or not all(isinstance(t, str) and t for t in tags):
            return JSONResponse(
                {"error": f'body must be {{"tag": "..."}} or {{"tags": ["..."]}}, got {payload!r}'},
                status_code=400,
            )
        s = sc(request)
        gen = s.cache.generation
        deleted = 0
        try:
            for tag in tags:
                deleted += await s.cache.store.delete_tag(gen.id, tag)
        except StoreError as exc:
            return JSONResponse({"error": f"cache store unavailable: {exc}"}, status_code=503)
        metrics.deleted.labels("tag").inc(deleted)
        return JSONResponse({"tags": tags, "deleted": deleted})

    async def passthrough(request: Request) -> Response:
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        return await sc(request).pipeline.passthrough(
            request.method, request.url.path, request.url.query, headers, body or None
        )

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_route, methods=["GET"]),
        Route("/upstream/metrics", upstream_metrics, methods=["GET"]),
        Route("/admin/stats", admin_stats, methods=["GET"]),
        Route("/admin/flush", admin_flush, methods=["POST"]),
        Route("/admin/invalidate", admin_invalidate, methods=["POST"]),
    ]
    routes += [Route(r, cacheable(d, r), methods=["POST"]) for d in dialects for r in d.routes]

    async def admin_other(request: Request) -> Response:
        if not _admin_ok(request, cfg):
            return _unauthorized()
        return JSONResponse({"error": f"no admin route {request.url.path}"}, status_code=404)

    routes.append(Route("/admin/{rest:path}", admin_other, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]))
    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
    routes.append(Route("/{path:path}", passthrough, methods=methods))
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.metrics = metrics
    return app


def serve(cfg: SidecarConfig) -> None:
    import uvicorn

    host, _, port = cfg.listen.rpartition(":")
    uvicorn.run(
        create_app(cfg),
        host=host.strip("[]"),
        port=int(port),
        log_level="info",
        access_log=False,
        lifespan="on",
    )
