"""Every metric the chart's dashboards and rules query exists: in vLLM as we run it, or in what this
project registers. Other stacks ship dashboards that query vLLM metrics removed long ago and show
empty panels; this test keeps ours from doing the same.

vLLM's names come from docs/vllm-metrics.txt (the names the real vLLM we run exposes, one per line)
when it exists, else from the list below (../shared/notes/FACTS.md). The project's names come from
the metric registries of hermes_sidecar and hermes_operator, plus the fixed contract names.

Labels get the same treatment: a `by (...)` or a label matcher naming a label the metric does not
carry groups everything into one series or matches nothing, again without an error. A metric's
labels are the ones its registry declares plus the target labels of the monitor that scrapes it.
Every dashboard query also goes through the real `promtool`, which parses it as Prometheus would.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from test_chart_common import CHART, ROOT, one, promtool_path, render, rule_groups

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


def _registries() -> dict[str, CollectorRegistry]:
    """The project's registries: the sidecar's two (scraped by the PodMonitor), the operator's."""
    from hermes_operator.metrics import OperatorMetrics
    from hermes_sidecar.dialects.anthropic import PromptCacheAccounting
    from hermes_sidecar.dialects.anthropic.pricing import PriceTable
    from hermes_sidecar.metrics import Metrics

    prompt = CollectorRegistry()
    PromptCacheAccounting(PriceTable(), prompt)
    return {"sidecar": Metrics().registry, "prompt": prompt, "operator": OperatorMetrics().registry}


def project_registries() -> set[str]:
    return set().union(*(_registered(r) for r in _registries().values()))


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


# -- labels ------------------------------------------------------------------------------------------

# Target labels prometheus-operator puts on every series of a PodMonitor / ServiceMonitor target
# (`instance` from the scrape address); the chart's relabelings add theirs (read from the render).
POD_TARGET_LABELS = {"namespace", "pod", "container", "endpoint", "job", "instance"}
SERVICE_TARGET_LABELS = {"namespace", "service", "pod", "container", "endpoint", "job", "instance"}


@functools.cache
def _relabelled(kind: str) -> frozenset[str]:
    on = {"enabled": True}
    monitor = one(render({"monitoring": {"podMonitor": on, "serviceMonitor": on}}), kind)
    endpoints = monitor["spec"].get("podMetricsEndpoints") or monitor["spec"]["endpoints"]
    return frozenset(
        r["targetLabel"] for e in endpoints for r in e.get("relabelings", []) if "targetLabel" in r
    )


def _declared(registry: CollectorRegistry) -> dict[str, set[str]]:
    """Sample name -> the label names its collector declares (`le` added on histogram buckets)."""
    collectors: dict[Any, list[str]] = getattr(registry, "_collector_to_names", {})
    assert collectors, "prometheus_client no longer keeps CollectorRegistry._collector_to_names"
    out: dict[str, set[str]] = {}
    for collector, names in collectors.items():
        labels = set(getattr(collector, "_labelnames", ()))
        for n in names:
            out[n] = labels | ({"le"} if n.endswith("_bucket") else set())
    return out


def metric_labels() -> dict[str, set[str]]:
    """Every project and vLLM sample name -> the labels its series carry once scraped. vLLM's own
    labels are not in docs/vllm-metrics.txt, so only the target labels count for vLLM series."""
    pod = POD_TARGET_LABELS | _relabelled("PodMonitor")
    # The ServiceMonitor keeps the operator's own labels (honorLabels), e.g. namespace and policy.
    service = SERVICE_TARGET_LABELS | _relabelled("ServiceMonitor")
    out: dict[str, set[str]] = {}
    for name in vllm_names():
        out[name] = pod | ({"le"} if name.endswith("_bucket") else set())
    for source, registry in _registries().items():
        for name, labels in _declared(registry).items():
            out[name] = labels | (service if source == "operator" else pod)
    return out


def _without_strings(expr: str) -> str:
    return re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)


def _balanced(text: str, at: int, step: int) -> str:
    """The parenthesised group that opens (step 1) or closes (step -1) at text[at]."""
    depth, i = 0, at
    while 0 <= i < len(text):
        depth += {"(": step, ")": -step}.get(text[i], 0)
        if depth == 0:
            return text[min(at, i) : max(at, i) + 1]
        i += step
    raise AssertionError(f"unbalanced parentheses in {text!r}")


