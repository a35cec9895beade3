"""The worked example in docs/prompt-caching.md, recomputed from the code that produces /metrics."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from hermes_sidecar.dialects.anthropic import PromptCacheAccounting
from hermes_sidecar.dialects.anthropic.pricing import PriceTable
from hermes_sidecar.dialects.anthropic.usage import Usage, bill

MODEL = "claude-sonnet-5-5"
WRITE = Usage(input=30, cache_write_5m=12_000, output=250)
READ = Usage(input=30, cache_read=12_000, output=250)


def test_per_call_numbers() -> None:
    price = PriceTable().lookup(MODEL).price
    first, later = bill(WRITE, price), bill(READ, price)
    assert first.cost == pytest.approx(0.03256)
    assert first.uncached_cost == pytest.approx(0.02656)
    assert first.saved == pytest.approx(-0.006)
    assert later.cost == pytest.approx(0.00376)
    assert later.saved == pytest.approx(0.0228)


def test_metrics_over_ten_calls() -> None:
    registry = CollectorRegistry()
    acct = PromptCacheAccounting(PriceTable(), registry)

    def value(name: str) -> float:
        return registry.get_sample_value(name, {"tenant": ""}) or 0.0

    acct.record_call(MODEL, WRITE)
    assert value("hermes_prompt_cache_saved_usd_total") == 0
    assert value("hermes_prompt_cache_unrecovered_premium_usd") == pytest.approx(0.006)
    acct.record_call(MODEL, READ)
    assert value("hermes_prompt_cache_saved_usd_total") == pytest.approx(0.0168)
    assert value("hermes_prompt_cache_unrecovered_premium_usd") == 0
    for _ in range(8):
        acct.record_call(MODEL, READ)
    assert value("hermes_prompt_cache_cost_usd_total") == pytest.approx(0.0664)
    assert value("hermes_prompt_cache_uncached_cost_usd_total") == pytest.approx(0.2656)
    assert value("hermes_prompt_cache_saved_usd_total") == pytest.approx(0.1992)
    acct.record_avoided_call(MODEL, READ)
    assert value("hermes_prompt_cache_saved_usd_total") == pytest.approx(0.1992 + 0.02656)
    assert value("hermes_prompt_cache_cost_usd_total") == pytest.approx(0.0664)
