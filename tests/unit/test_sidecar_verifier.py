"""The verifier: a pairwise model that confirms each semantic candidate before it is served.

The verifier here is a small real HTTP server speaking vLLM's ``/rerank`` wire format with scores the
test chooses (a real cross-encoder's scores cannot be chosen; tests/integration has the real vLLM
one). The embedder is the real default one and the decision path is the live one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fakes.openai_upstream import run_server
from hermes_sidecar.cache import HIT_EXACT, HIT_SEMANTIC, MISS, CacheService
from hermes_sidecar.config import ConfigError, SidecarConfig, parse_config
from hermes_sidecar.dialects.base import CachedAnswer
from hermes_sidecar.dialects.openai import CHAT, OpenAIDialect
from hermes_sidecar.embed import LocalEmbedder
from hermes_sidecar.generations import LOCAL
from hermes_sidecar.metrics import Metrics
from hermes_sidecar.store.memory import MemoryStore
from hermes_sidecar.verify import RerankVerifier, VerifierError, build_verifier

STORED = "Where is my order?"
# cosine 0.80 with the default embedder: below the 0.85 threshold, above the verifier's 0.7 gate
REWORDED = "Can you tell me where my parcel is?"
# cosine 0.99: cosine alone serves it
CLOSE = "Where's my order?"


@dataclass
class FakeReranker:
    """vLLM's ``POST /rerank``: ``{"model", "query", "documents"}`` -> ``results[]`` sorted by score."""

    scores: dict[str, float] = field(default_factory=dict)  # document text -> score (default 0.0)
    status: int = 200
    drop_index: bool = False
    calls: list[dict[str, Any]] = field(default_factory=list)
    auth: list[str | None] = field(default_factory=list)

    async def _rerank(self, request: Request) -> Response:
        body = await request.json()
        self.calls.append(body)
        self.auth.append(request.headers.get("authorization"))
        if self.status != 200:
            return JSONResponse({"error": {"message": "injected", "code": self.status}}, self.status)
        results = [
            {
                "index": i,
                "document": {"text": doc, "multi_modal": None},
                "relevance_score": self.scores.get(doc, 0.0),
            }
            for i, doc in enumerate(body["documents"])
        ]
        results.sort(key=lambda r: -float(r["relevance_score"]))  # vLLM answers best first
        if self.drop_index:
            results = results[:-1]
        return JSONResponse(
            {
                "id": "score-1",
                "model": body["model"],
                "usage": {"prompt_tokens": 9, "total_tokens": 9},
                "results": results,
            }
        )

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/rerank", self._rerank, methods=["POST"])])


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    return LocalEmbedder()


@pytest.fixture
def reranker() -> Iterator[tuple[FakeReranker, str]]:
    fake = FakeReranker()
    with run_server(fake.app()) as url:
        yield fake, url


def _config(url: str, **verifier: Any) -> SidecarConfig:
    return parse_config({"cache": {"guard": {"verifier": {"url": url, "model": "xenc", **verifier}}}})


def _answer(question: str) -> CachedAnswer:
    message = {"role": "assistant", "content": "the answer to " + question}
    return CachedAnswer(
        "openai",
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": "m",
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9},
        },
    )


