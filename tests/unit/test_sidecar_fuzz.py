"""Hostile input (issue 15): whatever a client sends, the sidecar never answers 5xx itself and logs no
exception.

Generated bodies (valid requests with a wrong type in any field, any JSON, broken JSON, deep nesting,
huge strings), headers (tenant, credentials, cache-control, tags, in any byte encoding) and methods go
through the real app (``create_app``, memory store, the real local embedder), in process through
httpx's ASGI transport so an exception the app raises surfaces here instead of as a 500. Upstream is a
strict fake on a real port: ``tests/fakes/openai_upstream.py`` for the OpenAI routes, and for
``/v1/messages`` the Anthropic fake behind a validator in this file. Both answer 400 to what they
refuse and never 5xx. The inputs that once made the sidecar answer 500 are kept as explicit cases.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fakes.anthropic_upstream import FakeAnthropic
from fakes.openai_upstream import FakeOpenAI, run_server
from hermes_sidecar.app import create_app
from hermes_sidecar.config import SidecarConfig, parse_config
from hermes_sidecar.embed import LocalEmbedder
from hermes_sidecar.proxy import json_depth

CHAT, COMPLETIONS, MESSAGES = "/v1/chat/completions", "/v1/completions", "/v1/messages"
TOKEN = "s3cret-token"
MAX_DEPTH = 64
MAX_BYTES = 64 * 1024

# Fast and the same on every run: CI shows the same examples as a laptop.
FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


class Errors(logging.Handler):
    """Records at ERROR or above, or carrying a traceback, from any logger."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info:
            self.records.append(record)


class Sidecar:
    """The real app on its own event loop, driven through httpx's ASGI transport."""

    def __init__(self, cfg: SidecarConfig, embedder: LocalEmbedder, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.app = create_app(cfg, embedder=embedder)
        self._lifespan = self.app.router.lifespan_context(self.app)
        self.loop.run_until_complete(self._lifespan.__aenter__())
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://sidecar"
        )
        self.errors = Errors()
        logging.getLogger().addHandler(self.errors)

    def send(
        self,
        method: str,
        path: str,
        content: bytes | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> httpx.Response:
        self.errors.records.clear()
        try:
            resp = self.loop.run_until_complete(
                self.client.request(method, path, content=content, headers=headers or [], timeout=30)
            )
        except Exception as exc:  # the app raised: Starlette would have answered 500
            raise AssertionError(f"the sidecar raised {type(exc).__name__}: {exc}") from exc
        assert resp.status_code < 500, f"sidecar answered {resp.status_code}: {resp.text[:500]}"
        logged = [f"{r.name}: {r.getMessage()[:300]}" for r in self.errors.records]
        assert not logged, f"the sidecar logged errors: {logged}"
        return resp

    def metric(self, name: str, **labels: str) -> float:
        value = self.app.state.metrics.registry.get_sample_value(name, labels)
        return float(value or 0.0)

    def close(self) -> None:
        logging.getLogger().removeHandler(self.errors)
        self.loop.run_until_complete(self.client.aclose())
        self.loop.run_until_complete(self._lifespan.__aexit__(None, None, None))


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    return LocalEmbedder()


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    # one loop for both apps: they share the embedder, whose worker belongs to the loop it started on
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def token_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("admin") / "token"
    path.write_text(TOKEN + "\n")
    return path


def _config(upstream: str, token_file: Path, **extra: Any) -> SidecarConfig:
    return parse_config(
        {
            "upstream": {"url": upstream, **extra},
            "cache": {"backend": "memory"},
            "admin": {"tokenFile": str(token_file)},
            "limits": {"maxJsonDepth": MAX_DEPTH, "maxBodyBytes": MAX_BYTES},
        }
    )


@pytest.fixture(scope="module")
def openai_sidecar(
    embedder: LocalEmbedder, token_file: Path, loop: asyncio.AbstractEventLoop
) -> Iterator[Sidecar]:
    with run_server(FakeOpenAI(faults=False).app()) as url:
        sidecar = Sidecar(_config(url, token_file), embedder, loop)
        try:
            yield sidecar
        finally:
            sidecar.close()


# -- a strict Anthropic upstream --------------------------------------------------------------------


def _refuse(message: str) -> Response:
    error = {"type": "invalid_request_error", "message": message}
    return JSONResponse({"type": "error", "error": error}, 400, headers={"x-fake-upstream": "anthropic"})


def _anthropic_problem(body: Any) -> str | None:
    """What the Messages API's validation would refuse in ``body`` (a subset), or None."""
    if not isinstance(body, Mapping):
        return "the body must be a JSON object"
    if not isinstance(body.get("model"), str):
        return "model: a string is required"
    if not isinstance(body.get("max_tokens"), int) or isinstance(body["max_tokens"], bool):
        return "max_tokens: an integer is required"
    for key, kind in (("stream", bool), ("metadata", dict), ("cache_control", dict)):
        if key in body and body[key] is not None and not isinstance(body[key], kind):
            return f"{key}: must be a {kind.__name__}"
    for key in ("temperature", "top_p", "top_k"):
        value = body.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            return f"{key}: must be a number"
    stops = body.get("stop_sequences")
    if stops is not None and (not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)):
        return "stop_sequences: must be a list of strings"
    tools = body.get("tools")
    if tools is not None and (not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools)):
        return "tools: must be a list of objects"

    def blocks_ok(value: Any) -> bool:
        if isinstance(value, str):
            return True
        return isinstance(value, list) and all(
            isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str) for b in value
        )

    if "system" in body and body["system"] is not None and not blocks_ok(body["system"]):
        return "system: a string or a list of text blocks"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: a non-empty list is required"
    for i, m in enumerate(messages):
        if (
            not isinstance(m, dict)
            or m.get("role") not in ("user", "assistant")
            or not blocks_ok(m.get("content"))
        ):
            return f"messages.{i}: a role (user or assistant) and text content are required"
    return None


