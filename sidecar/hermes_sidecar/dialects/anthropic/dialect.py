"""The Anthropic Messages dialect: prompt-cache breakpoints, cost accounting, semantic-cache replay.

``POST /v1/messages`` goes through the same cache pipeline as the OpenAI routes; this dialect adds
what is specific to Anthropic:

* :meth:`AnthropicDialect.upstream_body` places ``cache_control`` breakpoints per
  ``promptCache`` (see :mod:`hermes_sidecar.dialects.anthropic.breakpoints`);
* every upstream answer (JSON or the ``message_start``/``message_delta`` events of a stream) is
  accounted once into the ``hermes_prompt_cache_*`` metrics (:mod:`.accounting`) by the upstream
  client's transport (:mod:`.transport`), which :meth:`AnthropicDialect.transport` builds;
* a semantic-cache hit is accounted as a whole avoided call, labelled with the tenant the pipeline
  passes in :class:`~hermes_sidecar.dialects.base.ReplayInfo`;
* stored answers replay as a Messages JSON object or as a complete Messages event stream.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httpx
from prometheus_client import CollectorRegistry

from hermes_sidecar.config import PromptCacheConfig, SidecarConfig
from hermes_sidecar.dialects.anthropic.accounting import PromptCacheAccounting, price_table_from_config
from hermes_sidecar.dialects.anthropic.breakpoints import PLACES, Place, PlaceRule, place_breakpoints
from hermes_sidecar.dialects.anthropic.transport import MESSAGES, AnthropicTransport, read_api_key
from hermes_sidecar.dialects.anthropic.usage import StreamUsage, usage_from_json
from hermes_sidecar.dialects.base import (
    UNPARSABLE,
    CacheableRequest,
    CachedAnswer,
    NotCacheable,
    ReplayInfo,
    SSEParser,
    Turn,
    canonical_json,
    number_of,
    optional_of,
    sse_event,
)

__all__ = ["AnthropicDialect", "build_dialect", "replay_events"]

# Parameters that change the answer. Everything else not in _NEUTRAL partitions under "shape", so an
# option we do not know can only split the cache, never merge two different requests.
_SAMPLING = ("temperature", "top_p", "top_k", "max_tokens", "stop_sequences")
# Fields that do not change the answer: the stream form (a hit is replayed in the form asked for),
# bookkeeping, and prompt-cache markers (cache_control changes the bill, not the answer).
_NEUTRAL = frozenset({"model", "messages", "system", "stream", "metadata", "cache_control", "service_tier"})
# Stop reasons of a complete answer worth storing; max_tokens only when configured.
_STORABLE = frozenset({"end_turn", "stop_sequence", "tool_use"})


def _strip_cache_control(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _strip_cache_control(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [_strip_cache_control(v) for v in value]
    return value


def _skip_code(reason: str) -> str:
    for needle, code in (
        ("below the minimum", "below_minimum"),
        ("slot", "no_slot"),
        ("client already", "client_placed"),
        ("single turn", "single_turn"),
    ):
        if needle in reason:
            return code
    return "nothing_to_cache"


def _content_text(content: Any) -> tuple[str, list[Any], bool]:
    """Text of a message's content, its non-text parts, and whether it carries tool results."""
    if isinstance(content, str):
        return content, [], False
    if not isinstance(content, list):
        raise NotCacheable(UNPARSABLE)
    texts: list[str] = []
    other: list[Any] = []
    tool_result = False
    for block in content:
        if isinstance(block, Mapping) and block.get("type") == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        else:
            other.append(_strip_cache_control(block))
            tool_result = tool_result or (isinstance(block, Mapping) and block.get("type") == "tool_result")
    return "\n".join(texts), other, tool_result


