"""The dialect interface: everything the cache pipeline needs to know about one upstream wire format.

The pipeline (``proxy.py``) is format-agnostic. For each request it asks the dialect registered for
the route to

1. ``parse_request``: pull the parts that decide reuse out of the body (model, system text,
   conversation turns, tools/response format, answer-changing sampling parameters, stream flag).
   Raise :class:`NotCacheable` for a request the cache must pass through (counted as ``bypass``).
2. ``upstream_body``: build the body sent upstream. The OpenAI dialect sets vLLM's ``cache_salt``
   here (always overwriting a client value: the salt isolates prefix-cache reuse per generation and
   tenant, so a client must never choose it). Other dialects ignore ``salt``. ``bypass_body`` is the
   same for a request forwarded without a recorder: nothing may be added there that the client did
   not ask for, since nothing would strip it again.
3. ``answer_from_json`` / ``recorder``: turn an upstream answer (one JSON body, or an SSE stream fed
   chunk by chunk while it is forwarded to the client) into a :class:`CachedAnswer`, or ``None`` when
   the answer must not be stored (error, truncated by the length limit, aborted stream).
4. ``replay_json`` / ``replay_sse``: render a stored answer in the form the client asked for. SSE
   replays must be a complete, well-formed stream of the dialect (OpenAI: ``data: {...}`` chunks
   ending with ``data: [DONE]``) carrying the stored usage, tool calls and reasoning.

What the upstream server offers besides its wire format is the dialect's to say too, so that no
code outside ``dialects/`` asks which kind of upstream it talks to: ``health_path``, ``metrics_path``
and ``prefix_reset_path`` (``None`` when the upstream has no such route) and ``transport`` (what the
upstream client's connections go through, ``None`` for plain HTTP).

5. ``error_body``: the upstream's error format, for what the sidecar refuses itself (a body it cannot
   read: not JSON, too deep, too large), so a client's SDK reads the sidecar's 400 as the upstream's.

A body whose fields have the wrong types is not refused: ``parse_request`` raises
``NotCacheable(UNPARSABLE)`` and the upstream's own validation answers, as without the sidecar.
``upstream_body`` and ``bypass_body`` must then cope with any JSON object.

A dialect is a plain object with no I/O; the pipeline does the HTTP. ``dialects/registry.py`` builds
the one dialect for ``upstream.kind`` (its metrics in the app's own prometheus ``CollectorRegistry``:
tests run several apps in one process) and the app mounts a POST route for each of its ``routes``.
A dialect never stores an answer cut by the length limit unless built with ``store_truncated=True``
(``cache.storeTruncated``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from hermes_sidecar.errors import NotCacheable as NotCacheable

# The bypass reason of a body whose fields have types the dialect cannot read (the upstream decides).
UNPARSABLE = "unparsable"

if TYPE_CHECKING:
    import httpx

    from hermes_sidecar.config import SidecarConfig


@dataclass(frozen=True)
class Turn:
    """One conversation message reduced to what decides reuse.

    ``role`` is ``user`` or ``assistant`` (system text lives in :attr:`CacheableRequest.system`);
    ``text`` is the concatenated text content. ``structured`` holds a canonical JSON string of any
    non-text parts (tool calls, tool results, images), so two turns that differ there never match.
    """

    role: str
    text: str
    structured: str = ""
    is_tool_result: bool = False


@dataclass(frozen=True)
class CacheableRequest:
    """What the pipeline keys, partitions, embeds and guards on. Produced by ``Dialect.parse_request``.

    Every field that changes the answer must be here: ``shape`` collects tools, tool_choice,
    response_format and other structural options as canonical JSON; ``sampling`` the sampling
    parameters that change the answer (temperature, top_p, max_tokens, stop, seed, ...).
    """

    dialect: str
    route: str  # e.g. "/v1/chat/completions": chat and text completions never share entries
    model: str
    system: str
    turns: tuple[Turn, ...]
    shape: str = ""
    sampling: Mapping[str, Any] = field(default_factory=dict)
    stream: bool = False
    n: int = 1
    temperature: float | None = None
    # the parsed client body, for replay options such as OpenAI's stream_options.include_usage
    body: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def last_user_text(self) -> str:
        for turn in reversed(self.turns):
            if turn.role == "user" and not turn.is_tool_result:
                return turn.text
        return ""

    @property
    def has_tool_results(self) -> bool:
        return any(t.is_tool_result for t in self.turns)


@dataclass(frozen=True)
class CachedAnswer:
    """A stored answer in the dialect's canonical non-streamed form (OpenAI: a ``chat.completion`` or
    ``text_completion`` object; Anthropic: a ``message`` object), including the upstream usage."""

    dialect: str
    body: Mapping[str, Any]

    def to_json(self) -> str:
        return json.dumps({"dialect": self.dialect, "body": self.body}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> CachedAnswer:
        data = json.loads(text)
        return cls(dialect=str(data["dialect"]), body=data["body"])


@dataclass(frozen=True)
class ReplayInfo:
    """What the pipeline tells a dialect about a hit, for truthful replay metadata."""

    result: str  # "hit-exact" | "hit-semantic"
    similarity: float | None = None
    tenant: str = ""  # the tenant the pipeline keyed the request on (its cost metrics carry it)


class StreamRecorder(Protocol):
    """Rebuilds a streamed answer while it is forwarded to the client.

    ``feed`` gets each upstream chunk and returns the bytes to forward: normally the chunk itself; a
    dialect that asked upstream for more than the client did (OpenAI: the usage chunk, so a later
    replay can report usage) removes that part here."""

    def feed(self, chunk: bytes) -> bytes: ...

    @property
    def ended(self) -> bool:
        """The stream's terminator has been fed (OpenAI ``data: [DONE]``, Anthropic ``message_stop``):
        the answer is whole even if the client hangs up now, as the ``openai`` SDK does on
        ``[DONE]``, before the upstream's end of the body reaches the sidecar."""
        ...

    def finish(self, *, complete: bool) -> CachedAnswer | None:
        """``complete`` is False when the upstream stream broke or the client went away before the
        terminator; a recorder must return None then, and also when the stream lacked its terminator
        or ended by length."""
        ...