def strict_anthropic() -> Starlette:
    fake = FakeAnthropic().app

    async def messages(request: Request) -> Response:
        raw = await request.body()
        try:
            problem = _anthropic_problem(json.loads(raw))
        except (ValueError, RecursionError):
            problem = "request body is not valid JSON"
        if problem is not None:
            return _refuse(problem)
        scope = dict(request.scope)
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}

        responses: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            responses.append(message)

        await fake(scope, receive, send)
        start = next(m for m in responses if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in responses if m["type"] == "http.response.body")
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in start["headers"]}
        headers.pop("content-length", None)
        return Response(body, start["status"], headers={**headers, "x-fake-upstream": "anthropic"})

    async def other(request: Request) -> Response:
        return JSONResponse(
            {"type": "error", "error": {"type": "not_found_error", "message": "no route"}}, 404
        )

    return Starlette(
        routes=[
            Route(MESSAGES, messages, methods=["POST"]),
            Route("/{path:path}", other, methods=["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]),
        ]
    )


@pytest.fixture(scope="module")
def anthropic_sidecar(
    embedder: LocalEmbedder,
    token_file: Path,
    tmp_path_factory: pytest.TempPathFactory,
    loop: asyncio.AbstractEventLoop,
) -> Iterator[Sidecar]:
    key = tmp_path_factory.mktemp("anthropic") / "key"
    key.write_text("sk-ant-test\n")
    with run_server(strict_anthropic()) as url:
        sidecar = Sidecar(_config(url, token_file, kind="anthropic", apiKeyFile=str(key)), embedder, loop)
        try:
            yield sidecar
        finally:
            sidecar.close()


# -- what is generated ------------------------------------------------------------------------------

# Numbers a decoder returns but other code may not expect: bigger than a float, negative zero.
_odd_numbers = st.sampled_from([10**400, -(10**400), -0.0, 1e308, 2**63, -1])
_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    _scalars | _odd_numbers | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
words = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)


_parts = st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": words}), min_size=1, max_size=3)
_chat_messages = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["system", "user", "assistant", "developer"]), "content": words | _parts},
        optional={"name": st.from_regex(r"[a-z]{1,8}", fullmatch=True)},
    ),
    min_size=1,
    max_size=3,
)
_SAMPLING: dict[str, st.SearchStrategy[Any]] = {
    "stream": st.booleans(),
    "stream_options": st.fixed_dictionaries({}, optional={"include_usage": st.booleans()}),
    "temperature": st.sampled_from([0, 0.0, 0.5, 1.5]),
    "top_p": st.floats(0, 1),
    "n": st.integers(1, 3),
    "max_tokens": st.integers(1, 64),
    "stop": st.lists(words, max_size=2),
    "seed": st.integers(0, 2**31),
    "user": words,
    "cache_salt": words,
    "response_format": st.just({"type": "json_object"}),
}
# Valid requests (they reach the cache: miss, stored, hit, replayed as JSON or SSE)...
chat_requests = st.fixed_dictionaries(
    {"model": st.just("tiny-llama"), "messages": _chat_messages}, optional=_SAMPLING
)
completion_requests = st.fixed_dictionaries(
    {"model": st.just("tiny-llama"), "prompt": words | st.lists(words, min_size=1, max_size=2)},
    optional=_SAMPLING,
)
_blocks = st.lists(
    st.fixed_dictionaries({"type": st.just("text"), "text": words.filter(bool)},
                          optional={"cache_control": st.just({"type": "ephemeral"})}),
    min_size=1,
    max_size=3,
)  # fmt: skip
messages_requests = st.fixed_dictionaries(
    {
        "model": st.just("claude-sonnet-4-5"),
        "max_tokens": st.integers(1, 64),
        "messages": st.lists(
            st.fixed_dictionaries(
                {"role": st.sampled_from(["user", "assistant"]), "content": words.filter(bool) | _blocks}
            ),
            min_size=1,
            max_size=3,
        ),
    },
    optional={
        "system": words | _blocks,
        "stream": st.booleans(),
        "temperature": st.floats(0, 1),
        "top_k": st.integers(1, 5),
        "stop_sequences": st.lists(words, max_size=2),
        "metadata": st.just({"user_id": "u1"}),
    },
)
# ... and the places where one of them gets a value of any type.
CHAT_FIELDS = [
    *("", "model", "messages", "messages.0", "messages.0.role", "messages.0.content", "messages.0.content.0"),
    *("messages.0.content.0.text", *_SAMPLING, "stream_options.include_usage", "tools", "tool_choice"),
]
COMPLETION_FIELDS = ["", "model", "prompt", "prompt.0", *_SAMPLING, "stream_options.include_usage"]
MESSAGES_FIELDS = [
    *("", "model", "max_tokens", "messages", "messages.0", "messages.0.role", "messages.0.content"),
    *("messages.0.content.0", "messages.0.content.0.type", "messages.0.content.0.text"),
    *("messages.0.content.0.cache_control", "system", "system.0", "system.0.text", "stream", "temperature"),
    *("top_k", "stop_sequences", "metadata", "cache_control", "tools", "tool_choice", "thinking"),
]


