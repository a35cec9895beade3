"""What Prometheus sees from a sidecar: vLLM's metrics through ``/upstream/metrics``, the ``tenant``
label on ``hermes_cache_requests_total`` (bounded, never a secret), and ``hermes_cache_generation_info``
following a generation switch.

The sidecar is the real app with its lifespan, driven in-process over httpx's ASGI transport; its
upstream is a real HTTP server (tests/fakes/openai_upstream.py) to which this file adds the
``/metrics`` endpoint vLLM serves: prometheus_client's ASGI app mounted the way vLLM mounts it, so
content negotiation (text or OpenMetrics) and gzip behave as they do in front of vLLM.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, make_asgi_app
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from fakes.openai_upstream import FakeOpenAI, run_server
from hermes_sidecar.app import create_app
from hermes_sidecar.config import parse_config
from hermes_sidecar.embed import LocalEmbedder
from hermes_sidecar.generations import Generation
from hermes_sidecar.runtime import Sidecar

CHAT = "/v1/chat/completions"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


@dataclass
class VLLMMetrics:
    """vLLM's ``/metrics``: real exposition of a registry with vLLM's names; ``mode`` injects faults."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    mode: str = "ok"  # "ok", "500", "slow" (answers after 2 s)

    def __post_init__(self) -> None:
        waiting = Gauge(
            "vllm:num_requests_waiting", "Requests waiting", ["model_name"], registry=self.registry
        )
        waiting.labels("tiny-llama").set(3)
        queries = Counter(
            "vllm:prefix_cache_queries",
            "Prefix cache queries (tokens)",
            ["model_name"],
            registry=self.registry,
        )
        queries.labels("tiny-llama").inc(1385)
        self._exposition = make_asgi_app(self.registry)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.mode == "500":
            await send({"type": "http.response.start", "status": 500, "headers": []})
            await send({"type": "http.response.body", "body": b"engine dead"})
            return
        if self.mode == "slow":
            await asyncio.sleep(2.0)
        await self._exposition(scope, receive, send)


class ModelPerLoop:
    """The real local model, loaded once for the module; each test's event loop embeds through its own
    thread calls (LocalEmbedder's batching task belongs to the loop that started it)."""

    def __init__(self, model: LocalEmbedder) -> None:
        self.model, self.name, self.dim = model, model.name, model.dim

    async def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        return await asyncio.to_thread(self.model.embed_sync, texts)

    async def aclose(self) -> None:
        pass


@pytest.fixture(scope="module")
def model() -> LocalEmbedder:
    return LocalEmbedder()


@pytest.fixture(scope="module")
def vllm() -> Iterator[tuple[VLLMMetrics, str]]:
    metrics = VLLMMetrics()
    app = FakeOpenAI().app()
    app.router.routes.append(Route("/metrics", metrics, methods=["GET"]))
    with run_server(app) as url:
        yield metrics, url


@pytest.fixture(scope="module")
def plain_upstream() -> Iterator[str]:
    """An OpenAI-compatible upstream without /metrics."""
    with run_server(FakeOpenAI().app()) as url:
        yield url


@pytest.fixture
def vllm_ok(vllm: tuple[VLLMMetrics, str]) -> Iterator[tuple[VLLMMetrics, str]]:
    vllm[0].mode = "ok"
    yield vllm
    vllm[0].mode = "ok"


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


