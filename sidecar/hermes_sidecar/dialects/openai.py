"""The OpenAI-compatible dialect (vLLM upstream): ``/v1/chat/completions`` and ``/v1/completions``."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import httpx

from hermes_sidecar.config import SidecarConfig
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

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"

# Sampling parameters that change the answer. Everything else in the body that is not listed in
# _NEUTRAL also partitions (under "shape"), so an option we have never heard of can only split the
# cache, never merge two different requests.
_SAMPLING = (
    "temperature", "top_p", "top_k", "min_p", "max_tokens", "max_completion_tokens", "stop",
    "stop_token_ids", "seed", "presence_penalty", "frequency_penalty", "repetition_penalty",
    "logit_bias", "length_penalty", "min_tokens", "ignore_eos", "best_of", "use_beam_search",
)  # fmt: skip
# Fields that do not change the answer text: the stream form (a hit is replayed in the form asked),
# bookkeeping fields, and the client's cache_salt (never trusted; the sidecar sets its own).
_NEUTRAL = frozenset({
    "model", "messages", "prompt", "stream", "stream_options", "user", "cache_salt", "metadata",
    "store", "request_id", "n", "service_tier", "prompt_cache_key", "safety_identifier",
})  # fmt: skip


def _text_of(content: Any) -> tuple[str, list[Any]]:
    """Split message content into its text and its non-text parts."""
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    if isinstance(content, list):
        texts: list[str] = []
        other: list[Any] = []
        for part in content:
            if isinstance(part, Mapping) and part.get("type") == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            else:
                other.append(part)
        return "\n".join(texts), other
    raise NotCacheable(UNPARSABLE)


class OpenAIDialect:
    name = "openai"
    routes: tuple[str, ...] = (CHAT, COMPLETIONS)
    # vLLM's routes; an upstream without them fails readiness (/health) or answers 502 (/metrics)
    health_path: str | None = "/health"
    metrics_path: str | None = "/metrics"
    prefix_reset_path: str | None = "/reset_prefix_cache"

    def __init__(self, *, store_truncated: bool = False) -> None:
        self.store_truncated = store_truncated

    # -- request -----------------------------------------------------------------------------------

    def parse_request(self, route: str, body: Mapping[str, Any]) -> CacheableRequest:
        # Wrong types are the upstream's to refuse (vLLM's validation answers 400): NotCacheable.
        model = optional_of(body, "model", str)
        stream = optional_of(body, "stream", bool)
        optional_of(body, "stream_options", Mapping)
        n = optional_of(body, "n", int)
        temperature = number_of(body, "temperature")
        if not model:
            raise NotCacheable("no model")
        if route == CHAT:
            system, turns = self._chat_turns(body.get("messages"))
        elif route == COMPLETIONS:
            prompt = optional_of(body, "prompt", str, list)
            if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
                prompt = prompt[0]
            if not isinstance(prompt, str):
                raise NotCacheable("prompt is not a single string")
            system, turns = "", (Turn("user", prompt),)
        else:
            raise NotCacheable(f"route {route} is not cacheable")
        sampling = {k: body[k] for k in _SAMPLING if k in body and body[k] is not None}
        shape = {k: v for k, v in body.items() if k not in _NEUTRAL and k not in _SAMPLING and v is not None}
        return CacheableRequest(
            dialect=self.name,
            route=route,
            model=model,
            system=system,
            turns=turns,
            shape=canonical_json(shape) if shape else "",
            sampling=sampling,
            stream=bool(stream),
            n=1 if n is None else n,
            temperature=temperature,
            body=body,
        )

    def _chat_turns(self, messages: Any) -> tuple[str, tuple[Turn, ...]]:
        if messages is not None and not isinstance(messages, list):
            raise NotCacheable(UNPARSABLE)
        if not messages:
            raise NotCacheable("no messages")
        system: list[str] = []
        turns: list[Turn] = []
        for m in messages:
            if not isinstance(m, Mapping) or not isinstance(m.get("role"), str):
                raise NotCacheable(UNPARSABLE)
            role = m["role"]
            text, other = _text_of(m.get("content"))
            if role in ("system", "developer"):
                if other:
                    raise NotCacheable("non-text system content")
                system.append(text)
                continue
            extra = {k: v for k, v in m.items() if k not in ("role", "content") and v is not None}
            structured = canonical_json({"parts": other, **extra}) if (other or extra) else ""
            if role in ("tool", "function"):
                turns.append(Turn("user", text, structured, is_tool_result=True))
            elif role in ("user", "assistant"):
                turns.append(Turn(role, text, structured))
            else:
                raise NotCacheable("unknown role")  # never the role itself: it is a metric label
        return "\n".join(system), tuple(turns)

    def upstream_body(self, body: Mapping[str, Any], salt: str | None) -> dict[str, Any]:
        out = dict(body)
        out.pop("cache_salt", None)
        if salt:
            out["cache_salt"] = salt
        opts = out.get("stream_options")
        if out.get("stream") is True and (opts is None or isinstance(opts, Mapping)):
            # Ask for the usage chunk even when the client did not, so the stored answer can report
            # usage on a later replay; the recorder strips it again for such a client. Options of
            # another type go up as they are, for the upstream to refuse.
            opts = dict(opts or {})
            opts["include_usage"] = True
            out["stream_options"] = opts
        return out

    def bypass_body(self, body: Mapping[str, Any], salt: str | None) -> dict[str, Any]:
        out = self.upstream_body(body, salt)
        # Without a recorder nothing strips what upstream_body asked for on top (the usage chunk).
        if "stream_options" in body:
            out["stream_options"] = body["stream_options"]
        else:
            out.pop("stream_options", None)
        return out

    def error_body(self, message: str, status: int) -> dict[str, Any]:
        # OpenAI's error object, as its SDKs read it (openai.BadRequestError carries .message)
        return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}

    def transport(self, cfg: SidecarConfig, **pool: Any) -> httpx.AsyncBaseTransport | None:
        return None

    # -- answers -----------------------------------------------------------------------------------

    def _storable(self, finish_reasons: list[Any]) -> bool:
        if not finish_reasons or any(r is None for r in finish_reasons):
            return False
        return self.store_truncated or all(r != "length" for r in finish_reasons)

    def answer_from_json(self, request: CacheableRequest, body: Mapping[str, Any]) -> CachedAnswer | None:
        want = "chat.completion" if request.route == CHAT else "text_completion"
        choices = body.get("choices")
        if body.get("object") != want or not isinstance(choices, list) or "error" in body:
            return None
        if not self._storable([c.get("finish_reason") for c in choices if isinstance(c, Mapping)]):
            return None
        return CachedAnswer(self.name, dict(body))

    def recorder(self, request: CacheableRequest) -> _Recorder:
        return _Recorder(self, request)

    def replay_json(self, request: CacheableRequest, answer: CachedAnswer, info: ReplayInfo) -> bytes:
        body = dict(answer.body)
        body["id"] = _fresh_id(request.route)
        body["created"] = int(time.time())
        return json.dumps(body, separators=(",", ":")).encode()

    def replay_sse(
        self, request: CacheableRequest, answer: CachedAnswer, info: ReplayInfo
    ) -> Iterator[bytes]:
        body = answer.body
        rid, created, model = _fresh_id(request.route), int(time.time()), body.get("model", request.model)
        chat = request.route == CHAT
        obj = "chat.completion.chunk" if chat else "text_completion"

        def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            doc = {"id": rid, "object": obj, "created": created, "model": model, "choices": choices, **extra}
            return sse_event(json.dumps(doc, separators=(",", ":")))

        for choice in body.get("choices", []):
            idx = choice.get("index", 0)
            if chat:
                msg = choice.get("message") or {}
                yield chunk([{"index": idx, "delta": {"role": "assistant", "content": ""},
                              "logprobs": None, "finish_reason": None}])  # fmt: skip
                for rkey in ("reasoning_content", "reasoning"):
                    if msg.get(rkey):
                        yield chunk([{"index": idx, "delta": {rkey: msg[rkey]}, "logprobs": None,
                                      "finish_reason": None}])  # fmt: skip
                if msg.get("content"):
                    yield chunk([{"index": idx, "delta": {"content": msg["content"]}, "logprobs": None,
                                  "finish_reason": None}])  # fmt: skip
                for k, call in enumerate(msg.get("tool_calls") or []):
                    yield chunk([{"index": idx, "delta": {"tool_calls": [{"index": k, **call}]},
                                  "logprobs": None, "finish_reason": None}])  # fmt: skip
                yield chunk([{"index": idx, "delta": {}, "logprobs": None,
                              "finish_reason": choice.get("finish_reason")}])  # fmt: skip
            else:
                yield chunk([{"index": idx, "text": choice.get("text", ""), "logprobs": None,
                              "finish_reason": None}])  # fmt: skip
                yield chunk([{"index": idx, "text": "", "logprobs": None,
                              "finish_reason": choice.get("finish_reason")}])  # fmt: skip
        opts = request.body.get("stream_options") or {}
        if isinstance(opts, Mapping) and opts.get("include_usage") and body.get("usage") is not None:
            yield chunk([], usage=body["usage"])
        yield b"data: [DONE]\n\n"


def _fresh_id(route: str) -> str:
    # A replay is a new response: it gets its own id, so clients that de-duplicate by id still work.
    return ("chatcmpl-" if route == CHAT else "cmpl-") + uuid.uuid4().hex


class _Recorder:
    """Rebuilds a chat.completion / text_completion object from the streamed chunks."""

    def __init__(self, dialect: OpenAIDialect, request: CacheableRequest) -> None:
        self._dialect = dialect
        self._request = request
        self._parser = SSEParser()
        opts = request.body.get("stream_options") or {}
        self._client_wants_usage = isinstance(opts, Mapping) and bool(opts.get("include_usage"))
        self._done = False
        self._broken = False
        self._head: dict[str, Any] = {}
        self._choices: dict[int, dict[str, Any]] = {}
        self._usage: Any = None

    def feed(self, chunk: bytes) -> bytes:
        forward: list[bytes] = []
        for event, data in self._parser.feed(chunk):
            drop = self._absorb(data)
            if not drop:
                forward.append(sse_event(data, event))
        if self._client_wants_usage:
            return chunk  # nothing to strip: forward the upstream bytes as they came
        return b"".join(forward)

    @property
    def ended(self) -> bool:
        return self._done

    def _absorb(self, data: str) -> bool:
        """Record one event; True when it must not reach the client (a usage chunk it did not ask for)."""
        if data.strip() == "[DONE]":
            self._done = True
            return False
        try:
            doc = json.loads(data)
        except ValueError:
            self._broken = True
            return False
        if not isinstance(doc, dict) or "error" in doc:
            self._broken = True
            return False
        for k in ("id", "created", "model"):
            self._head.setdefault(k, doc.get(k))
        if doc.get("usage") is not None:
            self._usage = doc["usage"]
        choices = doc.get("choices") or []
        for c in choices:
            st = self._choices.setdefault(int(c.get("index", 0)), {"text": [], "reasoning": {}, "tools": {}})
            if c.get("finish_reason") is not None:
                st["finish_reason"] = c["finish_reason"]
            if "text" in c:
                st["text"].append(c.get("text") or "")
            delta = c.get("delta") or {}
            if delta.get("content"):
                st["text"].append(delta["content"])
            for rkey in ("reasoning_content", "reasoning"):
                if delta.get(rkey):
                    st["reasoning"].setdefault(rkey, []).append(delta[rkey])
            for call in delta.get("tool_calls") or []:
                tc = st["tools"].setdefault(int(call.get("index", 0)), {"function": {"arguments": ""}})
                for k in ("id", "type"):
                    if call.get(k):
                        tc[k] = call[k]
                fn = call.get("function") or {}
                if fn.get("name"):
                    tc["function"]["name"] = fn["name"]
                tc["function"]["arguments"] += fn.get("arguments") or ""
        return not choices and doc.get("usage") is not None and not self._client_wants_usage

    def finish(self, *, complete: bool) -> CachedAnswer | None:
        if not complete or not self._done or self._broken or self._parser.pending or not self._choices:
            return None
        reasons = [st.get("finish_reason") for st in self._choices.values()]
        if not self._dialect._storable(reasons):
            return None
        chat = self._request.route == CHAT
        choices: list[dict[str, Any]] = []
        for idx in sorted(self._choices):
            st = self._choices[idx]
            text = "".join(st["text"])
            if chat:
                msg: dict[str, Any] = {"role": "assistant", "content": text}
                for rkey, parts in st["reasoning"].items():
                    msg[rkey] = "".join(parts)
                if st["tools"]:
                    msg["tool_calls"] = [{"type": "function", **st["tools"][k]} for k in sorted(st["tools"])]
                choices.append({"index": idx, "message": msg, "logprobs": None,
                                "finish_reason": st["finish_reason"]})  # fmt: skip
            else:
                choices.append({"index": idx, "text": text, "logprobs": None,
                                "finish_reason": st["finish_reason"]})  # fmt: skip
        body = {
            "id": self._head.get("id"),
            "object": "chat.completion" if chat else "text_completion",
            "created": self._head.get("created"),
            "model": self._head.get("model") or self._request.model,
            "choices": choices,
            "usage": self._usage,
        }
        return CachedAnswer(self._dialect.name, body)