def _put(body: Any, path: str, value: Any) -> Any:
    """``body`` with the value at ``path`` (dotted; "" is the whole body) replaced, where it exists."""
    if not path:
        return value
    head, _, rest = path.partition(".")
    if isinstance(body, dict):
        return {**body, head: _put(body.get(head), rest, value)}
    if isinstance(body, list) and head.isdigit() and int(head) < len(body):
        return [*body[: int(head)], _put(body[int(head)], rest, value), *body[int(head) + 1 :]]
    return body


def one_wrong(requests: st.SearchStrategy[dict[str, Any]], fields: list[str]) -> st.SearchStrategy[Any]:
    return st.builds(_put, requests, st.sampled_from(fields), json_values)


def _dump(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


def bodies(requests: st.SearchStrategy[dict[str, Any]], fields: list[str]) -> st.SearchStrategy[bytes]:
    """Request bodies: valid requests; the same with a value of any type in one field, or in two; any
    JSON value; JSON cut short; random bytes; deep nesting; a huge string."""
    wrong = one_wrong(requests, fields)
    return st.one_of(
        requests.map(_dump),
        wrong.map(_dump),
        st.builds(_put, wrong, st.sampled_from(fields), json_values).map(_dump),
        json_values.map(_dump),
        st.tuples(requests.map(_dump), st.integers(0, 200)).map(lambda t: t[0][: t[1]]),
        st.binary(max_size=64),
        st.integers(MAX_DEPTH - 2, MAX_DEPTH + 200).map(lambda n: b"[" * n + b"]" * n),
        st.integers(MAX_DEPTH - 2, 6000).map(lambda n: b'{"model":' * n + b"1" + b"}" * n),
        st.integers(1, MAX_BYTES).map(lambda n: _dump({"model": "tiny-llama", "prompt": "x" * n})),
    )


def _latin1(value: str) -> bytes:
    return value.encode("latin-1", "replace")


# Header values as bytes: any octet a server lets through (not CR, LF or NUL), or UTF-8 text.
header_values = st.one_of(
    st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"").replace(b"\0", b"")),
    words.map(lambda t: t.replace("\r", "").replace("\n", "").replace("\0", "").encode()),
    st.sampled_from(
        [b"Bearer \xc3\xa9", b"Bearer \xff\xfe", "Bearer s3cret-t\u00f6ken".encode(), b"no-store"]
    ),
)
_HEADER_NAMES = [
    *("x-tenant-id", "authorization", "x-api-key", "api-key", "cache-control", "x-hermes-cache-tags"),
    *("content-type", "x-prometheus-scrape-timeout-seconds", "accept"),
]
headers = st.lists(st.tuples(st.sampled_from(_HEADER_NAMES).map(str.encode), header_values), max_size=4)


