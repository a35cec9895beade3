"""The sidecar's ASGI app (Starlette) and server (uvicorn): the routes, and nothing else.

Routes: a POST route per dialect route (``/v1/chat/completions``, ``/v1/completions`` for an
OpenAI-compatible upstream; ``/v1/messages`` for Anthropic), ``/healthz``, ``/readyz``, ``/metrics``,
``/upstream/metrics`` (vLLM's own metrics, which Prometheus cannot reach on the pod's loopback),
``/admin/{stats,flush,invalidate}`` behind a bearer token, and everything else passed through.
What the routes serve with (cache, pipeline, upstream client) is a :class:`~hermes_sidecar.runtime.
Sidecar`, started and stopped by the app's lifespan.
"""

from __future__ import annotations

import contextlib
import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from hermes_sidecar import __version__
from hermes_sidecar.config import SidecarConfig
from hermes_sidecar.dialects.base import Dialect
from hermes_sidecar.dialects.registry import for_upstream
from hermes_sidecar.embed import Embedder
from hermes_sidecar.errors import BadRequest, describe
from hermes_sidecar.metrics import RESULTS, Metrics
from hermes_sidecar.proxy import decode_json, read_body
from hermes_sidecar.runtime import Sidecar
from hermes_sidecar.store import StoreError

__all__ = ["create_app", "serve"]

Endpoint = Callable[[Request], Awaitable[Response]]
_ANY = ["GET", "POST", "PUT", "DELETE", "PATCH"]


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
    if token is None or not got.startswith("Bearer "):
        return False
    # As bytes: compare_digest refuses str with non-ASCII characters, and a header may hold any octet
    # (Starlette decoded it as latin-1, so this gives back what was sent).
    return hmac.compare_digest(got[7:].strip().encode("latin-1"), token.encode())


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


def _sidecar(request: Request) -> Sidecar:
    s: Sidecar = request.app.state.sidecar
    return s


def _admin(endpoint: Endpoint, cfg: SidecarConfig) -> Endpoint:
    """``endpoint`` behind the admin bearer token."""

    async def guarded(request: Request) -> Response:
        if not _admin_ok(request, cfg):
            return _unauthorized()
        return await endpoint(request)

    return guarded


