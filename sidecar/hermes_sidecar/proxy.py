"""Upstream forwarding: the request path of a cacheable route, and plain pass-through for the rest.

Cacheable route: parse with the dialect -> decide (``cache.py``) -> on a hit replay the stored answer
in the form asked for (JSON or SSE); otherwise forward upstream with the sidecar's ``cache_salt``,
stream the answer to the client as it arrives while the dialect's recorder rebuilds it, and store it
in the background when it completed with status 200. Every response carries ``x-hermes-cache``.

Hostile input is the client's error, never a 500 of ours (issue 15):

* a body larger than ``limits.maxBodyBytes`` (413), not JSON, or nested deeper than
  ``limits.maxJsonDepth`` (400) is refused here, in the dialect's error format (:func:`read_body`,
  :func:`decode_json`), before anything walks it recursively;
* a JSON body whose fields the dialect cannot read goes up uncached (``bypass``, reason
  ``unparsable``), and the upstream's own validation answers it;
* headers are forwarded as the bytes that came in (Starlette decodes them as latin-1, which
  round-trips), minus what HTTP forbids in a value; response headers come back as bytes too.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import httpx
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from hermes_sidecar.cache import BYPASS, ERROR, HIT_EXACT, HIT_SEMANTIC, MISS, CacheService, Decision
from hermes_sidecar.config import LimitsConfig
from hermes_sidecar.dialects.base import (
    UNPARSABLE,
    CacheableRequest,
    CachedAnswer,
    Dialect,
    NotCacheable,
    ReplayInfo,
)
from hermes_sidecar.errors import BadRequest, describe
from hermes_sidecar.generations import StatsWriter
from hermes_sidecar.keys import cache_salt
from hermes_sidecar.metrics import Metrics
from hermes_sidecar.tenants import Tenancy

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


# What RFC 9110 5.5 forbids in a field value (control characters but HTAB); h11 refuses to send it.
_FORBIDDEN = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
RawHeaders = list[tuple[bytes, bytes]]


def _octets(value: str) -> bytes:
    # Starlette decoded the value as latin-1: encoding it so gives back the bytes that came in.
    # A value from our own config (warm-up tenant) may hold more than latin-1: UTF-8 then.
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


def forward_headers(headers: Mapping[str, str], skip: frozenset[str] = _HOP) -> RawHeaders:
    """The client's headers to send upstream, as bytes: hop-by-hop ones dropped, surrounding
    whitespace trimmed (a parser ignores it, h11 refuses it), values HTTP forbids left out."""
    out: RawHeaders = []
    for name, value in headers.items():
        raw = _octets(value).strip(b" \t")
        if name.lower() not in skip and not _FORBIDDEN.search(raw) and not _FORBIDDEN.search(_octets(name)):
            out.append((_octets(name), raw))
    return out


def _pipeline_headers(headers: Mapping[str, str]) -> RawHeaders:
    # The recorder reads the bytes: ask for them uncompressed.
    return [h for h in forward_headers(headers) if h[0].lower() != b"accept-encoding"] + [
        (b"accept-encoding", b"identity")
    ]


def with_headers(
    response: Response, upstream: httpx.Headers, result: str, skip: frozenset[str] = _HOP
) -> Response:
    """``response`` with the upstream's headers as the bytes they came in (httpx decodes them, not
    always as latin-1, and Starlette encodes as latin-1) and ``x-hermes-cache``."""
    response.raw_headers.extend((k, v) for k, v in upstream.raw if k.decode("latin-1").lower() not in skip)
    response.raw_headers.append((HEADER.encode(), result.encode()))
    return response


def _too_large(limit: int) -> BadRequest:
    return BadRequest(
        f"the request body is larger than limits.maxBodyBytes ({limit} bytes); send less, or raise the limit",
        reason="too-large",
        status=413,
    )


_DIGITS = re.compile(r"[0-9]{1,19}")


async def read_body(request: Request, limit: int) -> bytes:
    """The body, or BadRequest (413) as soon as it exceeds ``limit`` bytes: never read whole first."""
    declared = request.headers.get("content-length", "").strip()
    # ASCII digits only (str.isdigit takes "²", which int() refuses), and no more than a limit can
    # hold (int() refuses beyond 4,300 digits): anything else is left to the server and the count below
    if _DIGITS.fullmatch(declared) and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def json_depth(value: Any, limit: int) -> int:
    """How deep arrays and objects nest in a decoded value; the walk stops below ``limit`` + 1.
    Iterative: walking a deep value recursively is what must not happen (``deepcopy``, the encoder)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        if depth > limit:
            return depth
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (RFC 8259)")


