"""The HTTP side of the Anthropic upstream: API key and usage accounting on every upstream call.

:class:`AnthropicTransport` wraps the transport of the sidecar's upstream ``httpx.AsyncClient``. It
sees every request that leaves for Anthropic, whatever the cache decided (miss, bypass, error) and
on every route, so

* a request without ``x-api-key`` (or ``authorization``) gets the key from ``upstream.apiKeyFile``;
  the key is never logged, and the client's own key always wins;
* every ``POST /v1/messages`` answer with status 200 is accounted exactly once, from its JSON body
  or from the ``message_start``/``message_delta`` events while the stream is relayed unchanged;
  a stream that breaks is accounted with what arrived (its input was billed).

Semantic-cache hits never reach the transport; the dialect accounts them (see ``dialect.py``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from hermes_sidecar.dialects.anthropic.accounting import PromptCacheAccounting
from hermes_sidecar.dialects.anthropic.usage import StreamUsage, usage_from_json
from hermes_sidecar.dialects.base import SSEParser
from hermes_sidecar.errors import ConfigError
from hermes_sidecar.tenants import tenant_of

__all__ = ["MESSAGES", "AnthropicTransport", "read_api_key"]

log = logging.getLogger("hermes_sidecar.anthropic")

# The Messages route: the dialect serves it, and this transport accounts the calls made to it.
MESSAGES = "/v1/messages"
_MAX_JSON_BYTES = 32 * 1024 * 1024  # a Messages answer is far smaller; beyond this, skip accounting


def read_api_key(path: str | None) -> str | None:
    """The key in ``upstream.apiKeyFile``; a clear error naming the field when it cannot be read."""
    if not path:
        return None
    try:
        key = Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigError(f"upstream.apiKeyFile {path!r} cannot be read ({exc.strerror}); "
                         "mount the secret there or remove the setting") from None  # fmt: skip
    if not key:
        raise ConfigError(f"upstream.apiKeyFile {path!r} is empty; it must hold the Anthropic API key")
    return key


class _Observed(httpx.AsyncByteStream):
    """Relays the upstream bytes unchanged and accounts the usage they carry, once."""

    def __init__(self, inner: httpx.AsyncByteStream, streamed: bool, on_usage: _UsageSink) -> None:
        self._inner = inner
        self._streamed = streamed
        self._sink = on_usage
        self._parser = SSEParser()
        self._usage = StreamUsage()
        self._body = bytearray()
        self._done = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            self._absorb(chunk)
            yield chunk
        self._account()

    def _absorb(self, chunk: bytes) -> None:
        if self._streamed:
            for _, data in self._parser.feed(chunk):
                try:
                    event = json.loads(data)
                except ValueError:
                    continue
                if isinstance(event, dict):
                    self._usage.observe(event)
        elif len(self._body) + len(chunk) <= _MAX_JSON_BYTES:
            self._body += chunk

    def _account(self) -> None:
        if self._done:
            return
        self._done = True
        if self._streamed:
            if self._usage.seen_start:
                self._sink(None, self._usage.raw())
            return
        try:
            doc = json.loads(bytes(self._body))
        except ValueError:
            return
        if isinstance(doc, dict) and doc.get("type") == "message" and isinstance(doc.get("usage"), dict):
            self._sink(doc.get("model"), doc["usage"])

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            self._account()


class _UsageSink:
    def __init__(self, transport: AnthropicTransport, model: str, tenant: str) -> None:
        self._transport, self._model, self._tenant = transport, model, tenant

    def __call__(self, answered_model: object, usage: dict[str, object]) -> None:
        model = answered_model if isinstance(answered_model, str) and answered_model else self._model
        if self._transport.accounting is not None:
            self._transport.accounting.record_call(model, usage_from_json(usage), tenant=self._tenant)


class AnthropicTransport(httpx.AsyncBaseTransport):
    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        accounting: PromptCacheAccounting | None,
        *,
        api_key: str | None = None,
        tenant_header: str = "x-tenant-id",
        tenant_source: str = "header-or-credential",
    ) -> None:
        self._inner = inner
        self.accounting = accounting
        self._api_key = api_key
        self._tenant_header = tenant_header
        self._tenant_source = tenant_source

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        client_headers = {k.lower(): v for k, v in request.headers.items()}
        if self._api_key and "x-api-key" not in client_headers and "authorization" not in client_headers:
            request.headers["x-api-key"] = self._api_key
        response = await self._inner.handle_async_request(request)
        if (
            request.method != "POST"
            or not request.url.path.endswith(MESSAGES)
            or response.status_code != 200
            or self.accounting is None
        ):
            return response
        if response.headers.get("content-encoding", "identity") not in ("", "identity"):
            log.warning(
                "cannot account an encoded Messages answer (%s)", response.headers["content-encoding"]
            )
            return response
        try:
            model = str(json.loads(request.content).get("model") or "")
        except (ValueError, AttributeError, httpx.RequestNotRead):
            model = ""
        tenant = tenant_of(client_headers, self._tenant_header, self._tenant_source)
        streamed = "text/event-stream" in response.headers.get("content-type", "")
        if not isinstance(response.stream, httpx.AsyncByteStream):
            return response
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_Observed(response.stream, streamed, _UsageSink(self, model, tenant)),
            extensions=response.extensions,
            request=request,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()