class Harness:
    def __init__(self, cfg: SidecarConfig, embedder: LocalEmbedder, *, with_verifier: bool = True):
        self.metrics = Metrics()
        self.cache = CacheService(
            cfg.cache,
            MemoryStore(100),
            embedder,
            self.metrics,
            generation=LOCAL,
            retry_seconds=0.05,
            verifier=build_verifier(cfg.cache.guard.verifier) if with_verifier else None,
        )
        self.dialect = OpenAIDialect()

    def _req(self, text: str) -> Any:
        return self.dialect.parse_request(
            CHAT, {"model": "m", "messages": [{"role": "user", "content": text}], "temperature": 0}
        )

    async def ask(self, text: str, *, store: bool = True) -> Any:
        decision = await self.cache.decide(self._req(text), {}, "tenant-a")
        if store and decision.result == MISS:
            await self.cache.store_answer(decision, _answer(text))
            await self.cache.drain()
        return decision

    def sample(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0

    async def aclose(self) -> None:
        await self.cache.aclose()


async def test_verifier_serves_a_reworded_question_that_cosine_alone_misses(
    reranker: tuple[FakeReranker, str], embedder: LocalEmbedder
) -> None:
    fake, url = reranker
    fake.scores[STORED] = 0.93
    cfg = _config(url)
    plain = Harness(cfg, embedder, with_verifier=False)
    verified = Harness(cfg, embedder)
    try:
        for h in (plain, verified):
            assert (await h.ask(STORED)).result == MISS
        assert (await plain.ask(REWORDED, store=False)).result == MISS  # below the threshold
        hit = await verified.ask(REWORDED, store=False)
        assert hit.result == HIT_SEMANTIC and hit.entry is not None and hit.entry.text == STORED
        assert 0.7 <= (hit.similarity or 0) < cfg.cache.similarityThreshold
        # one call, the new question against the cached one, under the configured model name
        assert fake.calls == [{"model": "xenc", "query": REWORDED, "documents": [STORED]}]
        assert verified.sample("hermes_cache_verifier_seconds_count") == 1
        assert verified.sample("hermes_cache_verifier_score_count") == 1
    finally:
        await plain.aclose()
        await verified.aclose()


async def test_verifier_refuses_a_candidate_cosine_and_rules_would_serve(
    reranker: tuple[FakeReranker, str], embedder: LocalEmbedder
) -> None:
    fake, url = reranker
    fake.scores[STORED] = 0.2  # below minScore 0.5
    h = Harness(_config(url), embedder)
    try:
        await h.ask(STORED)
        refused = await h.ask(CLOSE, store=False)
        assert refused.result == MISS and refused.reason == "verifier"
        assert h.sample("hermes_cache_guard_rejections_total", rule="verifier") == 1
        fake.scores[STORED] = 0.5  # at minScore: served
        assert (await h.ask(CLOSE, store=False)).result == HIT_SEMANTIC
    finally:
        await h.aclose()


async def test_exact_repeat_does_not_ask_the_verifier(
    reranker: tuple[FakeReranker, str], embedder: LocalEmbedder
) -> None:
    fake, url = reranker
    h = Harness(_config(url), embedder)
    try:
        await h.ask(STORED)
        assert (await h.ask(STORED, store=False)).result == HIT_EXACT
        assert fake.calls == []
    finally:
        await h.aclose()


async def test_verifier_sees_every_candidate_in_one_call_and_the_best_confirmed_one_is_served(
    reranker: tuple[FakeReranker, str], embedder: LocalEmbedder
) -> None:
    fake, url = reranker
    other = "Can you tell me where my package is?"  # closer to REWORDED than STORED is
    fake.scores[STORED] = 0.9  # the verifier confirms only the less similar cached question
    h = Harness(_config(url), embedder)
    try:
        await h.ask(other)
        assert (await h.ask(STORED)).result == MISS  # verified against `other`: refused, so stored
        hit = await h.ask(REWORDED, store=False)
        last = fake.calls[-1]
        assert last["query"] == REWORDED and last["documents"] == [other, STORED]  # best first
        assert hit.result == HIT_SEMANTIC and hit.entry is not None and hit.entry.text == STORED
        assert h.sample("hermes_cache_guard_rejections_total", rule="verifier") == 2
    finally:
        await h.aclose()


async def test_verifier_may_overturn_only_the_rules_it_is_given(
    reranker: tuple[FakeReranker, str], embedder: LocalEmbedder
) -> None:
    fake, url = reranker
    stored, asked = "How do I switch energy supplier?", "How do I change energy supplier?"
    fake.scores[stored] = 0.9
    strict = Harness(_config(url), embedder)
    lenient = Harness(_config(url, overrule=["edit"]), embedder)
    try:
        for h in (strict, lenient):
            await h.ask(stored)
        vetoed = await strict.ask(asked, store=False)
        assert vetoed.result == MISS and vetoed.reason == "edit"  # the guard's one-word-edit rule
        assert fake.calls == []  # a final veto is not sent to the verifier
        overturned = await lenient.ask(asked, store=False)
        assert overturned.result == HIT_SEMANTIC and len(fake.calls) == 1
        fake.status = 500  # without the verifier, the rule's veto stands again
        assert (await lenient.ask(asked, store=False)).result == MISS
    finally:
        await strict.aclose()
        await lenient.aclose()


async def test_verifier_down_falls_back_to_the_threshold_then_resumes(
    reranker: tuple[FakeReranker, str], embedder: LocalEmbedder
) -> None:
    fake, url = reranker
    fake.scores[STORED] = 0.9
    h = Harness(_config(url), embedder)
    try:
        await h.ask(STORED)
        fake.status = 500
        # onError: threshold -> as without a verifier: the close question is served, the reworded not
        assert (await h.ask(CLOSE, store=False)).result == HIT_SEMANTIC
        assert (await h.ask(REWORDED, store=False)).result == MISS
        assert "verifier" in h.cache.degraded() and "HTTP 500" in h.cache.degraded()["verifier"]
        # counted once: the reworded question was never a candidate without the verifier
        assert h.sample("hermes_cache_errors_total", component="verifier") == 1
        assert h.sample("hermes_cache_degraded", component="verifier") == 1
        fake.status = 200
        for _ in range(100):  # the probe finds it back
            if "verifier" not in h.cache.degraded():
                break
            await asyncio.sleep(0.02)
        assert h.cache.degraded() == {}
        assert (await h.ask(REWORDED, store=False)).result == HIT_SEMANTIC
    finally:
        await h.aclose()


async def test_verifier_down_with_on_error_miss_serves_no_semantic_hit(
    reranker: tuple[FakeReranker, str], embedder: LocalEmbedder
) -> None:
    fake, url = reranker
    h = Harness(_config(url, onError="miss"), embedder)
    try:
        await h.ask(STORED)
        fake.status = 503
        refused = await h.ask(CLOSE, store=False)
        assert refused.result == MISS and refused.reason == "verifier-error"
        assert (await h.ask(STORED, store=False)).result == HIT_EXACT  # exact reuse goes on
    finally:
        await h.aclose()


async def test_unreachable_verifier_is_a_failure_not_a_crash(embedder: LocalEmbedder) -> None:
    # nothing listens on port 9 of loopback (discard): connection refused
    h = Harness(_config("http://127.0.0.1:9", timeoutSeconds=0.5), embedder)
    try:
        await h.ask(STORED)
        assert (await h.ask(CLOSE, store=False)).result == HIT_SEMANTIC  # onError: threshold
        assert "ConnectError" in h.cache.degraded()["verifier"]
    finally:
        await h.aclose()


async def test_an_answer_missing_a_candidate_is_an_error_that_says_which(
    reranker: tuple[FakeReranker, str],
) -> None:
    fake, url = reranker
    fake.drop_index = True
    v = RerankVerifier(_config(url).cache.guard.verifier)  # type: ignore[arg-type]
    try:
        with pytest.raises(VerifierError, match=r"scored 1 of 2 candidates \(missing index 1\)"):
            await v.scores("q", ["a", "b"])
    finally:
        await v.aclose()


async def test_api_key_file_is_sent_and_an_unreadable_one_is_reported(
    reranker: tuple[FakeReranker, str], tmp_path: Path
) -> None:
    fake, url = reranker
    key = tmp_path / "key"
    key.write_text("s3cret\n")
    v = RerankVerifier(_config(url, apiKeyFile=str(key)).cache.guard.verifier)  # type: ignore[arg-type]
    missing = RerankVerifier(
        _config(url, apiKeyFile=str(tmp_path / "nope")).cache.guard.verifier  # type: ignore[arg-type]
    )
    try:
        assert await v.scores("q", ["a"]) == [0.0]
        assert fake.auth == ["Bearer s3cret"]
        with pytest.raises(VerifierError, match=r"cache.guard.verifier.apiKeyFile .*nope.* cannot be read"):
            await missing.scores("q", ["a"])
        assert len(fake.calls) == 1
    finally:
        await v.aclose()
        await missing.aclose()


@pytest.mark.parametrize(
    ("cache", "message"),
    [
        (
            {"similarityThreshold": 0.6, "guard": {"verifier": {"url": "http://v:8000", "model": "m"}}},
            "cache.guard.verifier.minSimilarity 0.7 is above cache.similarityThreshold 0.6",
        ),
        (
            {"guard": {"verifier": {"url": "v:8000", "model": "m"}}},
            "cache.guard.verifier.url 'v:8000' must be an http:// or https:// base URL",
        ),
        (
            {"guard": {"enabled": False, "verifier": {"url": "http://v:8000", "model": "m"}}},
            "cache.guard.verifier needs cache.guard.enabled: true",
        ),
        (
            {"guard": {"verifier": {"url": "http://v:8000", "model": "m", "onError": "open"}}},
            "cache.guard.verifier.onError",
        ),
        (
            {"guard": {"verifier": {"url": "http://v:8000", "model": "m", "overrule": ["tone"]}}},
            "cache.guard.verifier.overrule.0: Input should be 'negation', 'number'",
        ),
    ],
)
def test_bad_verifier_config_is_refused_naming_the_field(cache: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        parse_config({"cache": cache})
