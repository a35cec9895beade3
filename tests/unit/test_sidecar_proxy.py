"""The sidecar with the memory store in front of an OpenAI-compatible upstream it has never seen.

The upstream is a small real HTTP server (tests/fakes/openai_upstream.py) that numbers its answers,
so a replayed answer is recognisable; the sidecar runs under uvicorn like in production.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fakes.openai_upstream import FakeOpenAI, run_server
from hermes_sidecar.app import create_app
from hermes_sidecar.config import parse_config
from hermes_sidecar.embed import LocalEmbedder

CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    return LocalEmbedder()


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[FakeOpenAI, str]]:
    fake = FakeOpenAI()
    with run_server(fake.app()) as url:
        yield fake, url


@pytest.fixture(scope="module")
def token_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("admin") / "token"
    path.write_text("s3cret-token\n")
    return path


@pytest.fixture(scope="module")
def sidecar(
    upstream: tuple[FakeOpenAI, str], token_file: Path, embedder: LocalEmbedder
) -> Iterator[httpx.Client]:
    cfg = parse_config(
        {
            "upstream": {"url": upstream[1]},
            "cache": {"backend": "memory", "tags": {"rules": [{"pattern": "invoice", "tag": "billing"}]}},
            "admin": {"tokenFile": str(token_file)},
        }
    )
    with (
        run_server(create_app(cfg, embedder=embedder), lifespan="on") as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        yield client


def ask(
    client: httpx.Client,
    question: str | list[dict[str, Any]],
    *,
    tenant: str = "acme",
    stream: bool = False,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    messages = [{"role": "user", "content": question}] if isinstance(question, str) else question
    body = {"model": "tiny-llama", "messages": messages, "stream": stream, **(extra or {})}
    before = settled(client)
    resp = client.post(CHAT, json=body, headers={"x-tenant-id": tenant, **(headers or {})})
    if resp.headers.get("x-hermes-cache") == "miss":
        # a miss is stored (or refused) in the background after the answer went out: wait for it
        deadline = time.monotonic() + 5
        while settled(client) == before and time.monotonic() < deadline:
            time.sleep(0.01)
    return resp


def settled(client: httpx.Client) -> float:
    """How many misses have finished their store attempt (stored or refused), from /metrics."""
    total = 0.0
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(("hermes_cache_stored_total", "hermes_cache_not_stored_total")):
            total += float(line.rsplit(" ", 1)[1])
    return total


def content(resp: httpx.Response) -> str:
    text: str = resp.json()["choices"][0]["message"]["content"]
    return text


def sse_events(raw: bytes) -> list[str]:
    """Split a byte stream into SSE data payloads, checking the framing on the way."""
    assert raw.endswith(b"\n\n"), "an SSE stream ends with a blank line"
    payloads = []
    for block in raw.decode().split("\n\n")[:-1]:
        lines = block.split("\n")
        assert all(line.startswith("data: ") for line in lines), block
        payloads.append("\n".join(line[6:] for line in lines))
    return payloads


def streamed_text(raw: bytes) -> tuple[str, list[dict[str, Any]]]:
    events = sse_events(raw)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    return text, chunks


def test_repeat_is_hit_exact_with_the_same_answer(sidecar: httpx.Client) -> None:
    first = ask(sidecar, "How do I reset my router to factory settings?")
    again = ask(sidecar, "How do I reset my router to factory settings?")
    assert first.headers["x-hermes-cache"] == "miss"
    assert again.headers["x-hermes-cache"] == "hit-exact"
    assert content(again) == content(first)
    assert again.json()["usage"] == first.json()["usage"]
    assert again.json()["id"] != first.json()["id"]


def test_close_paraphrase_is_hit_semantic(sidecar: httpx.Client) -> None:
    first = ask(sidecar, "How do I turn on two-factor authentication for my account?")
    para = ask(sidecar, "How can I turn on two-factor authentication on my account?")
    assert para.headers["x-hermes-cache"] == "hit-semantic"
    assert float(para.headers["x-hermes-cache-similarity"]) >= 0.6
    assert content(para) == content(first)


@pytest.mark.parametrize(
    ("original", "variant"),
    [
        ("How do I enable dark mode in the mobile app?", "How do I disable dark mode in the mobile app?"),
        ("Can I return a jacket after 14 days?", "Can I return a jacket after 30 days?"),
        ("How do I export my contacts from Salesforce?", "How do I export my contacts from HubSpot?"),
        ("Is the museum open on Saturday morning?", "Is the museum not open on Saturday morning?"),
    ],
)
def test_negation_number_or_entity_variant_is_miss(
    sidecar: httpx.Client, original: str, variant: str
) -> None:
    first = ask(sidecar, original, tenant="variants")
    other = ask(sidecar, variant, tenant="variants")
    assert other.headers["x-hermes-cache"] == "miss"
    assert content(other) != content(first)


def test_other_tenant_never_gets_the_entry(sidecar: httpx.Client, upstream: tuple[FakeOpenAI, str]) -> None:
    q = "What documents do I need to open a business account?"
    ask(sidecar, q, tenant="tenant-a")
    assert ask(sidecar, q, tenant="tenant-a").headers["x-hermes-cache"] == "hit-exact"
    other = ask(sidecar, q, tenant="tenant-b")
    assert other.headers["x-hermes-cache"] == "miss"
    salts = {r.get("cache_salt") for r in upstream[0].requests if r["messages"][-1]["content"] == q}
    assert len(salts) == 2 and None not in salts


def test_tenant_from_credential_when_no_tenant_header(sidecar: httpx.Client) -> None:
    q = "Which ports does the printer service listen on?"
    body = {"model": "tiny-llama", "messages": [{"role": "user", "content": q}]}
    before = settled(sidecar)
    sidecar.post(CHAT, json=body, headers={"authorization": "Bearer key-one"})
    while settled(sidecar) == before:
        time.sleep(0.01)
    same = sidecar.post(CHAT, json=body, headers={"authorization": "Bearer key-one"})
    other = sidecar.post(CHAT, json=body, headers={"authorization": "Bearer key-two"})
    assert same.headers["x-hermes-cache"] == "hit-exact"
    assert other.headers["x-hermes-cache"] == "miss"


def test_client_cannot_choose_the_cache_salt(sidecar: httpx.Client, upstream: tuple[FakeOpenAI, str]) -> None:
    q = "Explain salted prefix caching in one line"
    ask(sidecar, q, tenant="salty", extra={"cache_salt": "attacker-chosen"})
    seen = [r for r in upstream[0].requests if r["messages"][-1]["content"] == q]
    assert seen and seen[-1]["cache_salt"] != "attacker-chosen"


def test_streamed_miss_then_streamed_hit_is_valid_sse(sidecar: httpx.Client) -> None:
    q = "Write two sentences about lighthouses"
    first = ask(sidecar, q, tenant="stream", stream=True)
    assert first.headers["x-hermes-cache"] == "miss"
    text, first_chunks = streamed_text(first.content)
    # the client did not ask for usage: the usage chunk the sidecar requested for itself is stripped
    assert not any("usage" in c and c["usage"] for c in first_chunks)
    hit = ask(sidecar, q, tenant="stream", stream=True)
    assert hit.headers["x-hermes-cache"] == "hit-exact"
    assert hit.headers["content-type"].startswith("text/event-stream")
    replay, chunks = streamed_text(hit.content)
    assert replay == text
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    # and the same entry answers a JSON request
    as_json = ask(sidecar, q, tenant="stream")
    assert as_json.headers["x-hermes-cache"] == "hit-exact"
    assert content(as_json) == text


def test_streamed_hit_reports_the_stored_usage(sidecar: httpx.Client) -> None:
    q = "List three uses of copper"
    opts = {"stream_options": {"include_usage": True}}
    first = ask(sidecar, q, tenant="usage", stream=True, extra=opts)
    _, first_chunks = streamed_text(first.content)
    usage = [c["usage"] for c in first_chunks if c.get("usage")]
    assert len(usage) == 1
    hit = ask(sidecar, q, tenant="usage", stream=True, extra=opts)
    _, chunks = streamed_text(hit.content)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == usage[0]


@pytest.mark.parametrize(("marker", "stream"), [("[[500]]", False), ("[[500]]", True), ("[[length]]", False)])
def test_errors_and_cut_answers_are_never_cached(sidecar: httpx.Client, marker: str, stream: bool) -> None:
    q = f"{marker} Tell me about failure modes ({stream})"
    first = ask(sidecar, q, tenant="faults", stream=stream)
    assert first.headers["x-hermes-cache"] == "miss"
    assert first.status_code == (500 if marker == "[[500]]" else 200)
    again = ask(sidecar, q, tenant="faults", stream=stream)
    assert again.headers["x-hermes-cache"] == "miss"


def test_dropped_stream_reaches_the_client_as_broken_and_is_not_cached(sidecar: httpx.Client) -> None:
    q = "[[drop]] Tell me a long story about rivers"
    before = settled(sidecar)
    with pytest.raises(httpx.RemoteProtocolError):
        ask(sidecar, q, tenant="faults", stream=True)
    deadline = time.monotonic() + 5
    while settled(sidecar) == before and time.monotonic() < deadline:
        time.sleep(0.01)
    again = ask(sidecar, q.replace("[[drop]] ", "[[drop]] "), tenant="faults")
    assert again.headers["x-hermes-cache"] == "miss"


@pytest.mark.parametrize(
    ("question", "extra", "headers"),
    [
        ("What is the boiling point of water at sea level?", {}, {"cache-control": "no-cache"}),
        ("What is the boiling point of water at sea level?", {"temperature": 1.5}, {}),
        ("What is the boiling point of water at sea level?", {"n": 2}, {}),
        ("What's the weather in Leeds today?", {}, {}),
    ],
)
def test_bypass_passes_through(
    sidecar: httpx.Client, question: str, extra: dict[str, Any], headers: dict[str, str]
) -> None:
    ask(sidecar, question, tenant="bypass", extra=extra, headers=headers)
    second = ask(sidecar, question, tenant="bypass", extra=extra, headers=headers)
    assert second.headers["x-hermes-cache"] == "bypass"


def test_other_routes_pass_through(sidecar: httpx.Client) -> None:
    resp = sidecar.get("/v1/models")
    assert resp.status_code == 200 and resp.json()["data"][0]["id"] == "tiny-llama"
    assert resp.headers["x-hermes-cache"] == "bypass"


def test_conversation_with_ambiguous_last_turn_is_not_reused_across_contexts(sidecar: httpx.Client) -> None:
    a = [
        {"role": "user", "content": "I have a Flixora subscription I barely use."},
        {"role": "assistant", "content": "Your Flixora Standard plan renews on the 14th. Cancel or change?"},
        {"role": "user", "content": "cancel it"},
    ]
    b = [
        {"role": "user", "content": "My PulseFit gym membership costs too much."},
        {
            "role": "assistant",
            "content": "Your PulseFit membership has a 30-day notice period. Cancel or freeze?",
        },
        {"role": "user", "content": "cancel it"},
    ]
    ask(sidecar, a, tenant="conv")
    assert ask(sidecar, a, tenant="conv").headers["x-hermes-cache"] == "hit-exact"
    assert ask(sidecar, b, tenant="conv").headers["x-hermes-cache"] == "miss"


def test_admin_routes_need_the_token(sidecar: httpx.Client) -> None:
    for method, path in (("GET", "/admin/stats"), ("POST", "/admin/flush"), ("POST", "/admin/invalidate")):
        assert sidecar.request(method, path).status_code == 401
        assert sidecar.request(method, path, headers={"authorization": "Bearer wrong"}).status_code == 401
    stats = sidecar.get("/admin/stats", headers={"authorization": "Bearer s3cret-token"})
    assert stats.status_code == 200
    assert stats.json()["generation"]["version"] == "0"
    assert stats.json()["backend"] == "memory"


def test_invalidate_by_tag_and_flush(sidecar: httpx.Client) -> None:
    auth = {"authorization": "Bearer s3cret-token"}
    ask(sidecar, "Where can I download my last invoice?", tenant="tags")
    ask(
        sidecar,
        "Which browsers does the portal support?",
        tenant="tags",
        headers={"x-hermes-cache-tags": "portal"},
    )
    gone = sidecar.post("/admin/invalidate", json={"tag": "billing"}, headers=auth)
    assert gone.status_code == 200 and gone.json()["deleted"] == 1
    assert (
        ask(sidecar, "Where can I download my last invoice?", tenant="tags").headers["x-hermes-cache"]
        == "miss"
    )
    assert (
        ask(sidecar, "Which browsers does the portal support?", tenant="tags").headers["x-hermes-cache"]
        == "hit-exact"
    )
    bad = sidecar.post("/admin/invalidate", json={"tagz": "x"}, headers=auth)
    assert bad.status_code == 400 and "tag" in bad.json()["error"]
    flushed = sidecar.post("/admin/flush", headers=auth)
    assert flushed.status_code == 200 and flushed.json()["deleted"] >= 2
    assert (
        ask(sidecar, "Which browsers does the portal support?", tenant="tags").headers["x-hermes-cache"]
        == "miss"
    )


def test_metrics_count_every_result(sidecar: httpx.Client) -> None:
    def counts() -> dict[str, float]:
        out = {}
        for line in sidecar.get("/metrics").text.splitlines():
            if line.startswith("hermes_cache_requests_total{"):
                result = line.split('result="')[1].split('"')[0]  # summed over the tenant label
                out[result] = out.get(result, 0.0) + float(line.rsplit(" ", 1)[1])
        return out

    before = counts()
    ask(sidecar, "How many moons does Neptune have?", tenant="metrics")
    ask(sidecar, "How many moons does Neptune have?", tenant="metrics")
    ask(sidecar, "How many moons does Neptune have, please?", tenant="metrics")
    ask(sidecar, "How many moons does Neptune have?", tenant="metrics", headers={"cache-control": "no-store"})
    after = counts()
    assert after["miss"] - before["miss"] == 1
    assert after["hit_exact"] - before["hit_exact"] == 1
    assert after["hit_semantic"] - before["hit_semantic"] == 1
    assert after["bypass"] - before["bypass"] == 1
    text = sidecar.get("/metrics").text
    assert "hermes_cache_lookup_seconds_bucket" in text
    assert "hermes_cache_hit_similarity_bucket" in text
    assert "hermes_cache_entries " in text


def test_health_and_readiness(sidecar: httpx.Client) -> None:
    assert sidecar.get("/healthz").status_code == 200
    ready = sidecar.get("/readyz")
    assert ready.status_code == 200 and ready.json()["upstream"] == "ok"


def test_embedder_down_fails_open_and_readyz_reports_it(upstream: tuple[FakeOpenAI, str]) -> None:
    cfg = parse_config(
        {
            "upstream": {"url": upstream[1]},
            "embedding": {
                "provider": "openai",
                "url": "http://127.0.0.1:9",
                "model": "e5",
                "timeoutSeconds": 0.5,
            },
        }
    )
    with run_server(create_app(cfg), lifespan="on") as url, httpx.Client(base_url=url, timeout=30) as client:
        q = "What is the capital of Portugal?"
        first = ask(client, q)
        assert first.status_code == 200 and first.headers["x-hermes-cache"] == "miss"
        assert "answer" in content(first)
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["cache"] == "degraded" and "embedder" in ready.json()["degraded"]
        metrics = client.get("/metrics").text
        assert 'hermes_cache_requests_total{result="error",tenant="h:acme",variant="default"} 1.0' in metrics


def test_readyz_fails_when_upstream_is_down_while_healthz_stays_up(embedder: LocalEmbedder) -> None:
    cfg = parse_config({"upstream": {"url": "http://127.0.0.1:9"}})
    with (
        run_server(create_app(cfg, embedder=embedder), lifespan="on") as url,
        httpx.Client(base_url=url) as client,
    ):
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "unreachable" in ready.json()["upstream"]
        resp = ask(client, "Is anyone there?")
        assert resp.status_code == 502 and resp.headers["x-hermes-cache"] == "miss"


def test_an_upstream_that_resets_the_connection_is_a_502_naming_the_error(embedder: LocalEmbedder) -> None:
    """httpx reports a reset connection as ReadError with no message; the client and the log are
    still told what happened, not "upstream unreachable: " and nothing."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def reset_every_connection() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.recv(65536)
            # SO_LINGER 0: close() sends RST, as a server does when it drops a connection it was closing
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    threading.Thread(target=reset_every_connection, daemon=True).start()
    cfg = parse_config({"upstream": {"url": f"http://127.0.0.1:{port}"}})
    try:
        with (
            run_server(create_app(cfg, embedder=embedder), lifespan="on") as url,
            httpx.Client(base_url=url) as client,
        ):
            resp = ask(client, "Is anyone there?")
    finally:
        listener.close()
    assert resp.status_code == 502 and resp.headers["x-hermes-cache"] == "miss"
    message = resp.json()["error"]["message"]
    assert message.startswith("upstream unreachable: ReadError"), message