def _valid_json(body: bytes) -> bool:
    try:
        json.loads(body, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    except (ValueError, RecursionError):
        return False
    return True


def _depth(body: bytes) -> int:
    depth = deepest = 0
    for char in re.sub(r'"(?:[^"\\]|\\.)*"', "", body.decode("utf-8", "replace")):
        depth += char in "[{"
        depth -= char in "]}"
        deepest = max(deepest, depth)
    return deepest


def check(
    sidecar: Sidecar,
    route: str,
    body: bytes,
    hdrs: list[tuple[bytes, bytes]],
    error_format: Callable[[Any], None],
) -> httpx.Response:
    """The property: never a 5xx or a logged exception (``send``); a body that is not JSON, too deep or
    too large is the client's 4xx in the upstream's error format."""
    resp = sidecar.send("POST", route, body, hdrs)
    refusable = not _valid_json(body) or len(body) > MAX_BYTES or _depth(body) > MAX_DEPTH
    if refusable and "x-fake-upstream" not in resp.headers:
        assert resp.status_code in (400, 413), resp.text[:300]
        error_format(resp.json())
    return resp


def openai_error(doc: Any) -> None:
    assert set(doc) == {"error"}, doc
    assert doc["error"]["type"] == "invalid_request_error"
    assert set(doc["error"]) == {"message", "type", "param", "code"}
    assert isinstance(doc["error"]["message"], str) and doc["error"]["message"]


def anthropic_error(doc: Any) -> None:
    assert doc["type"] == "error", doc
    assert doc["error"]["type"] in ("invalid_request_error", "request_too_large")
    assert isinstance(doc["error"]["message"], str) and doc["error"]["message"]


# -- the properties ---------------------------------------------------------------------------------


@FUZZ
@given(body=bodies(chat_requests, CHAT_FIELDS), hdrs=headers)
@example(body=b'{"model":"tiny-llama","messages":[{"role":"user","content":"hi"}],"stream":true,'
         b'"stream_options":"include_usage"}', hdrs=[])  # fmt: skip
@example(body=b'{"model":"tiny-llama","messages":[{"role":"user","content":"hi"}],"stream":true,'
         b'"stream_options":1.5}', hdrs=[])  # fmt: skip
@example(body=b"[" * 5000 + b"]" * 5000, hdrs=[])
@example(body=_dump({"model": "tiny-llama", "messages": [{"role": "user", "content": "hi"}]}),
         hdrs=[(b"x-tenant-id", "t\u00e9nant".encode())])  # fmt: skip
def test_chat_completions_never_5xx(
    openai_sidecar: Sidecar, body: bytes, hdrs: list[tuple[bytes, bytes]]
) -> None:
    check(openai_sidecar, CHAT, body, hdrs, openai_error)


@FUZZ
@given(body=bodies(completion_requests, COMPLETION_FIELDS), hdrs=headers)
@example(body=b'{"model":"tiny-llama","prompt":"hi","stream":1,"stream_options":[1]}', hdrs=[])
@example(body=b'{"model":"tiny-llama","prompt":"hi","temperature":1' + b"0" * 400 + b"}", hdrs=[])
def test_completions_never_5xx(openai_sidecar: Sidecar, body: bytes, hdrs: list[tuple[bytes, bytes]]) -> None:
    check(openai_sidecar, COMPLETIONS, body, hdrs, openai_error)


@FUZZ
@given(body=bodies(messages_requests, MESSAGES_FIELDS), hdrs=headers)
@example(body=b'{"model":"claude-sonnet-4-5","max_tokens":8,"messages":[{"role":"user","content":"hi"}],'
         b'"stream":"yes"}', hdrs=[])  # fmt: skip
@example(body=b"{" * 5000, hdrs=[(b"x-api-key", b"\xff")])
def test_anthropic_messages_never_5xx(
    anthropic_sidecar: Sidecar, body: bytes, hdrs: list[tuple[bytes, bytes]]
) -> None:
    check(anthropic_sidecar, MESSAGES, body, hdrs, anthropic_error)


_PATHS = [
    *(CHAT, COMPLETIONS, "/admin/stats", "/admin/flush", "/admin/invalidate", "/admin/nothing", "/healthz"),
    *("/readyz", "/metrics", "/upstream/metrics", "/v1/models", "/tokenize", "/v1/chat/completions/x"),
]
_admin_bodies = st.one_of(
    st.fixed_dictionaries({}, optional={"tag": json_values, "tags": json_values}).map(_dump),
    json_values.map(_dump),
    st.binary(max_size=64),
    st.just(b"[" * 5000),
)


@FUZZ
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]),
    path=st.sampled_from(_PATHS)
    | words.map(lambda w: "/" + "".join(c for c in w if c.isalnum() or c in "/-_.")),
    body=st.none() | _admin_bodies,
    auth=st.none() | st.just(f"Bearer {TOKEN}".encode()) | header_values,
    hdrs=headers,
)
@example(method="GET", path="/admin/stats", body=None, auth="Bearer t\u00f6ken".encode(), hdrs=[])
@example(method="POST", path="/admin/invalidate", body=b"[" * 5000, auth=f"Bearer {TOKEN}".encode(), hdrs=[])
def test_every_method_and_route_never_5xx(
    openai_sidecar: Sidecar,
    method: str,
    path: str,
    body: bytes | None,
    auth: bytes | None,
    hdrs: list[tuple[bytes, bytes]],
) -> None:
    hdrs = [h for h in hdrs if h[0] != b"authorization"] + (
        [(b"authorization", auth)] if auth is not None else []
    )
    openai_sidecar.send(method, path, body, hdrs)