class Running:
    def __init__(self, app: Starlette, client: httpx.AsyncClient) -> None:
        self.app, self.client = app, client

    @property
    def sidecar(self) -> Sidecar:
        s: Sidecar = self.app.state.sidecar
        return s

    async def ask(self, question: str, headers: dict[str, str]) -> httpx.Response:
        body = {"model": "tiny-llama", "messages": [{"role": "user", "content": question}]}
        resp = await self.client.post(CHAT, json=body, headers=headers)
        assert resp.status_code == 200, resp.text
        return resp

    async def metrics(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        resp = await self.client.get("/metrics")
        out: dict[str, list[tuple[dict[str, str], float]]] = {}
        for fam in text_string_to_metric_families(resp.text):
            for s in fam.samples:
                out.setdefault(s.name, []).append((s.labels, s.value))
        return out


@pytest.fixture
async def start(model: LocalEmbedder) -> AsyncIterator[Any]:
    """start(config dict) -> Running: the app with its lifespan, until the test ends."""
    stack: list[Any] = []

    async def _start(data: dict[str, Any]) -> Running:
        app = create_app(parse_config(data), embedder=ModelPerLoop(model))
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        stack.append(lifespan)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sidecar")
        stack.append(client)
        return Running(app, client)

    yield _start
    for item in reversed(stack):
        await item.__aexit__(None, None, None)


# -- /upstream/metrics ----------------------------------------------------------------------------


async def test_upstream_metrics_returns_vllms_body_and_content_type_unchanged(
    start: Any, vllm_ok: tuple[VLLMMetrics, str], tmp_path: Any
) -> None:
    token = tmp_path / "token"
    token.write_text("admin-secret")
    sc = await start({"upstream": {"url": vllm_ok[1]}, "admin": {"tokenFile": str(token)}})
    async with httpx.AsyncClient(base_url=vllm_ok[1]) as direct:
        for accept in ("", OPENMETRICS):
            headers = {"accept": accept} if accept else {}
            want = await direct.get("/metrics", headers={**headers, "accept-encoding": "identity"})
            # no admin token: Prometheus scrapes it like /metrics
            got = await sc.client.get("/upstream/metrics", headers=headers)
            assert got.status_code == 200
            assert got.headers["content-type"] == want.headers["content-type"]
            assert got.content == want.content
    text = (await sc.client.get("/upstream/metrics")).text
    assert 'vllm:num_requests_waiting{model_name="tiny-llama"} 3.0' in text
    om = await sc.client.get("/upstream/metrics", headers={"accept": OPENMETRICS})
    assert om.headers["content-type"].startswith("application/openmetrics-text")
    assert om.text.endswith("# EOF\n")


async def test_upstream_metrics_keeps_vllms_compression(start: Any, vllm_ok: tuple[VLLMMetrics, str]) -> None:
    sc = await start({"upstream": {"url": vllm_ok[1]}})
    plain = await sc.client.get("/upstream/metrics", headers={"accept-encoding": "identity"})
    assert "content-encoding" not in plain.headers
    gz = await sc.client.get("/upstream/metrics", headers={"accept-encoding": "gzip"})
    assert gz.status_code == 200 and gz.headers["content-encoding"] == "gzip"
    assert gz.text == plain.text  # httpx decoded what vLLM compressed


async def test_upstream_metrics_is_502_when_vllm_does_not_answer(start: Any) -> None:
    url = closed_port_url()
    sc = await start({"upstream": {"url": url}})
    resp = await sc.client.get("/upstream/metrics")
    assert resp.status_code == 502
    assert resp.headers["content-type"].startswith("text/plain")
    assert f"GET {url}/metrics failed" in resp.text and len(resp.text) < 400
    # the sidecar's own metrics are unaffected
    assert (await sc.client.get("/metrics")).status_code == 200


async def test_upstream_metrics_is_502_when_vllm_errors(
    start: Any, vllm_ok: tuple[VLLMMetrics, str], plain_upstream: str
) -> None:
    sc = await start({"upstream": {"url": vllm_ok[1]}})
    vllm_ok[0].mode = "500"
    resp = await sc.client.get("/upstream/metrics")
    assert resp.status_code == 502 and "answered 500" in resp.text
    assert "engine dead" not in resp.text  # a short message of ours, not vLLM's page

    other = await start({"upstream": {"url": plain_upstream}})
    resp = await other.client.get("/upstream/metrics")
    assert resp.status_code == 502 and "answered 404" in resp.text


async def test_upstream_metrics_gives_up_before_the_scrape_does(
    start: Any, vllm_ok: tuple[VLLMMetrics, str]
) -> None:
    sc = await start({"upstream": {"url": vllm_ok[1]}})
    vllm_ok[0].mode = "slow"
    # Prometheus says how long it waits; vLLM answers later than that
    resp = await sc.client.get("/upstream/metrics", headers={"x-prometheus-scrape-timeout-seconds": "1"})
    assert resp.status_code == 502 and "Timeout" in resp.text


async def test_upstream_metrics_is_404_for_an_anthropic_upstream(start: Any) -> None:
    sc = await start({"upstream": {"kind": "anthropic", "url": closed_port_url()}})
    resp = await sc.client.get("/upstream/metrics")
    assert resp.status_code == 404 and "anthropic" in resp.text


# -- tenant label ---------------------------------------------------------------------------------


def requests_by_tenant(metrics: dict[str, list[tuple[dict[str, str], float]]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for labels, value in metrics["hermes_cache_requests_total"]:
        out[labels["tenant"]] = out.get(labels["tenant"], 0.0) + value
    return out


async def test_requests_carry_the_tenant_and_each_tenant_has_every_result(
    start: Any, vllm_ok: tuple[VLLMMetrics, str], tmp_path: Any
) -> None:
    token = tmp_path / "token"
    token.write_text("admin-secret")
    sc = await start({"upstream": {"url": vllm_ok[1]}, "admin": {"tokenFile": str(token)}})
    q = "How do I rotate the API keys of a service account?"
    assert (await sc.ask(q, {"x-tenant-id": "acme"})).headers["x-hermes-cache"] == "miss"
    await sc.sidecar.cache.drain()
    assert (await sc.ask(q, {"x-tenant-id": "acme"})).headers["x-hermes-cache"] == "hit-exact"
    assert (await sc.ask(q, {"x-tenant-id": "globex"})).headers["x-hermes-cache"] == "miss"
    samples = {
        (labels["result"], labels["tenant"]): value
        for labels, value in (await sc.metrics())["hermes_cache_requests_total"]
    }
    assert samples[("miss", "h:acme")] == 1 and samples[("hit_exact", "h:acme")] == 1
    assert samples[("miss", "h:globex")] == 1 and samples[("hit_exact", "h:globex")] == 0
    # every result exists for a tenant once it is seen, so its hit ratio is 0 rather than absent
    assert {r for r, t in samples if t == "h:globex"} == {
        "hit_exact",
        "hit_semantic",
        "miss",
        "bypass",
        "error",
    }
    # /admin/stats reports the totals per result, all tenants together
    stats = await sc.client.get("/admin/stats", headers={"authorization": "Bearer admin-secret"})
    assert stats.json()["requests"] == {"hit_exact": 1, "hit_semantic": 0, "miss": 2, "bypass": 0, "error": 0}


async def test_tenant_labels_are_capped_and_the_rest_is_other(
    start: Any, vllm_ok: tuple[VLLMMetrics, str]
) -> None:
    sc = await start({"upstream": {"url": vllm_ok[1]}, "metrics": {"maxTenants": 3}})
    for i in range(6):
        await sc.ask(f"What is the refund policy for order {i}?", {"x-tenant-id": f"tenant-{i}"})
    await sc.ask("What is the refund policy for order 9?", {"x-tenant-id": "tenant-0"})
    metrics = await sc.metrics()
    by_tenant = requests_by_tenant(metrics)
    assert by_tenant == {"h:tenant-0": 2, "h:tenant-1": 1, "h:tenant-2": 1, "other": 3}
    assert metrics["hermes_cache_tenant_label_overflow_total"][0][1] == 3
    # a hostile client inventing tenants adds no series beyond the cap
    for i in range(50):
        await sc.ask(f"What is the refund policy for order {i}?", {"x-tenant-id": f"made-up-{i}"})
    assert set(requests_by_tenant(await sc.metrics())) == {"h:tenant-0", "h:tenant-1", "h:tenant-2", "other"}


async def test_max_tenants_zero_counts_everyone_as_other(
    start: Any, vllm_ok: tuple[VLLMMetrics, str]
) -> None:
    sc = await start({"upstream": {"url": vllm_ok[1]}, "metrics": {"maxTenants": 0}})
    await sc.ask("Where is my parcel?", {"x-tenant-id": "acme"})
    assert requests_by_tenant(await sc.metrics()) == {"other": 1}


async def test_no_credential_reaches_a_label(start: Any, vllm_ok: tuple[VLLMMetrics, str]) -> None:
    secret = "sk-live-0123456789abcdef"
    sc = await start({"upstream": {"url": vllm_ok[1]}})
    await sc.ask("How do I export my invoices?", {"authorization": f"Bearer {secret}"})
    await sc.ask("How do I export my receipts?", {"authorization": f"Bearer {secret}"})
    text = (await sc.client.get("/metrics")).text
    assert secret not in text
    by_tenant = requests_by_tenant(await sc.metrics())
    assert len(by_tenant) == 1
    (label,) = by_tenant
    assert label.startswith("c:") and by_tenant[label] == 2  # one stable hash per credential

    # a tenant header that is itself a credential header is hashed too
    keyed = await start({"upstream": {"url": vllm_ok[1]}, "tenantHeader": "x-api-key"})
    await keyed.ask("How do I export my invoices?", {"x-api-key": secret})
    assert secret not in (await keyed.client.get("/metrics")).text
    (label,) = requests_by_tenant(await keyed.metrics())
    assert label.startswith("h:sha256:")


async def test_a_huge_tenant_header_gives_a_short_distinct_label(
    start: Any, vllm_ok: tuple[VLLMMetrics, str]
) -> None:
    sc = await start({"upstream": {"url": vllm_ok[1]}})
    long_a, long_b = "a" * 5000, "a" * 4999 + "b"
    await sc.ask("Can I change my billing address?", {"x-tenant-id": long_a})
    await sc.ask("Can I change my billing address?", {"x-tenant-id": long_b})
    labels = set(requests_by_tenant(await sc.metrics()))
    assert len(labels) == 2 and all(len(label) <= 64 for label in labels)
    assert all(label.startswith("h:aaaa") for label in labels)


# -- generation ------------------------------------------------------------------------------------


async def served_generations(sc: Running) -> list[tuple[str, str, float]]:
    return [
        (labels["version"], labels["uid"], value)
        for labels, value in (await sc.metrics()).get("hermes_cache_generation_info", [])
    ]


async def wait_for(sc: Running, want: list[tuple[str, str, float]]) -> list[tuple[str, str, float]]:
    """The generation labels once they equal ``want`` (a switch applies in a background task)."""
    seen = await served_generations(sc)
    for _ in range(500):
        if seen == want:
            break
        await asyncio.sleep(0.01)
        seen = await served_generations(sc)
    return seen


async def test_generation_info_follows_a_switch_and_drops_the_old_labels(
    start: Any, vllm_ok: tuple[VLLMMetrics, str]
) -> None:
    sc = await start({"upstream": {"url": vllm_ok[1]}})
    assert await served_generations(sc) == [("0", "local", 1.0)]
    follower = sc.sidecar.follower
    assert follower is not None
    # what the follower does with a record read from Redis or received on the channel
    follower.apply(Generation("v2", "uid-7"))
    assert await wait_for(sc, [("v2", "uid-7", 1.0)]) == [("v2", "uid-7", 1.0)]
    follower.apply(Generation("v3", "uid-7"))
    assert await wait_for(sc, [("v3", "uid-7", 1.0)]) == [("v3", "uid-7", 1.0)]
    switches = (await sc.metrics())["hermes_cache_generation_switches_total"][0][1]
    assert switches == 2