def test_idle_upstream_connections_are_dropped_before_the_upstream_closes_them(
    upstream: tuple[FakeOpenAI, str], embedder: LocalEmbedder
) -> None:
    """vLLM closes a connection idle for 5 s; a client that keeps it as long sometimes sends a request
    on it just as it closes, and that request fails. The sidecar reuses a pooled connection while it
    is fresh and opens a new one once it has been idle for upstream.keepAliveSeconds."""
    fake, upstream_url = upstream
    cfg = parse_config(
        {"upstream": {"url": upstream_url, "keepAliveSeconds": 0.5}, "cache": {"backend": "memory"}}
    )
    with (
        run_server(create_app(cfg, embedder=embedder), lifespan="on") as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        before = len(fake.peers)
        assert ask(client, "Which river runs through Porto?").headers["x-hermes-cache"] == "miss"
        assert ask(client, "Which bridge crosses the Douro?").headers["x-hermes-cache"] == "miss"
        time.sleep(1.0)
        assert ask(client, "Which wine comes from the Douro valley?").headers["x-hermes-cache"] == "miss"
        first, again, after_idle = fake.peers[before:]
    assert again == first, "a fresh pooled connection should be reused"
    assert after_idle != first, "a connection idle past keepAliveSeconds was reused"


def test_the_default_keep_alive_is_shorter_than_vllms() -> None:
    # vLLM serves with uvicorn's timeout_keep_alive = VLLM_HTTP_TIMEOUT_KEEP_ALIVE, 5 s by default
    assert parse_config({}).upstream.keepAliveSeconds < 5.0
    with pytest.raises(ValueError, match="keepAliveSeconds"):
        parse_config({"upstream": {"keepAliveSeconds": 0}})


def test_local_model_not_installed_keeps_exact_caching_and_readyz_says_why(
    upstream: tuple[FakeOpenAI, str], tmp_path: Path
) -> None:
    """A sidecar installed without scripts/models/install.sh still serves and caches repeats."""
    cfg = parse_config({"upstream": {"url": upstream[1]}, "embedding": {"modelDir": str(tmp_path)}})
    with run_server(create_app(cfg), lifespan="on") as url, httpx.Client(base_url=url, timeout=30) as client:
        q = "Which river runs through Lisbon?"
        assert ask(client, q).headers["x-hermes-cache"] == "miss"
        assert ask(client, q).headers["x-hermes-cache"] == "hit-exact"
        assert ask(client, "Which river flows through Lisbon?").headers["x-hermes-cache"] == "miss"
        ready = client.get("/readyz").json()
        assert ready["cache"] == "degraded" and "embedder" in ready["degraded"]


def test_openai_sdk_stream_is_stored_though_it_hangs_up_at_done(embedder: LocalEmbedder) -> None:
    # The openai SDK closes the response as soon as it reads `data: [DONE]`; vLLM ends its body a
    # moment later. The sidecar's relay was then cancelled before it saw the end, and the complete
    # answer was not stored (found by tests/integration/test_openai_client.py against vLLM).
    import openai

    fake = FakeOpenAI(linger=0.3)
    with run_server(fake.app()) as up:
        cfg = parse_config({"upstream": {"url": up}, "cache": {"backend": "memory"}})
        with run_server(create_app(cfg, embedder=embedder), lifespan="on") as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="sk-test", max_retries=0)
            for usage in (True, False):
                body: dict[str, Any] = {
                    "model": "tiny-llama",
                    "messages": [{"role": "user", "content": f"Name the largest moon of planet {usage}"}],
                    "stream": True,
                }
                if usage:
                    body["stream_options"] = {"include_usage": True}
                raw = client.chat.completions.with_raw_response.create(**body)
                assert raw.headers["x-hermes-cache"] == "miss"
                assert "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
                time.sleep(0.6)  # past the linger: the store has run by now, if it was going to
                again = client.chat.completions.with_raw_response.create(**{**body, "stream": False})
                assert again.headers["x-hermes-cache"] == "hit-exact"