class Routes:
    """The HTTP side of a sidecar: one method per route, the running :class:`Sidecar` from the app."""

    def __init__(self, cfg: SidecarConfig, metrics: Metrics, dialect: Dialect) -> None:
        self.cfg = cfg
        self.metrics = metrics
        self.dialect = dialect

    def table(self) -> list[Route]:
        admin = {"/admin/stats": (self.admin_stats, "GET"), "/admin/flush": (self.admin_flush, "POST"),
                 "/admin/invalidate": (self.admin_invalidate, "POST")}  # fmt: skip
        return [
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/readyz", self.readyz, methods=["GET"]),
            Route("/metrics", self.metrics_route, methods=["GET"]),
            Route("/upstream/metrics", self.upstream_metrics, methods=["GET"]),
            *(Route(path, _admin(fn, self.cfg), methods=[method]) for path, (fn, method) in admin.items()),
            *(Route(r, self.cacheable(r), methods=["POST"]) for r in self.dialect.routes),
            Route("/admin/{rest:path}", _admin(self.admin_other, self.cfg), methods=_ANY),
            Route("/{path:path}", self.passthrough, methods=[*_ANY, "HEAD", "OPTIONS"]),
        ]

    def cacheable(self, route: str) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            return await _sidecar(request).pipeline.handle(self.dialect, route, request)

        return endpoint

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "version": __version__})

    async def readyz(self, request: Request) -> Response:
        s = _sidecar(request)
        body: dict[str, Any] = {"ready": True, "upstream": "ok", "cache": "ok"}
        if (path := self.dialect.health_path) is not None:
            try:
                r = await s.client.get(self.cfg.upstream.url.rstrip("/") + path, timeout=2.0)
                if r.status_code != 200:
                    body.update(ready=False, upstream=f"{path} answered {r.status_code}")
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

    async def metrics_route(self, request: Request) -> Response:
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def upstream_metrics(self, request: Request) -> Response:
        # Prometheus scrapes vLLM through here (docs/observability.md). Body, Content-Type and
        # Content-Encoding go back unchanged; Accept goes up, so the text or OpenMetrics format is
        # vLLM's choice as if it were scraped directly. Any failure is a 502, so up{source="vllm"}
        # is 0 exactly when vLLM does not answer.
        if self.dialect.metrics_path is None:
            return PlainTextResponse(
                f"no upstream metrics: upstream.kind is {self.cfg.upstream.kind!r}; only an openai "
                "upstream (vLLM) has /metrics\n",
                status_code=404,
            )
        url = self.cfg.upstream.url.rstrip("/") + self.dialect.metrics_path
        headers = {
            "accept": request.headers.get("accept", "*/*"),
            # identity unless the scraper asked for compression: httpx would otherwise ask for gzip
            "accept-encoding": request.headers.get("accept-encoding", "identity"),
        }
        client = _sidecar(request).client
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
                f"upstream metrics unavailable: GET {url} failed: {describe(exc)}\n",
                status_code=502,
            )
        if resp.status_code != 200:
            return PlainTextResponse(
                f"upstream metrics unavailable: GET {url} answered {resp.status_code}\n", status_code=502
            )
        out = {k: v for k in ("content-type", "content-encoding") if (v := resp.headers.get(k))}
        return Response(body, headers=out)

    async def admin_stats(self, request: Request) -> Response:
        s = _sidecar(request)
        gen = s.cache.generation
        entries: int | None
        try:
            entries = await s.cache.store.count(gen.id)
        except StoreError:
            entries = None
        counts = dict.fromkeys(RESULTS, 0)
        for fam in self.metrics.requests.collect():
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

    async def admin_flush(self, request: Request) -> Response:
        s = _sidecar(request)
        gen = s.cache.generation
        try:
            deleted = await s.cache.store.delete_generation(gen.id)
        except StoreError as exc:
            return JSONResponse({"error": f"cache store unavailable: {exc}"}, status_code=503)
        self.metrics.deleted.labels("flush").inc(deleted)
        return JSONResponse({"generation": gen.as_dict(), "deleted": deleted})

    async def admin_invalidate(self, request: Request) -> Response:
        try:
            payload = decode_json(
                await read_body(request, self.cfg.limits.maxBodyBytes), self.cfg.limits.maxJsonDepth
            )
        except BadRequest as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        tags = payload.get("tags", [payload.get("tag")]) if isinstance(payload, dict) else None
        if not isinstance(tags, list) or not tags or not all(isinstance(t, str) and t for t in tags):
            got = repr(payload)
            return JSONResponse(
                {"error": f'body must be {{"tag": "..."}} or {{"tags": ["..."]}}, got {got[:200]}'
                 + ("..." if len(got) > 200 else "")},
                status_code=400,
            )  # fmt: skip
        s = _sidecar(request)
        gen = s.cache.generation
        deleted = 0
        try:
            for tag in tags:
                deleted += await s.cache.store.delete_tag(gen.id, tag)
        except StoreError as exc:
            return JSONResponse({"error": f"cache store unavailable: {exc}"}, status_code=503)
        self.metrics.deleted.labels("tag").inc(deleted)
        return JSONResponse({"tags": tags, "deleted": deleted})

    async def passthrough(self, request: Request) -> Response:
        try:
            body = await read_body(request, self.cfg.limits.maxBodyBytes)
        except BadRequest as exc:
            return _sidecar(request).pipeline.refuse(self.dialect, exc)
        headers = {k.lower(): v for k, v in request.headers.items()}
        return await _sidecar(request).pipeline.passthrough(
            request.method, request.url.path, request.url.query, headers, body or None
        )

    async def admin_other(self, request: Request) -> Response:
        return JSONResponse({"error": f"no admin route {request.url.path}"}, status_code=404)


def create_app(cfg: SidecarConfig, *, embedder: Embedder | None = None) -> Starlette:
    """The ASGI app. ``embedder`` overrides the configured one (the evaluator and tests share one)."""
    metrics = Metrics(max_tenants=cfg.metrics.maxTenants, tenant_header=cfg.tenantHeader)
    dialect = for_upstream(cfg, metrics.registry, tenant_label=metrics.tenant_label)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        sidecar = await Sidecar.start(cfg, metrics, dialect, embedder)
        app.state.sidecar = sidecar
        try:
            yield
        finally:
            await sidecar.stop()

    app = Starlette(routes=Routes(cfg, metrics, dialect).table(), lifespan=lifespan)
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