class AnthropicDialect:
    name = "anthropic"
    routes: tuple[str, ...] = (MESSAGES,)
    # the Messages API has no health, metrics or prefix-cache route of ours to call
    health_path: str | None = None
    metrics_path: str | None = None
    prefix_reset_path: str | None = None

    def __init__(
        self,
        config: PromptCacheConfig | None = None,
        *,
        accounting: PromptCacheAccounting | None = None,
        store_truncated: bool = False,
    ) -> None:
        self.config = config or PromptCacheConfig()
        self.prices = accounting.prices if accounting else price_table_from_config(self.config)
        self.accounting = accounting
        self.store_truncated = store_truncated
        bp = self.config.breakpoints
        self._rules: dict[Place, PlaceRule] = {
            place: PlaceRule(getattr(bp, place).enabled, getattr(bp, place).ttl) for place in PLACES
        }

    # -- request -----------------------------------------------------------------------------------

    def parse_request(self, route: str, body: Mapping[str, Any]) -> CacheableRequest:
        if route != MESSAGES:
            raise NotCacheable(f"route {route} is not cacheable")
        # Wrong types are the upstream's to refuse (the API answers 400): NotCacheable.
        model = optional_of(body, "model", str)
        messages = optional_of(body, "messages", list)
        stream = optional_of(body, "stream", bool)
        temperature = number_of(body, "temperature")
        if not model:
            raise NotCacheable("no model")
        if not messages:
            raise NotCacheable("no messages")
        system_value = body.get("system")
        if system_value is None:
            system = ""
        else:
            system, other, _ = _content_text(system_value)
            if other:
                raise NotCacheable("non-text system content")
        turns: list[Turn] = []
        for m in messages:
            if not isinstance(m, Mapping) or not isinstance(m.get("role"), str):
                raise NotCacheable(UNPARSABLE)
            if m["role"] not in ("user", "assistant"):
                raise NotCacheable("invalid message")
            text, other, tool_result = _content_text(m.get("content"))
            structured = canonical_json(other) if other else ""
            turns.append(Turn(str(m["role"]), text, structured, is_tool_result=tool_result))
        sampling = {k: body[k] for k in _SAMPLING if body.get(k) is not None}
        shape = {
            k: _strip_cache_control(v)
            for k, v in body.items()
            if k not in _NEUTRAL and k not in _SAMPLING and v is not None
        }
        return CacheableRequest(
            dialect=self.name,
            route=route,
            model=model,
            system=system,
            turns=tuple(turns),
            shape=canonical_json(shape) if shape else "",
            sampling=sampling,
            stream=bool(stream),
            n=1,
            temperature=temperature,
            body=body,
        )

    def upstream_body(self, body: Mapping[str, Any], salt: str | None = None) -> dict[str, Any]:
        """The body sent upstream: the client's, plus our breakpoints. ``salt`` is vLLM-only."""
        if not self.config.enabled or not isinstance(body.get("model"), str):
            return dict(body)
        min_tokens, _ = self.prices.min_cacheable_tokens(body["model"])
        result = place_breakpoints(
            body, self._rules, min_tokens=min_tokens, respect_client=self.config.respectClientBreakpoints
        )
        if self.accounting is not None:
            self.accounting.record_placement(
                [(p.place, p.ttl) for p in result.placed],
                [(s.place, _skip_code(s.reason)) for s in result.skipped],
            )
        return result.body

    def bypass_body(self, body: Mapping[str, Any], salt: str | None = None) -> dict[str, Any]:
        # Breakpoints change the bill, not the answer: a bypassed request gets them too.
        return self.upstream_body(body, salt)

    def error_body(self, message: str, status: int) -> dict[str, Any]:
        # the Messages API's error object; a body too large is its own type there (413)
        kind = "request_too_large" if status == 413 else "invalid_request_error"
        return {"type": "error", "error": {"type": kind, "message": message}}

    def transport(self, cfg: SidecarConfig, **pool: Any) -> httpx.AsyncBaseTransport:
        """The upstream client's transport: adds the configured API key and accounts every billed call."""
        return AnthropicTransport(
            httpx.AsyncHTTPTransport(**pool),
            self.accounting,
            api_key=read_api_key(cfg.upstream.apiKeyFile),
            tenant_header=cfg.tenantHeader,
            tenant_source=cfg.tenantSource,
        )

    # -- answers -----------------------------------------------------------------------------------

    def answer_from_json(self, request: CacheableRequest, body: Mapping[str, Any]) -> CachedAnswer | None:
        # Usage is accounted by AnthropicTransport for every upstream answer, not here (this is only
        # called for answers the cache may store), so nothing is counted twice or missed.
        if body.get("type") != "message" or not isinstance(body.get("content"), list):
            return None
        if not self._storable(body.get("stop_reason")):
            return None
        return CachedAnswer(self.name, dict(body))

    def _storable(self, stop_reason: Any) -> bool:
        return stop_reason in _STORABLE or (self.store_truncated and stop_reason == "max_tokens")

    def recorder(self, request: CacheableRequest) -> _Recorder:
        return _Recorder(self, request)

    def replay_json(self, request: CacheableRequest, answer: CachedAnswer, info: ReplayInfo) -> bytes:
        self._account_hit(request, answer, info)
        return json.dumps(_replayed(answer.body), separators=(",", ":")).encode()

    def replay_sse(
        self, request: CacheableRequest, answer: CachedAnswer, info: ReplayInfo
    ) -> Iterator[bytes]:
        self._account_hit(request, answer, info)
        return iter(list(replay_events(_replayed(answer.body))))

    def _account_hit(self, request: CacheableRequest, answer: CachedAnswer, info: ReplayInfo) -> None:
        if self.accounting is not None:
            usage = answer.body.get("usage")
            model = str(answer.body.get("model") or request.model)
            self.accounting.record_avoided_call(
                model,
                usage_from_json(usage if isinstance(usage, Mapping) else None),
                tenant=info.tenant,
            )


