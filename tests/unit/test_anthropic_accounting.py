"""Prices, usage parsing and the bill of one call: what a user reads on /metrics must add up."""

from __future__ import annotations

import pytest

from hermes_sidecar.dialects.anthropic.pricing import (
    PRICE_TABLE_VERSION,
    ModelPrice,
    PriceTable,
    Rates,
    canonical_model,
)
from hermes_sidecar.dialects.anthropic.usage import StreamUsage, Usage, bill, usage_from_json


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("anthropic.claude-opus-4-8-v1:0", "claude-opus-4-8"),
        ("us.anthropic.claude-sonnet-5-v1:0", "claude-sonnet-5"),
        ("claude-opus-4-8@20260101", "claude-opus-4-8"),
        ("claude-sonnet-5[1m]", "claude-sonnet-5"),
        ("anthropic/claude-fable-5-1", "claude-fable-5-1"),
    ],
)
def test_provider_spellings_resolve_to_one_table_row(given: str, canonical: str) -> None:
    assert canonical_model(given) == canonical
    assert PriceTable().lookup(given).known


def test_unknown_model_falls_back_by_family_and_is_flagged() -> None:
    table = PriceTable()
    known = table.lookup("claude-opus-5-5")
    guessed = table.lookup("claude-opus-6")
    assert known.known and not guessed.known
    assert guessed.family == "opus" and guessed.price == known.price
    assert table.lookup("gpt-9").family == "unknown"
    assert not table.lookup("gpt-9").known


def test_minimum_cacheable_length_per_model_with_family_fallback() -> None:
    table = PriceTable()
    assert table.min_cacheable_tokens("claude-haiku-4-5-20251001") == (4096, True)
    assert table.min_cacheable_tokens("claude-opus-4-7") == (2048, True)
    assert table.min_cacheable_tokens("claude-opus-5") == (512, True)
    assert table.min_cacheable_tokens("claude-sonnet-9") == (1024, False)


def test_config_overrides_replace_rows() -> None:
    mine = ModelPrice(Rates(input=1, output=2, cache_write_5m=3, cache_write_1h=4, cache_read=0.5))
    table = PriceTable(
        prices={"claude-sonnet-5-5-20261001": mine},
        min_cacheable={"claude-sonnet-5-5": 2048},
        version="ours-1",
    )
    assert table.lookup("claude-sonnet-5-5").price == mine
    assert table.min_cacheable_tokens("claude-sonnet-5-5") == (2048, True)
    assert table.version == "ours-1" and PRICE_TABLE_VERSION != "ours-1"


def test_usage_reads_the_ttl_split_and_defaults_unsplit_writes_to_5m() -> None:
    split = usage_from_json(
        {
            "input_tokens": 12,
            "output_tokens": 30,
            "cache_creation_input_tokens": 3000,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000},
        }
    )
    assert split == Usage(input=12, output=30, cache_write_5m=1000, cache_write_1h=2000, cache_read=0)
    unsplit = usage_from_json({"input_tokens": 5, "output_tokens": 1, "cache_creation_input_tokens": 700})
    assert unsplit.cache_write_5m == 700 and unsplit.cache_write_1h == 0
    assert usage_from_json(None) == Usage()


def test_stream_usage_takes_cumulative_values_and_never_adds_them() -> None:
    start_usage = {
        "input_tokens": 9,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 2400,
        "output_tokens": 1,
    }
    stream = StreamUsage()
    stream.observe({"type": "message_start", "message": {"usage": start_usage}})
    stream.observe({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "x"}})
    # Newer API versions repeat the input-side counters in message_delta: cumulative, not increments.
    stream.observe(
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"input_tokens": 9, "cache_read_input_tokens": 2400, "output_tokens": 40},
        }
    )
    assert stream.usage() == Usage(input=9, output=40, cache_read=2400)
    # Older ones send only output_tokens there.
    older = StreamUsage()
    older.observe({"type": "message_start", "message": {"usage": start_usage}})
    older.observe({"type": "message_delta", "delta": {}, "usage": {"output_tokens": 40}})
    assert older.usage() == stream.usage()


SONNET = ModelPrice(Rates(input=3, output=15, cache_write_5m=3.75, cache_write_1h=6, cache_read=0.30))


def test_a_write_costs_a_premium_and_a_read_saves_ninety_percent() -> None:
    write = bill(Usage(input=10, output=100, cache_write_5m=10_000), SONNET)
    assert write.cost == pytest.approx((10 * 3 + 100 * 15 + 10_000 * 3.75) / 1e6)
    assert write.uncached_cost == pytest.approx((10_010 * 3 + 100 * 15) / 1e6)
    assert write.saved == pytest.approx(-10_000 * 0.75 / 1e6)  # the 25% write premium
    assert write.write_premium == pytest.approx(10_000 * 0.75 / 1e6)
    read = bill(Usage(input=10, output=100, cache_read=10_000), SONNET)
    assert read.saved == pytest.approx(10_000 * 2.70 / 1e6)
    assert read.read_discount == pytest.approx(read.saved)


def test_one_hour_writes_cost_double_the_input_price() -> None:
    b = bill(Usage(cache_write_1h=1_000_000), SONNET)
    assert b.cost == pytest.approx(6.0)
    assert b.write_premium == pytest.approx(3.0)


def test_long_prompt_band_prices_every_token_of_the_request() -> None:
    table = PriceTable()
    haiku = table.lookup("claude-haiku-5-5").price
    short = bill(Usage(input=50_000, output=1_000_000), haiku)
    long = bill(Usage(input=50_000, cache_read=60_000, output=1_000_000), haiku)
    assert short.cost == pytest.approx(50_000 * 0.10 / 1e6 + 0.50)
    assert long.cost == pytest.approx(50_000 * 0.50 / 1e6 + 60_000 * 0.05 / 1e6 + 2.50)
    assert long.uncached_cost == pytest.approx(110_000 * 0.50 / 1e6 + 2.50)


def test_prompt_cache_metrics_share_the_sidecars_cap_on_tenant_labels() -> None:
    # A client that invents a tenant per request must not create a series per request.
    from prometheus_client import CollectorRegistry

    from hermes_sidecar.dialects.anthropic import PromptCacheAccounting
    from hermes_sidecar.dialects.anthropic.pricing import PriceTable
    from hermes_sidecar.metrics import Metrics

    metrics = Metrics(max_tenants=2)
    registry = CollectorRegistry()
    acct = PromptCacheAccounting(PriceTable(), registry, tenant_label=metrics.tenant_label)
    for i in range(6):
        acct.record_call("claude-sonnet-5-5", Usage(input=10, output=5), tenant=f"h:team-{i}")
    labels = {
        s.labels["tenant"]
        for m in registry.collect()
        if m.name == "hermes_prompt_cache_cost_usd"
        for s in m.samples
        if s.name.endswith("_total")
    }
    assert len(labels) == 3 and "other" in labels
    # the four tenants past the cap are added up under 'other', none is lost
    other = {"class": "input", "tenant": "other"}
    assert registry.get_sample_value("hermes_prompt_cache_tokens_total", other) == 40
