"""Upstream forwarding: the request path of a cacheable route, and plain pass-through for the rest.

Cacheable route: parse with the dialect -> decide (``cache.py``) -> on a hit replay the stored answer
in the form asked for (JSON or SSE); otherwise forward upstream with the sidecar's ``cache_salt``,
stream the answer to the client as it arrives while the dialect's recorder rebuilds it, and store it
in the background when it completed with status 200. Every response carries ``x-hermes-cache``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import httpx
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from hermes_sidecar.cache import BYPASS, ERROR, HIT_EXACT, HIT_SEMANTIC, MISS, CacheService, Decision
from hermes_sidecar.dialects.base import CacheableRequest, CachedAnswer, Dialect, NotCacheable, ReplayInfo
from hermes_sidecar.generations import StatsWriter
from hermes_sidecar.keys import cache_salt
from hermes_sidecar.metrics import Metrics
from hermes_sidecar.tenants import tenant_of

log = logging.getLogger("hermes_sidecar.proxy")

HEADER = "x-hermes-cache"
# Hop-by-hop headers (RFC 9110 7.6.1) and the ones the HTTP layers recompute.
_HOP = frozenset(
    [
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "content-encoding",
    ]
)


def _forward_headers(headers: Mapping[str, str]) -> dict[str, str]:
    out = {k: v for k, v in headers.items() if k.lower() not in _HOP}
    # The recorder reads the bytes: ask for them uncompressed.
    out["accept-encoding"] = "identity"
    return out


def _response_headers(headers: httpx.Headers, result: str) -> dict[str, str]:
    out = {k: v for k, v in headers.items() if k.lower() not in _HOP}
    out[HEADER] = result
    return out


class Pipeline:
    def __init__(
        self,
        cache: CacheService,
        client: httpx.AsyncClient,
        upstream_url: str,
        metrics: Metrics,
        stats: StatsWriter,
    ) -> None:
        self.cache = cache
        self.client = client
        self.upstream = upstream_url.rstrip("/")
        self.metrics = metrics
        self.stats = stats

    def _count_bypass(self, reason: str, tenant: str) -> None:
        self.metrics.bypass.labels(reason).inc()
        self.metrics.count_request("bypass", tenant)
        self.stats.count(self.cache.generation.version, "bypass")

    def _count(self, decision: Decision, tenant: str) -> None:
        self.metrics.count_request(decision.metric, tenant)
        self.stats.count(decision.generation.version, decision.metric)

    async def handle(self, dialect: Dialect, route: str, request: Request) -> Response:
        body_bytes = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        return await self.run(dialect, route, body_bytes, headers, request.url.query)

    async def run(
        self, dialect: Dialect, route: str, body_bytes: bytes, headers: Mapping[str, str], query: str = ""
    ) -> Response:
        tenant = tenant_of(headers, self.cache.tenant_header, self.cache.tenant_source)
        try:
            body = json.loads(body_bytes)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            # Not ours to judge: upstream answers a malformed request with its own error.
            self._count_bypass("invalid-json", tenant)
            return await self.passthrough("POST", route, query, headers, body_bytes)
        try:
            req = dialect.parse_request(route, body)
        except NotCacheable as exc:
            self._count_bypass(exc.reason, tenant)
            salted = dialect.bypass_body(body, self._salt(tenant))
            return await self._forward(
                dialect, None, route, query, headers, salted, Decision(BYPASS, self.cache.generation)
            )
        decision = await self.cache.decide(req, headers, tenant)
        if decision.result in (HIT_EXACT, HIT_SEMANTIC) and decision.entry is not None:
            try:
                answer = CachedAnswer.from_json(decision.entry.answer)
                replay = self._replay(dialect, req, answer, decision, tenant)
                self._count(decision, tenant)
                return replay
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("unreadable cache entry %s, answering from upstream: %s", decision.entry.key, exc)
                decision = Decision(MISS, decision.generation, decision.keys, tags=decision.tags)
        self._count(decision, tenant)
        upstream_body = dialect.upstream_body(body, self._salt(tenant, decision))
        return await self._forward(dialect, req, route, query, headers, upstream_body, decision)

    def _salt(self, tenant: str, decision: Decision | None = None) -> str:
        # every dialect is given the salt; those whose upstream has no prefix cache ignore it
        gen = decision.generation if decision is not None else self.cache.generation
        return cache_salt(gen.id, tenant)

    def _replay(
        self, dialect: Dialect, req: CacheableRequest, answer: CachedAnswer, decision: Decision, tenant: str
    ) -> Response:
        info = ReplayInfo(decision.result, decision.similarity, tenant)
        headers = {HEADER: decision.header}
        if decision.similarity is not None and decision.result == HIT_SEMANTIC:
            headers["x-hermes-cache-similarity"] = f"{decision.similarity:.4f}"
        if req.stream:
            events: Iterator[bytes] = dialect.replay_sse(req, answer, info)
            headers["cache-control"] = "no-cache"
            return StreamingResponse(events, media_type="text/event-stream", headers=headers)
        return Response(
            dialect.replay_json(req, answer, info), media_type="application/json", headers=headers
        )

    async def _forward(
        self,
        dialect: Dialect,
        req: CacheableRequest | None,
        route: str,
        query: str,
        headers: Mapping[str, str],
        body: dict[str, Any],
        decision: Decision,
    ) -> Response:
        url = self.upstream + route + (f"?{query}" if query else "")
        content = json.dumps(body, separators=(",", ":")).encode()
        upstream_req = self.client.build_request(
            "POST", url, headers=_forward_headers(headers), content=content
        )
        try:
            resp = await self.client.send(upstream_req, stream=True)
        except httpx.HTTPError as exc:
            log.warning("upstream %s failed: %s", url, exc)
            if decision.result == MISS:
                self.metrics.not_stored.labels("upstream-unreachable").inc()
            return Response(
                json.dumps({"error": {"message": f"upstream unreachable: {exc}", "type": "upstream_error"}}),
                status_code=502,
                media_type="application/json",
                headers={HEADER: decision.header},
            )
        out_headers = _response_headers(resp.headers, decision.header)
        record = req is not None and decision.result == MISS and resp.status_code == 200
        if decision.result == ERROR:
            self.metrics.not_stored.labels("cache-error").inc()  # the cache is down: nothing stored
        streamed = "text/event-stream" in resp.headers.get("content-type", "")
        if not streamed:
            try:
                data = await resp.aread()
            finally:
                await resp.aclose()
            if record and req is not None:
                self._store_json(dialect, req, decision, data)
            elif req is not None and decision.result == MISS:
                self.metrics.not_stored.labels(f"status-{resp.status_code}").inc()
            return Response(data, status_code=resp.status_code, headers=out_headers)
        # A recorder also for requests that are not stored: it strips what upstream_body added.
        recorder = dialect.recorder(req) if req is not None and resp.status_code == 200 else None

        async def relay() -> AsyncIterator[bytes]:
            complete = False
            try:
                async for chunk in resp.aiter_raw():
                    yield recorder.feed(chunk) if recorder is not None else chunk
                complete = True
            except httpx.HTTPError as exc:
                # Cut the client's stream too: ending it cleanly would pass a truncated answer as whole.
                log.warning("upstream stream broke: %s", exc)
                raise
            finally:
                await resp.aclose()
                if recorder is not None and record:
                    answer = recorder.finish(complete=complete)
                    if answer is not None:
                        self.cache.store_in_background(decision, answer)
                    else:
                        self.metrics.not_stored.labels("stream-incomplete-or-cut").inc()

        return StreamingResponse(relay(), status_code=resp.status_code, headers=out_headers)

    def _store_json(self, dialect: Dialect, req: CacheableRequest, decision: Decision, data: bytes) -> None:
        try:
            doc = json.loads(data)
        except ValueError:
            self.metrics.not_stored.labels("invalid-json").inc()
            return
        answer = dialect.answer_from_json(req, doc) if isinstance(doc, dict) else None
        if answer is None:
            self.metrics.not_stored.labels("not-storable").inc()
            return
        self.cache.store_in_background(decision, answer)

    async def passthrough(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes | None
    ) -> Response:
        """Any other route: forwarded unchanged (body and answer streamed)."""
        url = self.upstream + path + (f"?{query}" if query else "")
        fwd = {k: v for k, v in headers.items() if k.lower() not in _HOP}
        upstream_req = self.client.build_request(method, url, headers=fwd, content=body)
        try:
            resp = await self.client.send(upstream_req, stream=True)
        except httpx.HTTPError as exc:
            return Response(
                json.dumps({"error": {"message": f"upstream unreachable: {exc}", "type": "upstream_error"}}),
                status_code=502,
                media_type="application/json",
                headers={HEADER: BYPASS},
            )
        out = {k: v for k, v in resp.headers.items() if k.lower() not in _HOP - {"content-encoding"}}
        out[HEADER] = BYPASS
        return StreamingResponse(
            resp.aiter_raw(),
            status_code=resp.status_code,
            headers=out,
            background=BackgroundTask(resp.aclose),
        )


__all__ = ["HEADER", "Pipeline"]
