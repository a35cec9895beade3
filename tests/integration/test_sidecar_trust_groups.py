"""Trust groups through the real sidecar and the real vLLM (tiny random model on the CPU).

Tenants A and B are in one trust group, C is in none. A sends a long system prompt; then B and C send
the same system prompt with their own questions. vLLM's own counters
(``vllm:prefix_cache_hits_total``, tokens) say what was reused: B's request reuses A's prefix blocks
(the group shares a ``cache_salt``), C's reuses nothing. Answers stay per tenant: B's copy of A's
exact request is a miss. Counters, not timing: the tiny model prefills fast either way.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest

from fakes.openai_upstream import run_server
from hermes_sidecar.app import create_app
from hermes_sidecar.config import parse_config
from hermes_sidecar.embed import LocalEmbedder

pytestmark = pytest.mark.integration
CHAT = "/v1/chat/completions"
MODEL = "tiny-llama"
HITS, QUERIES = "vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total"
GROUP = {"trustGroups": [{"name": "support-bots", "tenants": ["h:bot-a", "h:bot-b"]}]}


@pytest.fixture
def start_sidecar(
    redis_url: str, vllm_url: str, embedder: LocalEmbedder
) -> Iterator[Callable[..., httpx.Client]]:
    with ExitStack() as stack:

        def start(**extra: Any) -> httpx.Client:
            cfg = parse_config(
                {
                    "upstream": {"url": vllm_url, "timeoutSeconds": 120},
                    "cache": {
                        "backend": "redis",
                        "redisUrl": redis_url,
                        "scope": f"it-{uuid.uuid4().hex[:8]}/trust",
                        "storeTruncated": True,
                    },
                    **extra,
                }
            )
            url = stack.enter_context(run_server(create_app(cfg, embedder=embedder), lifespan="on"))
            return stack.enter_context(httpx.Client(base_url=url, timeout=120))

        yield start


def counters(vllm_url: str) -> dict[str, float]:
    text = httpx.get(vllm_url + "/metrics", timeout=30).text
    out = {}
    for name in (HITS, QUERIES):
        pattern = re.compile(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", re.M)
        out[name] = sum(float(v) for v in pattern.findall(text))
    return out


def settled_counters(vllm_url: str, before: dict[str, float], timeout: float = 10) -> dict[str, float]:
    """vLLM's counters once they moved past ``before`` (they are updated after the answer is sent)."""
    deadline = time.monotonic() + timeout
    now = counters(vllm_url)
    while now[QUERIES] <= before[QUERIES] and time.monotonic() < deadline:
        time.sleep(0.1)
        now = counters(vllm_url)
    time.sleep(0.3)  # the hits of the same request land with its queries; a last read to be sure
    return counters(vllm_url)


def system_prompt() -> str:
    """About 1,000 tokens (several 128-token prefix blocks of the CPU backend), new to vLLM. The words
    are single tokens of the tiny model's tokenizer (tests/integration/test_services.py)."""
    words = ["cache", "model", "request", "token", "prefix", "server", "redis", "vector", "search", "tenant"]
    body = " ".join(words[(i * 7 + i // 5) % len(words)] for i in range(1000))
    return f"{uuid.uuid4()} You are the support assistant. {body}"


def ask(client: httpx.Client, tenant: str, system: str, question: str) -> httpx.Response:
    body = {
        "model": MODEL,
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": question}],
        "max_tokens": 2,
        "temperature": 0,
    }
    resp = client.post(CHAT, json=body, headers={"x-tenant-id": tenant})
    assert resp.status_code == 200, resp.text
    return resp


def reused(client: httpx.Client, vllm_url: str, tenant: str, system: str, question: str) -> tuple[float, str]:
    """Prefix-cache hit tokens vLLM counted for one request, and the sidecar's cache result."""
    before = counters(vllm_url)
    resp = ask(client, tenant, system, question)
    after = settled_counters(vllm_url, before)
    return after[HITS] - before[HITS], resp.headers["x-hermes-cache"]


def test_same_group_reuses_the_prefix_another_group_does_not(
    start_sidecar: Callable[..., httpx.Client], vllm_url: str
) -> None:
    client = start_sidecar(tenancy=GROUP)
    system = system_prompt()
    first, result = reused(
        client, vllm_url, "bot-a", system, "Can I get a refund after 20 days? (ticket 101)"
    )
    assert result == "miss" and first == 0  # a system prompt vLLM has never seen
    same_group, result = reused(
        client, vllm_url, "bot-b", system, "How do I add seats mid-term? (ticket 102)"
    )
    assert result == "miss"
    assert same_group >= 512, f"bot-b reused {same_group} tokens of bot-a's prefix"
    other_group, result = reused(
        client, vllm_url, "acme", system, "When does my contract renew? (ticket 103)"
    )
    assert result == "miss"
    assert other_group == 0, f"acme, outside the group, reused {other_group} tokens"


def test_without_groups_every_tenant_is_isolated(
    start_sidecar: Callable[..., httpx.Client], vllm_url: str
) -> None:
    client = start_sidecar()
    system = system_prompt()
    reused(client, vllm_url, "bot-a", system, "Can I get a refund after 20 days? (ticket 201)")
    hits, _ = reused(client, vllm_url, "bot-b", system, "How do I add seats mid-term? (ticket 202)")
    assert hits == 0
    # and the same tenant again does reuse its own prefix: the counters work in this run
    own, _ = reused(client, vllm_url, "bot-a", system, "Where do I download invoices? (ticket 203)")
    assert own >= 512


def test_group_members_never_get_each_others_answers(start_sidecar: Callable[..., httpx.Client]) -> None:
    client = start_sidecar(tenancy=GROUP)
    system = system_prompt()
    q = "Can I get a refund after 20 days on the annual plan?"
    assert ask(client, "bot-a", system, q).headers["x-hermes-cache"] == "miss"
    deadline = time.monotonic() + 10
    while ask(client, "bot-a", system, q).headers["x-hermes-cache"] != "hit-exact":
        assert time.monotonic() < deadline, "bot-a's answer was never stored"
        time.sleep(0.1)
    assert ask(client, "bot-b", system, q).headers["x-hermes-cache"] == "miss"