def _replayed(stored: Mapping[str, Any]) -> dict[str, Any]:
    """A stored message as a fresh response. Its usage is zero: a hit is not billed, and a client
    that prices its own calls from ``usage`` must not pay for it a second time."""
    body = dict(stored)
    body["id"] = "msg_" + uuid.uuid4().hex[:24]
    body["usage"] = {
        "input_tokens": 0,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": 0,
    }
    return body


def _event(kind: str, data: Mapping[str, Any]) -> bytes:
    return sse_event(json.dumps(data, separators=(",", ":")), kind)


def replay_events(message: Mapping[str, Any]) -> Iterator[bytes]:
    """A complete Messages event stream for a ``message`` object: what the API would have sent."""
    usage = dict(message.get("usage") or {})
    head = {k: v for k, v in message.items() if k not in ("content", "stop_reason", "stop_sequence", "usage")}
    yield _event(
        "message_start",
        {
            "type": "message_start",
            "message": {**head, "content": [], "stop_reason": None, "stop_sequence": None, "usage": usage},
        },
    )
    for index, block in enumerate(message.get("content") or []):
        kind = block.get("type")
        if kind == "text":
            start = {k: v for k, v in block.items() if k != "text"} | {"text": ""}
            deltas = [{"type": "text_delta", "text": block.get("text", "")}]
        elif kind in ("tool_use", "server_tool_use"):
            start = {k: v for k, v in block.items() if k != "input"} | {"input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": json.dumps(block.get("input", {}))}]
        elif kind == "thinking":
            start = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": block.get("thinking", "")}]
            if block.get("signature"):
                deltas.append({"type": "signature_delta", "signature": block["signature"]})
        else:  # redacted_thinking and result blocks arrive whole in content_block_start
            start, deltas = dict(block), []
        yield _event(
            "content_block_start", {"type": "content_block_start", "index": index, "content_block": start}
        )
        for delta in deltas:
            yield _event(
                "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
            )
        yield _event("content_block_stop", {"type": "content_block_stop", "index": index})
    yield _event(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {
                "stop_reason": message.get("stop_reason"),
                "stop_sequence": message.get("stop_sequence"),
            },
            "usage": {
                k: usage[k]
                for k in (
                    "input_tokens",
                    "cache_creation_input_tokens",
                    "cache_read_input_tokens",
                    "output_tokens",
                )
                if k in usage
            },
        },
    )
    yield _event("message_stop", {"type": "message_stop"})