# -- the exact inputs of issue 15, and what the client gets ------------------------------------------

_HI = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    "body",
    [
        {
            "model": "tiny-llama",
            "messages": _HI,
            "stream": True,
            "stream_options": "include_usage",
        },  # ValueError
        {"model": "tiny-llama", "messages": _HI, "stream": True, "stream_options": 1.5},  # TypeError: float
        {"model": "tiny-llama", "messages": _HI, "stream": True, "stream_options": 3},  # TypeError: int
        {"model": "tiny-llama", "messages": _HI, "stream": True, "stream_options": True},  # TypeError: bool
        {"model": "tiny-llama", "messages": _HI, "stream": "yes"},
        {"model": "tiny-llama", "messages": _HI, "temperature": 10**400},
        {"model": 7, "messages": _HI},
        {"model": "tiny-llama", "messages": [{"role": ["user"], "content": "hi"}]},
    ],
)
def test_wrong_types_pass_through_uncached_and_upstream_answers(
    openai_sidecar: Sidecar, body: dict[str, Any]
) -> None:
    before = openai_sidecar.metric("hermes_cache_bypass_total", reason="unparsable")
    resp = openai_sidecar.send("POST", CHAT, _dump(body))
    assert resp.status_code == 400 and resp.headers["x-fake-upstream"] == "openai"  # vLLM's own refusal
    assert resp.headers["x-hermes-cache"] == "bypass"
    assert openai_sidecar.metric("hermes_cache_bypass_total", reason="unparsable") == before + 1


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"[" * 5000 + b"]" * 5000, "nested deeper than limits.maxJsonDepth"),
        (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), "nested deeper than limits.maxJsonDepth"),
        (b'{"model": "tiny-llama", "messages": [', "not valid JSON"),
        (b"\xff\xfe{}", "not valid JSON"),
        (b'{"model": "tiny-llama", "temperature": NaN, "messages": []}', "not valid JSON"),
        (_dump({"model": "tiny-llama", "prompt": "x" * MAX_BYTES}), "larger than limits.maxBodyBytes"),
    ],
)
@pytest.mark.parametrize("route", [CHAT, COMPLETIONS])
def test_unreadable_body_is_a_4xx_in_openai_format(
    openai_sidecar: Sidecar, route: str, body: bytes, says: str
) -> None:
    before = openai_sidecar.metric(
        "hermes_cache_requests_total", result="bypass", tenant="anonymous", variant="default"
    )
    resp = openai_sidecar.send("POST", route, body)
    assert resp.status_code == (413 if "larger" in says else 400)
    assert "x-fake-upstream" not in resp.headers  # answered by the sidecar, never forwarded
    openai_error(resp.json())
    assert says in resp.json()["error"]["message"]
    assert (
        openai_sidecar.metric(
            "hermes_cache_requests_total", result="bypass", tenant="anonymous", variant="default"
        )
        == before + 1
    )


