"""ServiceMonitor, PodMonitor, PrometheusRule and dashboard ConfigMaps, checked against what the
operator really renders for a policy (its labels and the sidecar's port)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from test_chart_common import CHART, ROOT, find, one, render

MONITORING_KINDS = ("ServiceMonitor", "PodMonitor", "PrometheusRule")


def _serving_pod_template() -> dict[str, Any]:
    """The pod template the operator renders for examples/hermes-8b.yaml (`hermes-cache plan`)."""
    from hermes_operator.cli import plan_document

    doc = yaml.safe_load((ROOT / "examples" / "hermes-8b.yaml").read_text())
    deployment = one(plan_document(doc)["resources"], "Deployment")
    template: dict[str, Any] = deployment["spec"]["template"]
    return template


def _matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expr in selector.get("matchExpressions", []):
        present = expr["key"] in labels
        if expr["operator"] == "Exists" and not present:
            return False
        if expr["operator"] == "In" and labels.get(expr["key"]) not in expr["values"]:
            return False
    return True


def _all_monitoring(**extra: Any) -> dict[str, Any]:
    on = {"enabled": True}
    return {
        "monitoring": {
            "serviceMonitor": on,
            "podMonitor": on,
            "prometheusRule": on,
            "dashboards": {"enabled": True, **extra},
        }
    }


def test_monitoring_is_off_by_default() -> None:
    objs = render()
    assert [o for o in objs if o["kind"] in MONITORING_KINDS] == []
    assert find(objs, "ConfigMap") == []


def test_the_service_monitor_scrapes_the_operator_service_keeping_the_operators_labels() -> None:
    objs = render(_all_monitoring())
    sm = one(objs, "ServiceMonitor")
    svc = one(objs, "Service", "hermes-cache-operator")
    assert _matches(sm["spec"]["selector"], svc["metadata"]["labels"])
    (endpoint,) = sm["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in svc["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    # The operator labels its series with the policy's namespace and name; without honorLabels
    # they would become exported_namespace and the rules' joins on (namespace, policy) would fail.
    assert endpoint["honorLabels"] is True


def test_no_service_monitor_without_an_operator_in_the_cluster() -> None:
    values = _all_monitoring()
    values["operator"] = {"enabled": False}
    assert find(render(values), "ServiceMonitor") == []


def test_the_pod_monitor_selects_the_pods_the_operator_renders_and_labels_them_by_policy() -> None:
    pm = one(render(_all_monitoring()), "PodMonitor")
    template = _serving_pod_template()
    labels = template["metadata"]["labels"]
    assert _matches(pm["spec"]["selector"], labels)
    # ... and not the chart's own pods (operator, Redis).
    for o in render({"redis": {"enabled": True}}):
        if o["kind"] in ("Deployment", "StatefulSet"):
            assert not _matches(pm["spec"]["selector"], o["spec"]["template"]["metadata"]["labels"])
    exposed = {p["name"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
    endpoints = pm["spec"]["podMetricsEndpoints"]
    assert {e["path"] for e in endpoints} == {"/metrics", "/upstream/metrics"}
    for e in endpoints:
        assert e["port"] in exposed
        relabel = next(r for r in e["relabelings"] if r.get("targetLabel") == "policy")
        (source,) = relabel["sourceLabels"]
        label = next(
            k for k in labels if "__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", k) == source
        )
        assert labels[label] == "hermes-8b"


def test_the_pod_monitor_can_be_limited_to_namespaces() -> None:
    values = _all_monitoring()
    values["monitoring"]["podMonitor"] = {"enabled": True, "namespaces": ["ml", "ml-staging"]}
    pm = one(render(values), "PodMonitor")
    assert pm["spec"]["namespaceSelector"] == {"matchNames": ["ml", "ml-staging"]}


def test_the_prometheus_rule_holds_the_recording_rules_and_alerts() -> None:
    rule = one(render(_all_monitoring()), "PrometheusRule")
    names = [r.get("record") or r.get("alert") for g in rule["spec"]["groups"] for r in g["rules"]]
    assert "namespace_policy:hermes_cache_hit_ratio:rate5m" in names
    assert "namespace_policy:vllm_prefix_cache_hit_ratio:rate5m" in names
    assert {
        "HermesCacheHitRateCollapsedAfterGenerationSwitch",
        "HermesCacheHomogeneousWorkload",
        "HermesCacheKVCacheSaturated",
        "HermesCacheQueueGrowing",
        "HermesCacheSidecarFailingOpen",
    } <= set(names)


def test_each_dashboard_ships_as_a_configmap_grafana_discovers() -> None:
    files = sorted((CHART / "dashboards").glob("*.json"))
    objs = render(_all_monitoring(namespace="grafana", annotations={"grafana_folder": "Hermes Cache"}))
    maps = find(objs, "ConfigMap")
    assert len(maps) == len(files) >= 2
    for cm in maps:
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert cm["metadata"]["namespace"] == "grafana"
        assert cm["metadata"]["annotations"] == {"grafana_folder": "Hermes Cache"}
        ((key, body),) = cm["data"].items()
        assert json.loads(body) == json.loads((CHART / "dashboards" / key).read_text())


def _dashboards() -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(Path(CHART / "dashboards").glob("*.json"))]


def _overlapping(panels: list[dict[str, Any]]) -> list[tuple[str, str]]:
    boxes = [(p["title"], p["gridPos"]) for p in panels]
    return [
        (a, b)
        for i, (a, g) in enumerate(boxes)
        for b, h in boxes[i + 1 :]
        if g["x"] < h["x"] + h["w"]
        and h["x"] < g["x"] + g["w"]
        and g["y"] < h["y"] + h["h"]
        and h["y"] < g["y"] + g["h"]
    ]


def test_dashboards_are_well_formed() -> None:
    uids = [d["uid"] for d in _dashboards()]
    assert len(set(uids)) == len(uids)
    for d in _dashboards():
        variables = {v["name"] for v in d["templating"]["list"]}
        assert {"datasource", "namespace", "policy"} <= variables
        # A collapsed row holds its panels; Grafana lays them out below the row when it opens.
        nested = [p for r in d["panels"] if r["type"] == "row" for p in r.get("panels", [])]
        panels = d["panels"] + nested
        ids = [p["id"] for p in panels]
        assert len(set(ids)) == len(ids), d["uid"]
        assert _overlapping(d["panels"]) == [], d["uid"]
        for r in d["panels"]:
            if r["type"] != "row":
                continue
            # an open row's panels sit on the dashboard; a collapsed one's inside it, below it
            assert bool(r["panels"]) == r["collapsed"], r["title"]
            assert _overlapping(r["panels"]) == [], r["title"]
            assert all(p["gridPos"]["y"] > r["gridPos"]["y"] for p in r["panels"]), r["title"]
        for p in panels:
            assert p["gridPos"]["x"] >= 0 and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24, (
                d["uid"],
                p["title"],
            )
            if p["type"] == "row":
                continue
            assert p["targets"], (d["uid"], p["title"])
            assert p["description"], (d["uid"], p["title"])
            assert p["fieldConfig"]["defaults"].get("unit"), (d["uid"], p["title"])
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            for t in p["targets"]:
                assert t["datasource"] == p["datasource"], (d["uid"], p["title"])
                # Every query follows the dashboard's namespace/policy selection, except the
                # operator's cluster-wide counts.
                if "hermes_operator_policies" in t["expr"] or "reconcile_" in t["expr"]:
                    continue
                assert 'namespace=~"$namespace"' in t["expr"] and 'policy=~"$policy"' in t["expr"], t["expr"]