def decode_json(data: bytes, max_depth: int) -> Any:
    """The JSON value of ``data``, or BadRequest (400) saying what was wrong.

    The decoder recurses per level and raises RecursionError near 1,000 levels (5,000 nested brackets
    made the sidecar answer 500); what it decodes below that is measured before anything walks it.
    Decoding first costs nothing extra: a scan of the bytes for strings and brackets took 1.8 s for a
    20 MiB prompt that ``json.loads`` reads in 0.08 s."""
    too_deep = BadRequest(
        f"the request body is nested deeper than limits.maxJsonDepth (more than {max_depth} levels of "
        "arrays and objects)",
        reason="too-deep",
    )
    try:
        value = json.loads(data, parse_constant=_no_constant)
    except RecursionError:
        raise too_deep from None
    except ValueError as exc:  # UnicodeDecodeError is a ValueError
        raise BadRequest(f"the request body is not valid JSON: {exc}", reason="invalid-json") from None
    if json_depth(value, max_depth) > max_depth:
        raise too_deep
    return value


class Pipeline:
    def __init__(
        self,
        cache: CacheService,
        client: httpx.AsyncClient,
        upstream_url: str,
        metrics: Metrics,
        stats: StatsWriter,
        limits: LimitsConfig | None = None,
    ) -> None:
        self.cache = cache
        self.client = client
        self.upstream = upstream_url.rstrip("/")
        self.metrics = metrics
        self.stats = stats
        self.limits = limits or LimitsConfig()

    def _count_bypass(self, reason: str, tenant: str, variant: str | None = "") -> None:
        self.metrics.bypass.labels(reason).inc()
        self.metrics.count_request("bypass", tenant, Tenancy.label(variant))
        self.stats.count(self.cache.generation.version, "bypass")

    def _count(self, decision: Decision, tenant: str, variant: str = "") -> None:
        self.metrics.count_request(decision.metric, tenant, Tenancy.label(variant))
        self.stats.count(decision.generation.version, decision.metric)

    async def handle(self, dialect: Dialect, route: str, request: Request) -> Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            body_bytes = await read_body(request, self.limits.maxBodyBytes)
        except BadRequest as exc:
            return self.refuse(dialect, exc, self.cache.tenancy.tenant(headers), headers)
        return await self.run(dialect, route, body_bytes, headers, request.url.query)

    def refuse(
        self,
        dialect: Dialect,
        exc: BadRequest,
        tenant: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """The sidecar's own 4xx in the dialect's error format; a cacheable route counts it as bypass."""
        if tenant is not None:
            self._count_bypass(exc.reason, tenant, self.cache.tenancy.variant(headers or {}, tenant))
        return Response(
            json.dumps(dialect.error_body(str(exc), exc.status)),
            status_code=exc.status,
            media_type="application/json",
            headers={HEADER: BYPASS},
        )

    async def run(
        self, dialect: Dialect, route: str, body_bytes: bytes, headers: Mapping[str, str], query: str = ""
    ) -> Response:
        tenant = self.cache.tenancy.tenant(headers)
        # None: a variant header value outside experiment.variants (passed through uncached)
        variant = self.cache.tenancy.variant(headers, tenant)
        try:
            if len(body_bytes) > self.limits.maxBodyBytes:
                raise _too_large(self.limits.maxBodyBytes)
            body = decode_json(body_bytes, self.limits.maxJsonDepth)
        except BadRequest as exc:
            return self.refuse(dialect, exc, tenant, headers)
        if not isinstance(body, dict):
            # JSON, but not a request: the upstream answers it with its own error.
            self._count_bypass(UNPARSABLE, tenant, variant)
            return await self.passthrough("POST", route, query, headers, body_bytes)
        try:
            if variant is None:
                raise NotCacheable("unknown-variant")
            req = dialect.parse_request(route, body)
        except NotCacheable as exc:
            self._count_bypass(exc.reason, tenant, variant)
            salted = dialect.bypass_body(body, self._salt(tenant, None, variant))
            return await self._forward(
                dialect, None, route, query, headers, salted, Decision(BYPASS, self.cache.generation)
            )
        decision = await self.cache.decide(req, headers, tenant, variant)
        if decision.result in (HIT_EXACT, HIT_SEMANTIC) and decision.entry is not None:
            try:
                answer = CachedAnswer.from_json(decision.entry.answer)
                replay = self._replay(dialect, req, answer, decision, tenant)
                self._count(decision, tenant, variant)
                return replay
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("unreadable cache entry %s, answering from upstream: %s", decision.entry.key, exc)
                decision = Decision(MISS, decision.generation, decision.keys, tags=decision.tags)
        self._count(decision, tenant, variant)
        upstream_body = dialect.upstream_body(body, self._salt(tenant, decision, variant))
        return await self._forward(dialect, req, route, query, headers, upstream_body, decision)

    def _salt(self, tenant: str, decision: Decision | None = None, variant: str | None = "") -> str:
        # every dialect is given the salt; those whose upstream has no prefix cache ignore it. Trust
        # groups share one (tenancy.salt_identity); an unknown variant gets its own, shared with nobody.
        gen = decision.generation if decision is not None else self.cache.generation
        t = self.cache.tenancy
        v = "?" if variant is None else variant
        return cache_salt(gen.id, t.salt_identity(tenant), producer=t.producer, variant=v)

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
            "POST", url, headers=_pipeline_headers(headers), content=content
        )
        try:
            resp = await self.client.send(upstream_req, stream=True)
        except httpx.HTTPError as exc:
            log.warning("upstream %s failed: %s", url, describe(exc))
            if decision.result == MISS:
                self.metrics.not_stored.labels("upstream-unreachable").inc()
            return Response(
                json.dumps(
                    {"error": {"message": f"upstream unreachable: {describe(exc)}", "type": "upstream_error"}}
                ),
                status_code=502,
                media_type="application/json",
                headers={HEADER: decision.header},
            )
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
            return with_headers(Response(data, status_code=resp.status_code), resp.headers, decision.header)
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
                # Before any await: once the client has hung up, the first await here is cancelled
                # too. A client that hangs up after the terminator (the openai SDK closes the
                # response on [DONE]) still had the whole answer: before, its misses were stored
                # only when vLLM's end of body won the race against the client's disconnect.
                if recorder is not None and record:
                    answer = recorder.finish(complete=complete or recorder.ended)
                    if answer is not None:
                        self.cache.store_in_background(decision, answer)
                    else:
                        self.metrics.not_stored.labels("stream-incomplete-or-cut").inc()
                await resp.aclose()

        return with_headers(
            StreamingResponse(relay(), status_code=resp.status_code), resp.headers, decision.header
        )

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
        upstream_req = self.client.build_request(method, url, headers=forward_headers(headers), content=body)
        try:
            resp = await self.client.send(upstream_req, stream=True)
        except httpx.HTTPError as exc:
            return Response(
                json.dumps(
                    {"error": {"message": f"upstream unreachable: {describe(exc)}", "type": "upstream_error"}}
                ),
                status_code=502,
                media_type="application/json",
                headers={HEADER: BYPASS},
            )
        relayed = StreamingResponse(
            resp.aiter_raw(), status_code=resp.status_code, background=BackgroundTask(resp.aclose)
        )
        return with_headers(relayed, resp.headers, BYPASS, _HOP - {"content-encoding"})


__all__ = ["HEADER", "Pipeline", "decode_json", "forward_headers", "json_depth", "read_body"]