class _Recorder:
    """Follows a Messages event stream while it is forwarded unchanged and rebuilds the ``message``
    object for the cache (usage is accounted by AnthropicTransport)."""

    def __init__(self, dialect: AnthropicDialect, request: CacheableRequest) -> None:
        self._dialect = dialect
        self._request = request
        self._parser = SSEParser()
        self._usage = StreamUsage()
        self._message: dict[str, Any] | None = None
        self._blocks: dict[int, dict[str, Any]] = {}
        self._partial_json: dict[int, list[str]] = {}
        self._stop_reason: Any = None
        self._stop_sequence: Any = None
        self._stopped = False
        self._broken = False

    def feed(self, chunk: bytes) -> bytes:
        for event, data in self._parser.feed(chunk):
            self._absorb(event, data)
        return chunk

    @property
    def ended(self) -> bool:
        return self._stopped

    def _absorb(self, event: str | None, data: str) -> None:
        try:
            doc = json.loads(data)
        except ValueError:
            self._broken = True
            return
        if not isinstance(doc, dict):
            self._broken = True
            return
        kind = doc.get("type") or event
        self._usage.observe(doc)
        if kind == "message_start" and isinstance(doc.get("message"), dict):
            self._message = dict(doc["message"])
        elif kind == "content_block_start" and isinstance(doc.get("content_block"), dict):
            self._blocks[int(doc.get("index", 0))] = dict(doc["content_block"])
        elif kind == "content_block_delta":
            self._delta(int(doc.get("index", 0)), doc.get("delta") or {})
        elif kind == "message_delta":
            delta = doc.get("delta") or {}
            self._stop_reason = delta.get("stop_reason", self._stop_reason)
            self._stop_sequence = delta.get("stop_sequence", self._stop_sequence)
        elif kind == "message_stop":
            self._stopped = True
        elif kind == "error":
            self._broken = True

    def _delta(self, index: int, delta: Mapping[str, Any]) -> None:
        block = self._blocks.setdefault(index, {"type": "text", "text": ""})
        kind = delta.get("type")
        if kind == "text_delta":
            block["text"] = block.get("text", "") + str(delta.get("text", ""))
        elif kind == "input_json_delta":
            self._partial_json.setdefault(index, []).append(str(delta.get("partial_json", "")))
        elif kind == "thinking_delta":
            block["thinking"] = block.get("thinking", "") + str(delta.get("thinking", ""))
        elif kind == "signature_delta":
            block["signature"] = str(delta.get("signature", ""))
        elif kind == "citations_delta":
            block.setdefault("citations", []).append(delta.get("citation"))

    def finish(self, *, complete: bool) -> CachedAnswer | None:
        if not complete or not self._stopped or self._broken or self._parser.pending or self._message is None:
            return None
        if not self._dialect._storable(self._stop_reason):
            return None
        content = []
        for index in sorted(self._blocks):
            block = dict(self._blocks[index])
            if index in self._partial_json:
                joined = "".join(self._partial_json[index])
                try:
                    block["input"] = json.loads(joined) if joined else {}
                except ValueError:
                    return None
            content.append(block)
        body = dict(self._message)
        body.update(
            content=content,
            stop_reason=self._stop_reason,
            stop_sequence=self._stop_sequence,
            usage=self._usage.raw(),
        )
        return CachedAnswer(self._dialect.name, body)


def build_dialect(
    cfg: SidecarConfig, registry: CollectorRegistry, *, tenant_label: Callable[[str], str] | None = None
) -> AnthropicDialect:
    """The dialect for ``upstream.kind: anthropic``, its metrics in ``registry``, their tenant label
    values from ``tenant_label`` (the sidecar's cap on distinct tenants)."""
    prices = price_table_from_config(cfg.promptCache)
    return AnthropicDialect(
        cfg.promptCache,
        accounting=PromptCacheAccounting(prices, registry, tenant_label=tenant_label),
        store_truncated=cfg.cache.storeTruncated,
    )