def groupings(expr: str) -> list[tuple[set[str], set[str]]]:
    """(labels, metrics) of every `by (...)` aggregation: the labels it groups by and the metrics it
    aggregates, in either form (`sum by (x) (...)`, `sum (...) by (x)`)."""
    text = re.sub(r"\[[^\[\]]*\]", " ", _without_strings(expr))
    out = []
    for m in re.finditer(r"\bby\s*\(([^()]*)\)", text):
        labels = {x.strip() for x in m.group(1).split(",") if x.strip()}
        before = text[: m.start()].rstrip()
        if before.endswith(")"):
            arg = _balanced(text, len(before) - 1, -1)
        else:
            after = m.end() + len(text[m.end() :]) - len(text[m.end() :].lstrip())
            arg = _balanced(text, after, 1)
        out.append((labels, metric_names(arg)))
    return out


def label_uses(expr: str) -> set[tuple[str, str]]:
    """(metric, label) pairs an expression relies on: its label matchers, its `by (...)` groupings
    and Grafana's label_values(metric, label)."""
    text = _without_strings(expr)
    uses = set()
    for m in re.finditer(r"(?<![\w:])([a-zA-Z_:][\w:]*)\s*\{([^{}]*)\}", text):
        for label in re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", m.group(2)):
            uses.add((m.group(1), label))
    for m in re.finditer(r"\blabel_values\s*\(\s*([\w:]+)\s*(?:\{[^{}]*\})?\s*,\s*(\w+)\s*\)", text):
        uses.add((m.group(1), m.group(2)))
    for labels, metrics in groupings(expr):
        uses |= {(n, label) for n in metrics for label in labels}
    return uses


def test_the_label_extractor_finds_matchers_groupings_and_label_values() -> None:
    expr = (
        'histogram_quantile(0.9, sum by (le, policy) (rate(a_bucket{namespace=~"$ns", x="{y=1}"}'
        '[$__rate_interval]))) / on (policy) sum(b_total{z!="("}) by (tenant)'
        ' and label_values(c_total{q="1"}, variant)'
    )
    assert label_uses(expr) == {
        ("a_bucket", "namespace"),
        ("a_bucket", "x"),
        ("a_bucket", "le"),
        ("a_bucket", "policy"),
        ("b_total", "z"),
        ("b_total", "tenant"),
        ("c_total", "q"),
        ("c_total", "variant"),
    }


def test_the_label_check_would_catch_a_label_the_metric_lacks() -> None:
    labels = metric_labels()
    assert "variant" in labels["hermes_cache_requests_total"]
    assert "policy" in labels["hermes_cache_verifier_calls_total"]  # PodMonitor relabeling
    assert "variant" not in labels["hermes_cache_verifier_calls_total"]
    assert "le" in labels["hermes_cache_verifier_request_seconds_bucket"]
    assert "le" not in labels["hermes_cache_verifier_request_seconds_count"]


@pytest.mark.parametrize("dashboard", sorted(_dashboards()))
def test_every_label_a_dashboard_query_uses_is_on_its_metric(dashboard: str) -> None:
    labels, recorded = metric_labels(), recorded_names()
    missing = {
        f"{name}: {label}"
        for e in dashboard_queries()[dashboard]
        for name, label in label_uses(e)
        if name not in recorded and label not in labels.get(name, labels.get(_normalise(name), set()))
    }
    assert missing == set()


@pytest.mark.parametrize("dashboard", sorted(_dashboards()))
def test_every_histogram_query_keeps_le(dashboard: str) -> None:
    # histogram_quantile() and heatmaps need the buckets apart: an aggregation of _bucket without le
    # sums them into one meaningless number.
    for e in dashboard_queries()[dashboard]:
        for labels, metrics in groupings(e):
            for n in metrics:
                if n.endswith("_bucket"):
                    assert "le" in labels, e
        assert all(
            any(n in ms for _, ms in groupings(e)) for n in metric_names(e) if n.endswith("_bucket")
        ), e


# -- promtool ----------------------------------------------------------------------------------------


