"""The sidecar's verifier (cache.guard.verifier) against a real vLLM cross-encoder on /rerank.

Upstream is the real vLLM serving ``tiny-llama`` (``vllm_url``); the verifier is a second real vLLM
serving the tiny random cross-encoder ``tiny-verifier`` (``verifier_url``); the store is in memory.
The cross-encoder's weights are random, so its scores mean nothing: about 0.49 for any pair, and
always strictly between 0 and 1 (a sigmoid). The tests only use minScore 0.0 (every score passes)
and 1.01 (none does), thresholds no score can straddle.

Questions are chosen against the default local embedder with similarityThreshold 0.95: CLOSE is
above it (cosine alone serves it), REWORDED is between the verifier's minSimilarity 0.7 and it (only
the verifier can serve it); each hit's ``x-hermes-cache-similarity`` header checks that premise.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fakes.openai_upstream import run_server
from hermes_sidecar.app import create_app
from hermes_sidecar.config import parse_config
from hermes_sidecar.embed import LocalEmbedder

pytestmark = pytest.mark.integration
CHAT = "/v1/chat/completions"
MODEL = "tiny-llama"
THRESHOLD = 0.95
STORED = "How do I install Python 3.11 on Ubuntu?"
CLOSE = "How can I install Python 3.11 on Ubuntu?"
REWORDED = "What's the procedure for setting up Python 3.11 on an Ubuntu box?"


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    return LocalEmbedder()


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
