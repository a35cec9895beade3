"""The sidecar's verifier (cache.guard.verifier) against real vLLM servers, both kinds.

kind rerank: upstream is the real vLLM serving ``tiny-llama`` (``vllm_url``); the verifier is a second
real vLLM serving the tiny random cross-encoder ``tiny-verifier`` (``verifier_url``); the store is in
memory. The cross-encoder's weights are random, so its scores mean nothing: about 0.49 for any pair,
and always strictly between 0 and 1 (a sigmoid). The tests only use minScore 0.0 (every score passes)
and 1.01 (none does), thresholds no score can straddle.

kind served-model: the verifier is ``tiny-llama`` itself, the sidecar's upstream. Its random weights
never put "yes" or "no" among the first token's top 20 logprobs (a 512-token vocabulary where "no" is
two tokens), so every judgement is unjudged and scores 0: the tests check the wire (what vLLM was
sent and answered, read through a recording proxy and vLLM's own counters), the salt, the parsing
and the failure modes, never the quality of a judgement.

Questions are chosen against the default local embedder with similarityThreshold 0.95: CLOSE is
above it (cosine alone serves it), REWORDED is between the verifier's minSimilarity 0.7 and it (only
the verifier can serve it); each hit's ``x-hermes-cache-similarity`` header checks that premise.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fakes.openai_upstream import run_server
from hermes_sidecar.app import create_app
from hermes_sidecar.config import parse_config
from hermes_sidecar.embed import LocalEmbedder
from hermes_sidecar.generations import LOCAL
from hermes_sidecar.verify import ServedModelVerifier
from hermes_sidecar.verify.served import (
    PROMPT,
    first_token_logprobs,
    judgement_body,
    verifier_salt,
    yes_no_score,
)

pytestmark = pytest.mark.integration
CHAT = "/v1/chat/completions"
MODEL = "tiny-llama"
THRESHOLD = 0.95
STORED = "How do I install Python 3.11 on Ubuntu?"
CLOSE = "How can I install Python 3.11 on Ubuntu?"
REWORDED = "What's the procedure for setting up Python 3.11 on an Ubuntu box?"


@pytest.fixture
def closed_url() -> str:
    """A loopback URL where nothing listens (connection refused), as a verifier that is down."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def start_sidecar(vllm_url: str, embedder: LocalEmbedder) -> Iterator[Callable[..., httpx.Client]]:
    with ExitStack() as stack:

        def start(verifier_url: str, **verifier: Any) -> httpx.Client:
            cfg = parse_config(
                {
                    "upstream": {"url": vllm_url, "timeoutSeconds": 120},
                    "cache": {
                        "backend": "memory",
                        "similarityThreshold": THRESHOLD,
                        # the random-weight model's answers end at max_tokens: store them anyway
                        "storeTruncated": True,
                        "guard": {
                            "enabled": True,
                            "verifier": {
                                "url": verifier_url,
                                "model": "tiny-verifier",
                                "minSimilarity": 0.7,
                                # the first call on a cold CPU server can take a while
                                "timeoutSeconds": 30,
                                **verifier,
                            },
                        },
                    },
                }
            )
            url = stack.enter_context(run_server(create_app(cfg, embedder=embedder), lifespan="on"))
            return stack.enter_context(httpx.Client(base_url=url, timeout=120))

        yield start


def ask(client: httpx.Client, question: str) -> httpx.Response:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": question}],
        "max_tokens": 8,
        "temperature": 0,
    }
    resp = client.post(CHAT, json=body, headers={"x-tenant-id": "acme"})
    assert resp.status_code == 200, resp.text
    return resp


def until(predicate: Callable[[], bool], timeout: float, step: float = 0.05) -> None:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(step)


def store(client: httpx.Client, question: str) -> None:
    """Ask once (a miss, answered by vLLM) and wait until the answer is stored."""
    assert ask(client, question).headers["x-hermes-cache"] == "miss"
    until(lambda: ask(client, question).headers["x-hermes-cache"] == "hit-exact", 10)