def test_unreadable_body_is_a_4xx_in_anthropic_format(anthropic_sidecar: Sidecar) -> None:
    resp = anthropic_sidecar.send("POST", MESSAGES, b"[" * 5000)
    assert resp.status_code == 400
    anthropic_error(resp.json())
    assert "nested deeper than limits.maxJsonDepth" in resp.json()["error"]["message"]


@pytest.mark.parametrize(
    "value",
    ["t\u00e9nant".encode(), "\u79df\u6237".encode(), b"\xff\xfe\x80", b"  \t "],
)
def test_tenant_header_in_any_encoding(openai_sidecar: Sidecar, value: bytes) -> None:
    body = _dump(
        {"model": "tiny-llama", "messages": [{"role": "user", "content": "what is the boiling point"}]}
    )
    first = openai_sidecar.send("POST", CHAT, body, [(b"x-tenant-id", value), (b"x-api-key", value)])
    again = openai_sidecar.send("POST", CHAT, body, [(b"x-tenant-id", value), (b"x-api-key", value)])
    assert first.status_code == again.status_code == 200
    assert again.headers["x-hermes-cache"] == "hit-exact"
    assert again.json()["choices"] == first.json()["choices"]


@pytest.mark.parametrize(
    ("declared", "status"),
    [(b"\xb2", 200), (b"9" * 5000, 200), (b"-1", 200), (b"1e3", 200), (b"9" * 19, 413), (b"9" * 20, 200)],
)
def test_odd_content_length_is_no_crash(openai_sidecar: Sidecar, declared: bytes, status: int) -> None:
    # a declared length the sidecar cannot use is ignored: the bytes read are counted all the same
    body = _dump({"model": "tiny-llama", "messages": [{"role": "user", "content": "hello there"}]})
    resp = openai_sidecar.send("POST", CHAT, body, [(b"content-length", declared)])
    assert resp.status_code == status


def test_admin_token_with_non_ascii_bytes_is_refused(openai_sidecar: Sidecar) -> None:
    for token in ["Bearer t\u00f6ken".encode(), b"Bearer \xff", f"Bearer {TOKEN}\u00e9".encode()]:
        assert (
            openai_sidecar.send("GET", "/admin/stats", None, [(b"authorization", token)]).status_code == 401
        )
    ok = openai_sidecar.send("GET", "/admin/stats", None, [(b"authorization", f"Bearer {TOKEN}".encode())])
    assert ok.status_code == 200


def _nesting(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_nesting, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_nesting, value), default=0)
    return 0


@FUZZ
@given(value=json_values, limit=st.integers(1, 6))
def test_json_depth_is_the_nesting_up_to_the_limit(value: Any, limit: int) -> None:
    depth = json_depth(value, limit)
    assert depth == _nesting(value) if _nesting(value) <= limit else depth == limit + 1