def _as_promql(expr: str) -> str:
    """A dashboard query as Grafana sends it: range variables become a duration, the rest (inside
    label matchers) the value of "All"."""
    expr = re.sub(r"\$\{?__(rate_interval|interval|range)\}?", "5m", expr)
    return re.sub(r"\$\{?\w+\}?", ".*", expr)


def _promtool_check(rules: list[dict[str, str]], path: Path) -> subprocess.CompletedProcess[str]:
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard-queries", "rules": rules}]}))
    return subprocess.run(
        [promtool_path(), "check", "rules", str(path)], capture_output=True, text=True, timeout=120
    )


def test_every_dashboard_query_parses_under_promtool(tmp_path: Path) -> None:
    rules = [
        {
            "record": f"dashboard:{name.removesuffix('.json').replace('-', '_')}:p{p['id']}_{t['refId']}",
            "expr": e,
        }
        for name, d in _dashboards().items()
        for p in _panels(d)
        for t in p.get("targets", [])
        for e in [_as_promql(t["expr"])]
    ]
    assert len(rules) > 40
    proc = _promtool_check(rules, tmp_path / "dashboards.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # ... and promtool does refuse a query with one parenthesis too many.
    broken = [{"record": "dashboard:broken", "expr": rules[-1]["expr"] + ")"}]
    assert _promtool_check(broken, tmp_path / "broken.yaml").returncode != 0


# -- what the dashboards show --------------------------------------------------------------------------

# Sidecar features whose metrics the dashboards show, each in a collapsed row of its own: the metrics
# its panels query, and the labels they split them by.
FEATURE_ROWS = {
    "experiment variants": ({"hermes_cache_requests_total"}, {"variant"}),
    "verifier": (
        {
            "hermes_cache_verifier_calls_total",
            "hermes_cache_verifier_seconds_bucket",
            "hermes_cache_verifier_request_seconds_bucket",
            "hermes_cache_verifier_score_bucket",
            "hermes_cache_verifier_score_count",
            "hermes_cache_verifier_tokens_total",
            "hermes_cache_verifier_unjudged_total",
            "hermes_cache_verifier_skipped_total",
        },
        {"kind", "outcome", "type"},
    ),
    "similarity decay": (
        {"hermes_cache_served_age_seconds_bucket", "hermes_cache_decay_refreshes_total"},
        {"kind"},
    ),
    "tool plans": ({"hermes_cache_tool_plan_requests_total"}, {"stage", "result"}),
    "guard": (
        {
            "hermes_cache_guard_rejections_total",
            "hermes_cache_semantic_refusals_total",
            "hermes_cache_hit_similarity_bucket",
        },
        {"rule", "reason"},
    ),
}

# Sidecar metrics no dashboard shows, on purpose. A new metric goes on a dashboard or in this list.
NOT_ON_DASHBOARDS = {
    "hermes_cache_tenant_label_overflow",  # a configuration hint (metrics.maxTenants), read ad hoc
    "hermes_cache_generation_entries",  # per generation: /admin/stats shows it better
    "hermes_cache_generation_info",  # read by the hit-rate-collapse alert
    "hermes_cache_generation_switches",  # the operator's counter is on the Serving dashboard
    "hermes_cache_bypass",
    "hermes_cache_stored",
    "hermes_cache_not_stored",
    "hermes_cache_deleted_entries",
    "hermes_cache_prefix_cache_resets",
    "hermes_cache_degraded",  # /readyz says it; the fail-open alert reads hermes_cache_requests_total
}


def _rows() -> list[dict[str, Any]]:
    return [p for d in _dashboards().values() for p in d["panels"] if p["type"] == "row"]


@pytest.mark.parametrize("feature", sorted(FEATURE_ROWS))
def test_each_sidecar_feature_has_a_collapsed_row_of_panels(feature: str) -> None:
    metrics, split_by = FEATURE_ROWS[feature]
    found = []
    for row in _rows():
        exprs = [t["expr"] for p in row["panels"] for t in p["targets"]]
        used = {n for e in exprs for n in metric_names(e)}
        grouped = {label for e in exprs for labels, _ in groupings(e) for label in labels}
        if metrics <= used and split_by <= grouped:
            found.append(row["title"])
    assert len(found) == 1, (feature, found)
    (row,) = [r for r in _rows() if r["title"] == found[0]]
    assert row["collapsed"] is True and row["panels"], row["title"]


def test_the_verifier_row_shows_latency_p50_and_p99() -> None:
    exprs = [t["expr"] for r in _rows() for p in r["panels"] for t in p["targets"]]
    for histogram in ("hermes_cache_verifier_seconds_bucket", "hermes_cache_verifier_request_seconds_bucket"):
        quantiles = {
            m.group(1)
            for e in exprs
            if histogram in e
            for m in re.finditer(r"histogram_quantile\(([\d.]+),", e)
        }
        assert {"0.5", "0.99"} <= quantiles, histogram


def test_every_sidecar_metric_is_on_a_dashboard_or_left_off_on_purpose() -> None:
    shown = {_normalise(n) for exprs in dashboard_queries().values() for e in exprs for n in metric_names(e)}
    families = {f.name for f in _registries()["sidecar"].collect()}
    assert families >= NOT_ON_DASHBOARDS, NOT_ON_DASHBOARDS - families
    assert families - shown - NOT_ON_DASHBOARDS == set(), "add a panel, or the metric to NOT_ON_DASHBOARDS"
    assert NOT_ON_DASHBOARDS & shown == set(), "shown now: take it off NOT_ON_DASHBOARDS"


def test_every_label_a_rule_uses_is_on_its_metric() -> None:
    labels, recorded = metric_labels(), recorded_names()
    missing = {
        f"{name}: {label}"
        for e in rule_exprs()
        for name, label in label_uses(e)
        if name not in recorded and label not in labels.get(name, labels.get(_normalise(name), set()))
    }
    assert missing == set()


def _label_values() -> dict[tuple[str, str], set[str]]:
    """Label values the sidecar's code can give a series: its constants, else the literals it counts with."""
    from typing import get_args

    from hermes_sidecar.cache.breaker import COMPONENTS
    from hermes_sidecar.cache.decision import ERROR, HIT_EXACT, HIT_SEMANTIC, MISS
    from hermes_sidecar.cache.plans import PLAN, RESULTS
    from hermes_sidecar.config import GuardRule, VerifierConfig
    from hermes_sidecar.metrics import RESULTS as REQUEST_RESULTS

    rules = set(get_args(GuardRule))
    kinds = set(get_args(VerifierConfig.model_fields["kind"].annotation))
    return {
        ("hermes_cache_requests_total", "result"): set(REQUEST_RESULTS),
        ("hermes_cache_tool_plan_requests_total", "stage"): {PLAN, RESULTS},
        # decision.metric: a live-data question is never bypassed
        ("hermes_cache_tool_plan_requests_total", "result"): {
            r.replace("-", "_") for r in (HIT_EXACT, HIT_SEMANTIC, MISS, ERROR)
        },
        ("hermes_cache_guard_rejections_total", "rule"): rules
        | {f"context-{r}" for r in rules}
        | {"verifier"},
        ("hermes_cache_errors_total", "component"): set(COMPONENTS),
        ("hermes_cache_verifier_calls_total", "outcome"): {"ok", "error"},
        **{(f"hermes_cache_verifier_{m}", "kind"): kinds for m in ("calls_total", "tokens_total")},
        **{(f"hermes_cache_verifier_request_seconds_{s}", "kind"): kinds for s in ("bucket", "sum", "count")},
        ("hermes_cache_decay_refreshes_total", "kind"): {"semantic", "exact"},
    }


def matched_values(expr: str) -> set[tuple[str, str, str]]:
    """(metric, label, value) for each `label="v"` and each alternative of `label=~"a|b"`."""
    out = set()
    for m in re.finditer(r"(?<![\w:])([a-zA-Z_:][\w:]*)\s*\{((?:[^{}\"]|\"(?:[^\"\\]|\\.)*\")*)\}", expr):
        for label, op, value in re.findall(r'([a-zA-Z_]\w*)\s*(=~|=)\s*"((?:[^"\\]|\\.)*)"', m.group(2)):
            if op == "=~" and not re.fullmatch(r"[\w-]+(\|[\w-]+)*", value):
                continue  # a real regex or a Grafana variable
            out |= {(m.group(1), label, v) for v in value.split("|")}
    return out


def test_every_label_value_a_dashboard_selects_is_one_the_sidecar_sets() -> None:
    assert matched_values('a_total{x=~"p|q-r", y="$v", z=~"$z", w="1"}') == {
        ("a_total", "x", "p"),
        ("a_total", "x", "q-r"),
        ("a_total", "y", "$v"),
        ("a_total", "w", "1"),
    }
    known = _label_values()
    seen = {
        (name, label, value)
        for exprs in dashboard_queries().values()
        for e in exprs
        for name, label, value in matched_values(e)
        if (name, label) in known
    }
    assert {(n, lbl) for n, lbl, _ in seen} >= {
        ("hermes_cache_requests_total", "result"),
        ("hermes_cache_tool_plan_requests_total", "result"),
        ("hermes_cache_guard_rejections_total", "rule"),
        ("hermes_cache_verifier_request_seconds_count", "kind"),
    }
    assert {(n, lbl, v) for n, lbl, v in seen if v not in known[(n, lbl)]} == set()


# -- what the new panels show, evaluated by promtool on the series the sidecar exposes ----------------

TARGET = {"namespace": "ml", "policy": "chat", "pod": "chat-0", "source": "sidecar"}


def _panel(dashboard: str, panel_id: int) -> dict[str, Any]:
    (panel,) = [p for p in _panels(_dashboards()[dashboard]) if p["id"] == panel_id]
    return panel


def _input_series(registry: CollectorRegistry) -> list[dict[str, str]]:
    """Every sample the registry exposes, as Prometheus stores it after scraping it through the
    PodMonitor (target labels added), growing by its current value every minute."""
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    out = []
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            if s.name.endswith("_created"):
                continue
            labels = ", ".join(f'{k}="{v}"' for k, v in sorted({**s.labels, **TARGET}.items()))
            out.append({"series": f"{s.name}{{{labels}}}", "values": f"0+{s.value:g}x10"})
    return out


def test_the_new_ratio_panels_show_what_the_sidecar_counted(tmp_path: Path) -> None:
    from hermes_sidecar.metrics import Metrics

    m = Metrics()
    # per minute: variant a 3 hits of 4 lookups, b 1 of 2; `unknown` only bypassed (no lookups)
    for result, variant, n in [("hit_exact", "a", 2), ("hit_semantic", "a", 1), ("miss", "a", 1)]:
        for _ in range(n):
            m.count_request(result, "h:acme", variant)
    m.count_request("hit_semantic", "h:acme", "b")
    m.count_request("miss", "h:acme", "b")
    m.count_request("bypass", "h:acme", "unknown")
    # served-model: 4 candidates asked, 1 answered with neither yes nor no; 4 semantic hits, 1 unasked
    for _ in range(4):
        m.verifier_request_seconds.labels("served-model").observe(0.05)
        m.hit_similarity.observe(0.9)
    m.verifier_unjudged.inc()
    m.verifier_skipped.inc()
    # tool plans: plan 1 hit of 4, results 1 of 2
    for stage, result, n in [("plan", "hit_semantic", 1), ("plan", "miss", 3), ("results", "hit_exact", 1)]:
        m.tool_plan_requests.labels(stage, result).inc(n)
    m.tool_plan_requests.labels("results", "miss").inc()

    def expect(panel_id: int, ref: str, samples: list[tuple[str, float]]) -> dict[str, Any]:
        (target,) = [t for t in _panel("serving.json", panel_id)["targets"] if t["refId"] == ref]
        return {
            "expr": _as_promql(target["expr"]),
            "eval_time": "10m",
            "exp_samples": [{"labels": labels, "value": value} for labels, value in samples],
        }

    where = 'namespace="ml", policy="chat"'
    cases = [
        expect(27, "A", [(f'{{{where}, variant="a"}}', 0.75), (f'{{{where}, variant="b"}}', 0.5)]),
        expect(33, "A", [("{}", 0.75)]),
        expect(33, "B", [("{}", 0.25)]),
        expect(41, "A", [(f'{{{where}, stage="plan"}}', 0.25), (f'{{{where}, stage="results"}}', 0.5)]),
    ]
    test = {
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": _input_series(m.registry), "promql_expr_test": cases}],
    }
    (tmp_path / "panels_test.yaml").write_text(yaml.safe_dump(test))
    proc = subprocess.run(
        [promtool_path(), "test", "rules", "panels_test.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