def sample(metrics_text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text (0 when absent); with no labels, the sum over all."""
    total = 0.0
    for family in text_string_to_metric_families(metrics_text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def sidecar_sample(client: httpx.Client, name: str, **labels: str) -> float:
    return sample(client.get("/metrics").text, name, **labels)


def rerank_requests(verifier_url: str) -> float:
    """Pairs vLLM's cross-encoder has scored (its own counter: one request per document)."""
    text = httpx.get(f"{verifier_url}/metrics", timeout=10).text
    return sample(text, "vllm:request_success_total", model_name="tiny-verifier")


def similarity(resp: httpx.Response) -> float:
    return float(resp.headers["x-hermes-cache-similarity"])


def assert_upstream_answer(resp: httpx.Response) -> None:
    body = resp.json()
    assert body["model"] == MODEL and body["choices"][0]["message"]["content"] is not None


def test_verifier_confirms_a_reworded_question_cosine_alone_would_not_serve(
    start_sidecar: Callable[..., httpx.Client], verifier_url: str
) -> None:
    client = start_sidecar(verifier_url, minScore=0.0)
    store(client, STORED)
    scored_before = rerank_requests(verifier_url)

    reworded = ask(client, REWORDED)
    assert reworded.headers["x-hermes-cache"] == "hit-semantic"
    assert 0.7 <= similarity(reworded) < THRESHOLD  # only the verifier could serve it
    close = ask(client, CLOSE)
    assert close.headers["x-hermes-cache"] == "hit-semantic" and similarity(close) >= THRESHOLD

    # the real cross-encoder scored them: vLLM counted the pairs, the sidecar the calls and scores
    assert rerank_requests(verifier_url) >= scored_before + 2
    assert sidecar_sample(client, "hermes_cache_verifier_seconds_count") == 2
    scores = sidecar_sample(client, "hermes_cache_verifier_score_sum")
    assert 0 < scores < 2  # two sigmoid scores
    assert sidecar_sample(client, "hermes_cache_errors_total", component="verifier") == 0
    assert client.get("/readyz").json()["cache"] == "ok"


def test_verifier_refusal_is_a_miss_answered_upstream_and_counted(
    start_sidecar: Callable[..., httpx.Client], verifier_url: str
) -> None:
    client = start_sidecar(verifier_url, minScore=1.01)  # above any sigmoid: every candidate refused
    store(client, STORED)
    scored_before = rerank_requests(verifier_url)

    resp = ask(client, CLOSE)  # cosine alone and the rules would serve it
    assert resp.headers["x-hermes-cache"] == "miss"
    assert_upstream_answer(resp)
    assert rerank_requests(verifier_url) >= scored_before + 1
    assert sidecar_sample(client, "hermes_cache_guard_rejections_total", rule="verifier") == 1
    assert sidecar_sample(client, "hermes_cache_verifier_score_count") == 1
    # refused by a verifier that answered, not failed
    assert sidecar_sample(client, "hermes_cache_errors_total", component="verifier") == 0
    assert client.get("/readyz").json()["cache"] == "ok"


def test_exact_repeat_is_served_without_asking_the_verifier(
    start_sidecar: Callable[..., httpx.Client], verifier_url: str
) -> None:
    client = start_sidecar(verifier_url, minScore=1.01)  # would refuse anything it were asked
    store(client, STORED)
    scored_before = rerank_requests(verifier_url)
    for _ in range(3):
        assert ask(client, STORED).headers["x-hermes-cache"] == "hit-exact"
    assert rerank_requests(verifier_url) == scored_before
    assert sidecar_sample(client, "hermes_cache_verifier_seconds_count") == 0
    assert sidecar_sample(client, "hermes_cache_guard_rejections_total", rule="verifier") == 0


def test_unreachable_verifier_with_on_error_threshold_decides_by_cosine_and_reports_it(
    start_sidecar: Callable[..., httpx.Client], closed_url: str
) -> None:
    client = start_sidecar(closed_url, minScore=1.01, onError="threshold")
    store(client, STORED)

    close = ask(client, CLOSE)
    assert close.headers["x-hermes-cache"] == "hit-semantic" and similarity(close) >= THRESHOLD
    assert sidecar_sample(client, "hermes_cache_errors_total", component="verifier") >= 1
    ready = client.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["ready"] is True and body["cache"] == "degraded"
    assert closed_url in body["degraded"]["verifier"]
    assert sidecar_sample(client, "hermes_cache_degraded", component="verifier") == 1
    # below the threshold, cosine alone does not serve: only the verifier could have
    reworded = ask(client, REWORDED)
    assert reworded.headers["x-hermes-cache"] == "miss"
    assert_upstream_answer(reworded)


def test_unreachable_verifier_with_on_error_miss_serves_no_semantic_hit(
    start_sidecar: Callable[..., httpx.Client], closed_url: str
) -> None:
    client = start_sidecar(closed_url, minScore=0.0, onError="miss")
    store(client, STORED)

    resp = ask(client, CLOSE)
    assert resp.headers["x-hermes-cache"] == "miss"
    assert_upstream_answer(resp)
    assert sidecar_sample(client, "hermes_cache_errors_total", component="verifier") >= 1
    assert ask(client, STORED).headers["x-hermes-cache"] == "hit-exact"  # exact hits still served
    ready = client.get("/readyz")
    assert ready.status_code == 200 and "verifier" in ready.json()["degraded"]


# -- kind: served-model (the upstream tiny-llama judges) ------------------------------------------


@dataclass
class Recorder:
    """A pass-through proxy in front of the real vLLM that keeps every request and answer."""

    upstream: str
    exchanges: list[tuple[str, dict[str, Any] | None, dict[str, Any]]] = field(default_factory=list)

    async def _forward(self, request: Request) -> Response:
        body = await request.json() if request.method == "POST" else None
        async with httpx.AsyncClient(timeout=120) as client:
            resp = await client.request(request.method, self.upstream + request.url.path, json=body)
        self.exchanges.append((request.url.path, body, resp.json()))
        return Response(resp.content, resp.status_code, media_type="application/json")

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._forward, methods=["POST"]),
                Route("/v1/models", self._forward, methods=["GET"]),
            ]
        )

    def judgements(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        return [
            (b, a) for p, b, a in self.exchanges if p == "/v1/chat/completions" and b and b["max_tokens"] == 1
        ]

    def tenant_bodies(self) -> list[dict[str, Any]]:
        return [b for p, b, _ in self.exchanges if p == "/v1/chat/completions" and b and b["max_tokens"] != 1]


@pytest.fixture
def recorder(vllm_url: str) -> Iterator[tuple[Recorder, str]]:
    rec = Recorder(vllm_url)
    with run_server(rec.app()) as url:
        yield rec, url


def vllm_sample(vllm_url: str, name: str) -> float:
    return sample(httpx.get(f"{vllm_url}/metrics", timeout=10).text, name, model_name=MODEL)


def block_size(vllm_url: str) -> int:
    """vLLM's KV block size, the unit its prefix cache reuses (from its vllm:cache_config_info)."""
    for family in text_string_to_metric_families(httpx.get(f"{vllm_url}/metrics", timeout=10).text):
        for s in family.samples:
            if s.name == "vllm:cache_config_info":
                return int(s.labels["block_size"])
    raise AssertionError("vLLM exports no vllm:cache_config_info")


@pytest.fixture
def start_served(embedder: LocalEmbedder) -> Iterator[Callable[..., httpx.Client]]:
    with ExitStack() as stack:

        def start(upstream: str, **verifier: Any) -> httpx.Client:
            cfg = parse_config(
                {
                    "upstream": {"url": upstream, "timeoutSeconds": 120},
                    "cache": {
                        "backend": "memory",
                        "similarityThreshold": THRESHOLD,
                        "storeTruncated": True,
                        "guard": {
                            "verifier": {"kind": "served-model", "minSimilarity": 0.7, "timeoutSeconds": 30}
                            | verifier
                        },
                    },
                }
            )
            url = stack.enter_context(run_server(create_app(cfg, embedder=embedder), lifespan="on"))
            return stack.enter_context(httpx.Client(base_url=url, timeout=120))

        yield start


def test_served_model_asks_the_upstream_vllm_one_token_with_logprobs_under_its_own_salt(
    start_served: Callable[..., httpx.Client], recorder: tuple[Recorder, str], vllm_url: str
) -> None:
    rec, proxy = recorder
    client = start_served(proxy, minScore=0.0)  # no url, no model: the upstream and what it lists
    store(client, STORED)
    assert rec.judgements() == []

    close = ask(client, CLOSE)  # cosine alone serves it: scope uncertain does not ask
    assert close.headers["x-hermes-cache"] == "hit-semantic" and similarity(close) >= THRESHOLD
    assert rec.judgements() == [] and sidecar_sample(client, "hermes_cache_verifier_skipped_total") == 1

    generated = vllm_sample(vllm_url, "vllm:generation_tokens_total")
    prompted = vllm_sample(vllm_url, "vllm:prompt_tokens_total")
    reworded = ask(client, REWORDED)  # only the verifier can serve it; minScore 0 takes any score
    assert reworded.headers["x-hermes-cache"] == "hit-semantic"
    assert 0.7 <= similarity(reworded) < THRESHOLD

    [(body, answer)] = rec.judgements()
    assert body["model"] == MODEL  # from GET /v1/models
    assert (body["max_tokens"], body["temperature"], body["logprobs"], body["top_logprobs"]) == (
        1,
        0,
        True,
        20,
    )
    assert body["cache_salt"] == verifier_salt(LOCAL.id)
    assert body["messages"][0]["content"].startswith(PROMPT) and REWORDED in body["messages"][0]["content"]
    tenant_salts = {b["cache_salt"] for b in rec.tenant_bodies()}
    assert tenant_salts and body["cache_salt"] not in tenant_salts
    # what the real engine did: one token generated, the prompt the answer reports
    usage = answer["usage"]
    assert (
        usage["completion_tokens"] == 1
        and len(answer["choices"][0]["logprobs"]["content"][0]["top_logprobs"]) == 20
    )
    assert vllm_sample(vllm_url, "vllm:generation_tokens_total") == generated + 1
    assert vllm_sample(vllm_url, "vllm:prompt_tokens_total") == prompted + usage["prompt_tokens"]

    # the sidecar read the same answer: its score, the tokens, one request and its latency
    expected = yes_no_score(first_token_logprobs(answer))
    assert sidecar_sample(client, "hermes_cache_verifier_score_sum") == pytest.approx(expected or 0.0)
    assert sidecar_sample(client, "hermes_cache_verifier_unjudged_total") == (1 if expected is None else 0)
    kind = {"kind": "served-model"}
    assert sidecar_sample(client, "hermes_cache_verifier_calls_total", **kind, outcome="ok") == 1
    assert (
        sidecar_sample(client, "hermes_cache_verifier_tokens_total", **kind, type="prompt")
        == usage["prompt_tokens"]
    )
    assert sidecar_sample(client, "hermes_cache_verifier_tokens_total", **kind, type="completion") == 1
    assert sidecar_sample(client, "hermes_cache_verifier_request_seconds_count", **kind) == 1
    assert sidecar_sample(client, "hermes_cache_errors_total", component="verifier") == 0
    assert client.get("/readyz").json()["cache"] == "ok"


def test_served_model_unjudged_answers_score_zero_and_are_refused(
    start_served: Callable[..., httpx.Client], vllm_url: str
) -> None:
    client = start_served(vllm_url, model=MODEL, scope="all")  # minScore 0.5, every candidate asked
    store(client, STORED)
    resp = ask(client, CLOSE)  # cosine and the rules would serve it; the model said neither yes nor no
    assert resp.headers["x-hermes-cache"] == "miss"
    assert_upstream_answer(resp)
    assert sidecar_sample(client, "hermes_cache_verifier_unjudged_total") == 1
    assert sidecar_sample(client, "hermes_cache_guard_rejections_total", rule="verifier") == 1
    assert sidecar_sample(client, "hermes_cache_verifier_score_sum") == 0
    assert sidecar_sample(client, "hermes_cache_errors_total", component="verifier") == 0


def test_served_model_prefix_blocks_are_reused_across_judgements_and_never_shared_with_tenants(
    start_served: Callable[..., httpx.Client], vllm_url: str
) -> None:
    async def judge(generation: str, asked: str, cached: str) -> None:
        cfg = parse_config({"cache": {"guard": {"verifier": {"kind": "served-model", "url": vllm_url}}}})
        verifier = ServedModelVerifier(cfg.cache.guard.verifier, vllm_url)  # type: ignore[arg-type]
        try:
            await verifier.judge(asked, [cached], generation=generation)
        finally:
            await verifier.aclose()

    def hits_during(action: Callable[[], object]) -> float:
        before = vllm_sample(vllm_url, "vllm:prefix_cache_hits_total")
        action()
        return vllm_sample(vllm_url, "vllm:prefix_cache_hits_total") - before

    run = time.time_ns()
    generation = f"test-{run}"  # a salt no earlier request to this server used
    asked, cached = f"What is kernel {run}?", f"Define kernel {run}."
    assert (
        hits_during(lambda: asyncio.run(judge(generation, "How do I bake bread?", "How is bread baked?")))
        == 0
    )
    # another pair, same generation: the fixed prompt's blocks come from the prefix cache
    prefix_tokens = hits_during(lambda: asyncio.run(judge(generation, asked, cached)))
    tokenized = httpx.post(
        f"{vllm_url}/tokenize",
        json={"model": MODEL, "prompt": PROMPT, "add_special_tokens": False},
        timeout=10,
    ).json()
    block = block_size(vllm_url)  # 16 on GPUs; 128 by default on this CPU build
    assert prefix_tokens >= block * (tokenized["count"] // block) > 0  # the prompt's whole blocks, at least

    # A tenant new to this server sends the very text of a judgement through the sidecar: its salt
    # differs, so none of the verifier's blocks is shared with it
    body = judgement_body(MODEL, asked, cached, verifier_salt(generation))
    client = start_served(vllm_url, model=MODEL)
    tenant = {"model": MODEL, "messages": body["messages"], "max_tokens": 1, "temperature": 0}
    assert hits_during(lambda: client.post(CHAT, json=tenant, headers={"x-tenant-id": f"t{run}"})) == 0
    # and the verifier's own salt finds its blocks again, the whole prompt but the last partial block
    again = hits_during(lambda: asyncio.run(judge(generation, asked, cached)))
    assert again > prefix_tokens


def test_served_model_failures_fall_back_by_on_error_on_the_real_server(
    start_served: Callable[..., httpx.Client], vllm_url: str
) -> None:
    # a model the server does not serve: vLLM answers 404
    lenient = start_served(vllm_url, model="no-such-model", scope="all", minScore=0.0)
    strict = start_served(vllm_url, model="no-such-model", scope="all", minScore=0.0, onError="miss")
    for client in (lenient, strict):
        store(client, STORED)
    close = ask(lenient, CLOSE)
    assert close.headers["x-hermes-cache"] == "hit-semantic" and similarity(close) >= THRESHOLD
    assert ask(lenient, REWORDED).headers["x-hermes-cache"] == "miss"  # cosine alone does not serve it
    assert ask(strict, CLOSE).headers["x-hermes-cache"] == "miss"
    for client in (lenient, strict):
        body = client.get("/readyz").json()
        assert body["cache"] == "degraded" and "HTTP 404" in body["degraded"]["verifier"]
        assert (
            sidecar_sample(client, "hermes_cache_verifier_calls_total", kind="served-model", outcome="error")
            == 1
        )
        assert sidecar_sample(client, "hermes_cache_errors_total", component="verifier") >= 1

    # slower than timeoutSeconds: a timeout, through the same path. The judge is a socket that takes
    # the connection and never answers (a tiny timeout against vLLM itself is not reliable: on a
    # loaded machine the answer can already be waiting when the read starts).
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        silent_url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        slow = start_served(vllm_url, url=silent_url, model=MODEL, scope="all", timeoutSeconds=0.5)
        store(slow, STORED)
        assert ask(slow, CLOSE).headers["x-hermes-cache"] == "hit-semantic"  # onError threshold
        assert "Timeout" in slow.get("/readyz").json()["degraded"]["verifier"]
