"""Every metric the chart's dashboards and rules query exists: in vLLM as we run it, or in what this
project registers. Other stacks ship dashboards that query vLLM metrics removed long ago and show
empty panels; this test keeps ours from doing the same.

vLLM's names come from docs/vllm-metrics.txt (the names the real vLLM we run exposes, one per line)
when it exists, else from the list below (../shared/notes/FACTS.md). The project's names come from
the metric registries of hermes_sidecar and hermes_operator, plus the fixed contract names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from test_chart_common import CHART, ROOT, rule_groups

# Current vLLM metric names as exposed (counters with _total, histograms with _bucket/_sum/_count).
VLLM_FALLBACK = {
    "vllm:prefix_cache_queries_total",
    "vllm:prefix_cache_hits_total",
    "vllm:external_prefix_cache_queries_total",
    "vllm:external_prefix_cache_hits_total",
    "vllm:prompt_tokens_cached_total",
    "vllm:kv_cache_usage_perc",
    "vllm:num_requests_waiting",
    "vllm:num_requests_running",
    "vllm:num_preemptions_total",
    *(
        f"vllm:{h}_seconds_{s}"
        for h in ("time_to_first_token", "inter_token_latency", "e2e_request_latency")
        for s in ("bucket", "sum", "count")
    ),
}
# Removed from vLLM: a dashboard querying them shows nothing.
REMOVED_VLLM = re.compile(
    r"vllm:(gpu_cache_usage_perc|cpu_cache_usage_perc|gpu_prefix_cache_\w+|cpu_prefix_cache_\w+"
    r"|time_per_output_token_seconds\w*)"
)
# Fixed by ARCHITECTURE.md ("Metric names"): the sidecar must register these.
CONTRACT = {
    "hermes_cache_requests_total",
    "hermes_cache_lookup_seconds_bucket",
    "hermes_cache_lookup_seconds_sum",
    "hermes_cache_lookup_seconds_count",
    "hermes_cache_entries",
    "hermes_prompt_cache_tokens_total",
    "hermes_prompt_cache_cost_usd_total",
    "hermes_prompt_cache_saved_usd_total",
}

_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "and",
    "or",
    "unless",
}
_SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
    "info": ("_info",),
}


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression (or a Grafana label_values() query) selects."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)  # string literals
    text = re.sub(r"\{[^{}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\[\]]*\]", " ", text)  # ranges and subqueries
    text = re.sub(r"\$\{?\w+\}?", " ", text)  # Grafana variables
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", " ", text)
    text = re.sub(r"\blabel_values\s*\(\s*([\w:]+)\s*,[^()]*\)", r" \1 ", text)  # (metric, label)
    names = set()
    for m in re.finditer(r"(?<![\w:.])([a-zA-Z_:][\w:]*)(\s*\()?", text):
        name, call = m.group(1), m.group(2)
        if not call and name not in _KEYWORDS:
            names.add(name)
    return names


def _registered(registry: CollectorRegistry) -> set[str]:
    out = set()
    for family in registry.collect():
        out |= {family.name + s for s in _SUFFIXES[family.type]}
    return out


def project_registries() -> set[str]:
    from hermes_operator.metrics import OperatorMetrics
    from hermes_sidecar.dialects.anthropic import PromptCacheAccounting
    from hermes_sidecar.dialects.anthropic.pricing import PriceTable
    from hermes_sidecar.metrics import Metrics

    prompt = CollectorRegistry()
    PromptCacheAccounting(PriceTable(), prompt)
    return _registered(Metrics().registry) | _registered(prompt) | _registered(OperatorMetrics().registry)


def vllm_names() -> set[str]:
    listed = ROOT / "docs" / "vllm-metrics.txt"
    if not listed.exists():
        return VLLM_FALLBACK
    names = {ln.split()[0] for ln in listed.read_text().splitlines() if ln.strip() and not ln.startswith("#")}
    assert names, f"{listed} lists no metric names"
    return names


def _dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted((CHART / "dashboards").glob("*.json"))}


def _panels(dashboard: dict[str, Any]) -> Iterable[dict[str, Any]]:
    for p in dashboard["panels"]:
        yield p
        yield from p.get("panels", [])


def dashboard_queries() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, d in _dashboards().items():
        exprs = [t["expr"] for p in _panels(d) for t in p.get("targets", [])]
        for v in d["templating"]["list"]:
            q = v.get("query")
            if v["type"] == "query":
                exprs.append(q["query"] if isinstance(q, dict) else q)
        out[name] = exprs
    return out


def rule_exprs() -> list[str]:
    return [r["expr"] for g in rule_groups() for r in g["rules"]]


def recorded_names() -> set[str]:
    return {r["record"] for g in rule_groups() for r in g["rules"] if "record" in r}


def _normalise(name: str) -> str:
    # docs/vllm-metrics.txt may list families (vllm:x) or samples (vllm:x_total, vllm:x_bucket).
    return re.sub(r"_(total|bucket|sum|count|created)$", "", name)


def known(name: str, vllm: set[str], project: set[str]) -> bool:
    if name in vllm or name in project:
        return True
    return name.startswith("vllm:") and _normalise(name) in {_normalise(n) for n in vllm}


def test_the_extractor_finds_metrics_and_nothing_else() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (le, policy) (rate(vllm:time_to_first_token_seconds_bucket"
        '{namespace=~"$ns", policy="a b"}[$__rate_interval])))'
        " / on (policy) group_left (x) (foo:bar:rate5m offset 1h > 0.5e3)"
        ' and label_values(hermes_cache_requests_total{result="miss"}, tenant)'
    )
    assert metric_names(expr) == {
        "vllm:time_to_first_token_seconds_bucket",
        "foo:bar:rate5m",
        "hermes_cache_requests_total",
    }


def test_the_dashboards_show_the_prefix_cache_kv_cache_queue_and_our_results() -> None:
    used = {n for exprs in dashboard_queries().values() for e in exprs for n in metric_names(e)}
    assert {
        "vllm:prefix_cache_hits_total",
        "vllm:prefix_cache_queries_total",
        "vllm:kv_cache_usage_perc",
        "vllm:num_requests_waiting",
        "vllm:time_to_first_token_seconds_bucket",
        "vllm:inter_token_latency_seconds_bucket",
        "hermes_cache_requests_total",
        "hermes_prompt_cache_cost_usd_total",
        "hermes_prompt_cache_saved_usd_total",
    } <= used


@pytest.mark.parametrize("dashboard", sorted(_dashboards()))
def test_every_dashboard_metric_exists(dashboard: str) -> None:
    vllm, project, recorded = vllm_names(), CONTRACT | project_registries(), recorded_names()
    unknown = {
        n
        for e in dashboard_queries()[dashboard]
        for n in metric_names(e)
        if n not in recorded and not known(n, vllm, project)
    }
    assert unknown == set()


def test_every_rule_metric_exists() -> None:
    vllm, project, recorded = vllm_names(), CONTRACT | project_registries(), recorded_names()
    unknown = {
        n for e in rule_exprs() for n in metric_names(e) if n not in recorded and not known(n, vllm, project)
    }
    assert unknown == set()


def test_recording_rules_are_used_only_after_they_are_defined_in_the_same_group() -> None:
    # Prometheus evaluates a group's rules in order but groups independently: a rule reading a
    # recorded series from a later rule or another group sees the previous evaluation's value.
    recorded = recorded_names()
    for group in rule_groups():
        seen: set[str] = set()
        for r in group["rules"]:
            uses = metric_names(r["expr"]) & recorded
            assert uses <= seen, (r.get("record") or r.get("alert"), uses - seen)
            if "record" in r:
                seen.add(r["record"])


def test_the_project_registers_the_contract_names() -> None:
    assert project_registries() >= CONTRACT


def test_no_removed_vllm_metric_anywhere_in_the_chart() -> None:
    offenders = [
        f"{p.relative_to(ROOT)}: {m.group(0)}"
        for p in sorted(CHART.rglob("*"))
        if p.is_file()
        for m in REMOVED_VLLM.finditer(p.read_text(errors="replace"))
    ]
    assert offenders == []


def test_the_vllm_name_list_has_none_of_the_removed_names() -> None:
    assert [n for n in vllm_names() if REMOVED_VLLM.fullmatch(n)] == []
