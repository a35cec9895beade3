"""Producers and variants never see each other's entries, on the real Redis with vector search.

Sidecars sharing one Redis and one policy scope stand for the pods of one policy during a rolling
update: the old model's pods carry one producer fingerprint (``HERMES_PRODUCER``, here the config's
``producer``), the new model's another. The upstream is the small real server of tests/fakes, which
numbers its answers, so a replayed answer is recognisable.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest

import redis
from fakes.openai_upstream import FakeOpenAI, run_server
from hermes_sidecar.app import create_app
from hermes_sidecar.config import parse_config
from hermes_sidecar.embed import LocalEmbedder

pytestmark = pytest.mark.integration
CHAT = "/v1/chat/completions"
OLD, NEW = "v1-00000000000000a1", "v1-00000000000000b2"
EXPERIMENT = {"header": "x-hermes-variant", "variants": ["control", "candidate"]}


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with run_server(FakeOpenAI().app()) as url:
        yield url


@pytest.fixture
def scope() -> str:
    return f"it-{uuid.uuid4().hex[:8]}/partitions"


@pytest.fixture
def start_sidecar(redis_url: str, upstream: str, scope: str) -> Iterator[Callable[..., httpx.Client]]:
    with ExitStack() as stack:

        def start(**extra: Any) -> httpx.Client:
            cfg = parse_config(
                {
                    "upstream": {"url": upstream},
                    "cache": {"backend": "redis", "redisUrl": redis_url, "scope": scope},
                    **extra,
                }
            )
            # an embedder per sidecar: each runs in its own event loop, as each pod does
            url = stack.enter_context(run_server(create_app(cfg, embedder=LocalEmbedder()), lifespan="on"))
            return stack.enter_context(httpx.Client(base_url=url, timeout=60))

        yield start


def ask(client: httpx.Client, question: str, **headers: str) -> httpx.Response:
    body = {"model": "tiny-llama", "messages": [{"role": "user", "content": question}], "temperature": 0}
    resp = client.post(CHAT, json=body, headers={"x-tenant-id": "acme", **headers})
    assert resp.status_code == 200, resp.text
    return resp


def stored(client: httpx.Client, question: str, **headers: str) -> str:
    """Ask until the answer is stored and served back; its text."""
    first = ask(client, question, **headers)
    assert first.headers["x-hermes-cache"] == "miss"
    deadline = time.monotonic() + 10
    while (again := ask(client, question, **headers)).headers["x-hermes-cache"] != "hit-exact":
        assert time.monotonic() < deadline, "the answer was never stored"
        time.sleep(0.05)
    return answer(again)


def answer(resp: httpx.Response) -> str:
    text: str = resp.json()["choices"][0]["message"]["content"]
    return text


def test_two_producers_never_hit_each_others_entries(
    start_sidecar: Callable[..., httpx.Client], redis_url: str, scope: str
) -> None:
    old_pod, new_pod, old_pod_2 = (
        start_sidecar(producer=OLD),
        start_sidecar(producer=NEW),
        start_sidecar(producer=OLD),
    )
    q = "How do I rotate the signing keys of the billing service?"
    para = "How can I rotate the signing keys of the billing service?"
    old_answer = stored(old_pod, q)
    # another pod of the old model shares the old partition, as replicas do
    assert answer(ask(old_pod_2, q)) == old_answer
    # the new model's pod does not get it: a miss, then its own answer
    new_answer = stored(new_pod, q)
    assert new_answer != old_answer
    # semantic lookups stay in the partition too: each side gets its own model's answer
    old_para, new_para = ask(old_pod_2, para), ask(new_pod, para)
    assert old_para.headers["x-hermes-cache"] == new_para.headers["x-hermes-cache"] == "hit-semantic"
    assert (answer(old_para), answer(new_para)) == (old_answer, new_answer)
    r = redis.Redis.from_url(redis_url)
    partitions = {
        r.hget(k, "partition") for k in r.scan_iter(match=f"hermes:{scope}:g:*:entry:*", count=1000)
    }
    assert len(partitions - {None}) == 2


def test_the_producer_from_the_pod_environment_wins(
    start_sidecar: Callable[..., httpx.Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    # what render.py gives every pod: HERMES_PRODUCER; the shared ConfigMap may say something else
    monkeypatch.setenv("HERMES_PRODUCER", NEW)
    env_pod = start_sidecar(producer=OLD)
    monkeypatch.delenv("HERMES_PRODUCER")
    old_pod, new_pod = start_sidecar(producer=OLD), start_sidecar(producer=NEW)
    q = "Which regions does the archive storage replicate to?"
    stored(env_pod, q)
    assert ask(old_pod, q).headers["x-hermes-cache"] == "miss"
    assert ask(new_pod, q).headers["x-hermes-cache"] == "hit-exact"


def test_variants_never_hit_each_others_entries(start_sidecar: Callable[..., httpx.Client]) -> None:
    a, b = start_sidecar(experiment=EXPERIMENT), start_sidecar(experiment=EXPERIMENT)
    q = "What is the notice period for cancelling the enterprise plan?"
    para = "What's the notice period for cancelling the enterprise plan?"
    v = "x-hermes-variant"
    control = stored(a, q, **{v: "control"})
    candidate = stored(b, q, **{v: "candidate"})  # a miss first: control's entry is not reachable
    assert candidate != control
    # the same variant on another pod shares its partition, exact and semantic
    for pod in (a, b):
        for variant, want in (("control", control), ("candidate", candidate)):
            hit = ask(pod, para, **{v: variant})
            assert (hit.headers["x-hermes-cache"], answer(hit)) == ("hit-semantic", want)
    assert ask(b, q).headers["x-hermes-cache"] == "miss"  # no variant: the default partition
