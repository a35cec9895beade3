"""Trust groups, experiment variants and the producer fingerprint in the sidecar (issue 16, parts 2-3).

Trust groups share vLLM's ``cache_salt`` and nothing else; variants and producers each get their own
partition and salt. The parts are tested alone, then through the sidecar under uvicorn in front of the
small real upstream of tests/fakes (it records every body it was sent, so the salt can be read).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from fakes.openai_upstream import FakeOpenAI, run_server
from hermes_sidecar.app import create_app
from hermes_sidecar.config import ConfigError, parse_config
from hermes_sidecar.dialects.openai import OpenAIDialect
from hermes_sidecar.embed import LocalEmbedder
from hermes_sidecar.keys import ConversationLimits, cache_salt, keys_for
from hermes_sidecar.tenants import Tenancy

CHAT = "/v1/chat/completions"
LIMITS = ConversationLimits()
GROUPS = {"trustGroups": [{"name": "support-bots", "tenants": ["h:bot-eu", "h:bot-us"]}]}
EXPERIMENT = {
    "header": "x-hermes-variant",
    "variants": ["control", "candidate"],
    "tenantVariants": {"h:beta-customer": "candidate"},
}


def tenancy(**cfg: Any) -> Tenancy:
    return Tenancy.from_config(parse_config(cfg), {})


# -- the parts --------------------------------------------------------------------------------------


def test_group_members_share_a_salt_identity_and_outsiders_keep_their_own() -> None:
    t = tenancy(tenancy=GROUPS)
    assert t.salt_identity("h:bot-eu") == t.salt_identity("h:bot-us") == "g:support-bots"
    assert t.salt_identity("h:acme") == "h:acme"
    # a tenant whose header value looks like a group's identity is still a tenant: ids have prefixes
    assert t.salt_identity("h:g:support-bots") == "h:g:support-bots"


def test_variant_from_header_then_tenant_mapping_then_none() -> None:
    t = tenancy(experiment=EXPERIMENT)
    assert t.variant({"x-hermes-variant": "control"}, "h:beta-customer") == "control"
    assert t.variant({}, "h:beta-customer") == "candidate"
    assert t.variant({}, "h:acme") == ""
    assert t.variant({"x-hermes-variant": "canary"}, "h:acme") is None  # not configured
    assert [Tenancy.label(v) for v in ("", "control", None)] == ["default", "control", "unknown"]


def test_without_producer_or_variant_keys_and_salts_are_what_they_were() -> None:
    req = OpenAIDialect().parse_request(CHAT, {"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert keys_for(req, "g", "t", LIMITS) == keys_for(req, "g", "t", LIMITS, producer="", variant="")
    assert cache_salt("g", "t") == cache_salt("g", "t", producer="", variant="")


def test_producer_and_variant_each_split_partition_and_salt() -> None:
    req = OpenAIDialect().parse_request(CHAT, {"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    base = keys_for(req, "g", "t", LIMITS, producer="v1-aaaa")
    others = [
        keys_for(req, "g", "t", LIMITS, producer="v1-bbbb"),
        keys_for(req, "g", "t", LIMITS, producer="v1-aaaa", variant="candidate"),
        keys_for(req, "g", "t", LIMITS),
    ]
    assert len({base.partition, *(k.partition for k in others)}) == 4
    assert len({base.exact, *(k.exact for k in others)}) == 4
    salts = {
        cache_salt("g", "t", producer="v1-aaaa"),
        cache_salt("g", "t", producer="v1-bbbb"),
        cache_salt("g", "t", producer="v1-aaaa", variant="candidate"),
        cache_salt("g", "t"),
    }
    assert len(salts) == 4


@pytest.mark.parametrize(
    ("cfg", "says"),
    [
        (
            {
                "tenancy": {
                    "trustGroups": [{"name": "a", "tenants": ["h:x"]}, {"name": "b", "tenants": ["h:x"]}]
                }
            },
            "tenant 'h:x' is in groups 'a' and 'b'",
        ),
        ({"tenancy": {"trustGroups": [{"name": "a", "tenants": ["x"]}]}}, "'x' is not a tenant id"),
        (
            {
                "tenancy": {
                    "trustGroups": [{"name": "a", "tenants": ["h:x"]}, {"name": "a", "tenants": ["h:y"]}]
                }
            },
            "the name 'a' is used twice",
        ),
        ({"experiment": {"header": "x-v"}}, "experiment.header 'x-v' needs experiment.variants"),
        ({"experiment": {"variants": ["default"]}}, "'default' is not a variant name"),
        (
            {"experiment": {"variants": ["a"], "tenantVariants": {"h:x": "b"}}},
            "experiment.tenantVariants['h:x']: 'b' is not in experiment.variants",
        ),
    ],
)
def test_bad_tenancy_config_names_the_key_and_the_value(cfg: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(cfg)
    assert says in str(err.value)


# -- through the sidecar ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[FakeOpenAI, str]]:
    fake = FakeOpenAI()
    with run_server(fake.app()) as url:
        yield fake, url


@pytest.fixture(scope="module")
def sidecar(upstream: tuple[FakeOpenAI, str]) -> Iterator[httpx.Client]:
    cfg = parse_config(
        {
            "upstream": {"url": upstream[1]},
            "cache": {"backend": "memory"},
            "tenancy": GROUPS,
            "experiment": EXPERIMENT,
            "producer": "v1-0000000000000001",
        }
    )
    with (
        run_server(create_app(cfg, embedder=LocalEmbedder()), lifespan="on") as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        yield client


def settled(client: httpx.Client) -> float:
    total = 0.0
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(("hermes_cache_stored_total", "hermes_cache_not_stored_total")):
            total += float(line.rsplit(" ", 1)[1])
    return total


def ask(client: httpx.Client, question: str, tenant: str, **headers: str) -> httpx.Response:
    before = settled(client)
    body = {"model": "tiny-llama", "messages": [{"role": "user", "content": question}]}
    resp = client.post(CHAT, json=body, headers={"x-tenant-id": tenant, **headers})
    assert resp.status_code == 200
    if resp.headers["x-hermes-cache"] == "miss":
        deadline = time.monotonic() + 5
        while settled(client) == before and time.monotonic() < deadline:
            time.sleep(0.01)
    return resp


def salts_of(fake: FakeOpenAI, question: str) -> list[str]:
    return [r.get("cache_salt") for r in fake.requests if r["messages"][-1]["content"] == question]


def test_group_members_share_the_salt_but_not_the_answers(
    sidecar: httpx.Client, upstream: tuple[FakeOpenAI, str]
) -> None:
    q = "Summarise the refund policy for annual plans"
    assert ask(sidecar, q, "bot-eu").headers["x-hermes-cache"] == "miss"
    assert ask(sidecar, q, "bot-eu").headers["x-hermes-cache"] == "hit-exact"
    # the other member: its own entries (a miss), the group's salt
    assert ask(sidecar, q, "bot-us").headers["x-hermes-cache"] == "miss"
    assert ask(sidecar, q, "acme").headers["x-hermes-cache"] == "miss"
    eu, us, acme = salts_of(upstream[0], q)
    assert eu == us != acme


def test_each_variant_has_its_own_entries_and_salt(
    sidecar: httpx.Client, upstream: tuple[FakeOpenAI, str]
) -> None:
    q = "Which plan includes single sign-on?"
    v = "x-hermes-variant"
    assert ask(sidecar, q, "acme", **{v: "control"}).headers["x-hermes-cache"] == "miss"
    assert ask(sidecar, q, "acme", **{v: "control"}).headers["x-hermes-cache"] == "hit-exact"
    assert ask(sidecar, q, "acme", **{v: "candidate"}).headers["x-hermes-cache"] == "miss"
    assert ask(sidecar, q, "acme").headers["x-hermes-cache"] == "miss"  # no variant: the default one
    control, candidate, default = salts_of(upstream[0], q)
    assert len({control, candidate, default}) == 3
    # a tenant mapped to a variant: its requests without the header are in that variant's partition
    assert ask(sidecar, q, "beta-customer").headers["x-hermes-cache"] == "miss"
    assert ask(sidecar, q, "beta-customer", **{v: "candidate"}).headers["x-hermes-cache"] == "hit-exact"


def test_an_unknown_variant_passes_through_and_is_counted_as_unknown(
    sidecar: httpx.Client, upstream: tuple[FakeOpenAI, str]
) -> None:
    q = "Is there a discount for nonprofits?"
    for _ in range(2):
        assert ask(sidecar, q, "acme", **{"x-hermes-variant": "canary"}).headers["x-hermes-cache"] == "bypass"
    salts = salts_of(upstream[0], q)
    assert len(salts) == 2 and salts[0] and salts[0] == salts[1]
    metrics = sidecar.get("/metrics").text
    assert 'hermes_cache_bypass_total{reason="unknown-variant"} 2.0' in metrics
    assert 'hermes_cache_requests_total{result="bypass",tenant="h:acme",variant="unknown"} 2.0' in metrics


def test_requests_total_carries_the_variant(sidecar: httpx.Client) -> None:
    q = "How many seats does the team plan have?"
    ask(sidecar, q, "metrics-tenant", **{"x-hermes-variant": "candidate"})
    ask(sidecar, q, "metrics-tenant", **{"x-hermes-variant": "candidate"})
    ask(sidecar, q, "metrics-tenant")
    metrics = sidecar.get("/metrics").text
    line = 'hermes_cache_requests_total{{result="{}",tenant="h:metrics-tenant",variant="{}"}} {}'
    assert line.format("miss", "candidate", "1.0") in metrics
    assert line.format("hit_exact", "candidate", "1.0") in metrics
    assert line.format("miss", "default", "1.0") in metrics
    assert line.format("hit_semantic", "default", "0.0") in metrics  # every result from the first on


def test_bypassed_requests_of_group_members_share_the_salt_too(
    sidecar: httpx.Client, upstream: tuple[FakeOpenAI, str]
) -> None:
    # a request the cache passes through (n > 1) still reaches vLLM with the group's salt
    q = "Give two taglines for the spring sale"
    body = {"model": "tiny-llama", "messages": [{"role": "user", "content": q}], "n": 2}
    for tenant in ("bot-eu", "bot-us", "acme"):
        resp = sidecar.post(CHAT, json=body, headers={"x-tenant-id": tenant})
        assert resp.headers["x-hermes-cache"] == "bypass"
    eu, us, acme = salts_of(upstream[0], q)
    assert eu == us != acme