@runtime_checkable
class Dialect(Protocol):
    name: str
    routes: tuple[str, ...]
    health_path: str | None  # GET answering 200 when the upstream can serve (readiness)
    metrics_path: str | None  # the upstream's own Prometheus metrics, relayed at /upstream/metrics
    prefix_reset_path: str | None  # POST dropping the upstream's prefix cache (cache.resetPrefixCache)

    def parse_request(self, route: str, body: Mapping[str, Any]) -> CacheableRequest: ...

    def upstream_body(self, body: Mapping[str, Any], salt: str | None) -> dict[str, Any]: ...

    def bypass_body(self, body: Mapping[str, Any], salt: str | None) -> dict[str, Any]: ...

    def error_body(self, message: str, status: int) -> dict[str, Any]:
        """An error answer in the upstream's format, for a request the sidecar refuses itself."""
        ...

    def transport(self, cfg: SidecarConfig, **pool: Any) -> httpx.AsyncBaseTransport | None:
        """The transport of the upstream client (``pool``: httpx connection limits), or None for
        httpx's own. Called once at start; may raise ConfigError for an unreadable secret."""
        ...

    def answer_from_json(self, request: CacheableRequest, body: Mapping[str, Any]) -> CachedAnswer | None: ...

    def recorder(self, request: CacheableRequest) -> StreamRecorder: ...

    def replay_json(self, request: CacheableRequest, answer: CachedAnswer, info: ReplayInfo) -> bytes: ...

    def replay_sse(
        self, request: CacheableRequest, answer: CachedAnswer, info: ReplayInfo
    ) -> Iterator[bytes]: ...


def optional_of(body: Mapping[str, Any], key: str, *kinds: type) -> Any:
    """``body[key]`` if it is absent, null or of one of ``kinds``; else the request is unparsable.
    A bool is not an int here, as in JSON."""
    value = body.get(key)
    if value is None or (isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)):
        return value
    raise NotCacheable(UNPARSABLE)


def number_of(body: Mapping[str, Any], key: str) -> float | None:
    """A numeric field as a float (None when absent), unparsable when it is not a number a float holds."""
    value = optional_of(body, key, int, float)
    try:
        return None if value is None else float(value)
    except OverflowError:  # an integer beyond 1e308: JSON allows it, no sampler does
        raise NotCacheable(UNPARSABLE) from None


def canonical_json(value: Any) -> str:
    """Stable JSON for hashing: sorted keys, no whitespace."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


class SSEParser:
    """Incremental Server-Sent Events parser: feed bytes, get ``(event, data)`` for each complete event.

    Handles events split across network chunks and both LF and CRLF line endings."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> list[tuple[str | None, str]]:
        self._buf += chunk.replace(b"\r\n", b"\n")
        events: list[tuple[str | None, str]] = []
        while b"\n\n" in self._buf:
            raw, self._buf = self._buf.split(b"\n\n", 1)
            event: str | None = None
            data: list[str] = []
            for line in raw.decode("utf-8", errors="replace").split("\n"):
                if line.startswith(":") or not line:
                    continue
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "event":
                    event = value
                elif name == "data":
                    data.append(value)
            if data or event:
                events.append((event, "\n".join(data)))
        return events

    @property
    def pending(self) -> bool:
        return bool(self._buf.strip())


def sse_event(data: str, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {data}\n\n".encode()
