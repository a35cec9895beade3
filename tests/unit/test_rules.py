"""The chart's Prometheus rules under real `promtool`: syntax, unit tests, and tests that can fail.

The rules are rendered from the chart (the PrometheusRule's spec.groups, i.e. exactly what a user
installs) into a plain rules file, next to copies of charts/hermes-cache/tests/promtool/*_test.yaml.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_chart_common import CHART, promtool_path, rule_groups

PROMTOOL_TESTS = sorted((CHART / "tests" / "promtool").glob("*_test.yaml"))


def _write_rules(tmp: Path, values: dict[str, Any] | None = None) -> Path:
    (tmp / "rules.yaml").write_text(yaml.safe_dump({"groups": rule_groups(values)}, sort_keys=False))
    for t in PROMTOOL_TESTS:
        shutil.copy(t, tmp / t.name)
    return tmp / "rules.yaml"


def _promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool_path(), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def _alerts() -> list[str]:
    return [r["alert"] for g in rule_groups() for r in g["rules"] if "alert" in r]


def _alert_cases() -> dict[str, list[bool]]:
    """alert name -> for each eval in the promtool tests: does it expect the alert to fire?"""
    cases: dict[str, list[bool]] = {}
    for path in PROMTOOL_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                cases.setdefault(case["alertname"], []).append(bool(case.get("exp_alerts")))
    return cases


def test_promtool_check_rules(tmp_path: Path) -> None:
    rules = _write_rules(tmp_path)
    proc = _promtool("check", "rules", str(rules), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    n = sum(len(g["rules"]) for g in rule_groups())
    assert f"SUCCESS: {n} rules found" in proc.stdout


@pytest.mark.parametrize("test_file", [p.name for p in PROMTOOL_TESTS])
def test_promtool_test_rules(tmp_path: Path, test_file: str) -> None:
    _write_rules(tmp_path)
    proc = _promtool("test", "rules", test_file, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    cases = _alert_cases()
    assert sorted(cases) == sorted(_alerts())
    for alert, expectations in cases.items():
        assert True in expectations, f"{alert}: no promtool case where it fires"
        assert False in expectations, f"{alert}: no promtool case where it stays quiet"


# Values that keep each alert from firing on the data of its own promtool test: with them the test
# must fail, which shows the test really depends on the threshold the user configures.
NEVER_FIRES: dict[str, tuple[str, dict[str, Any]]] = {
    "HermesCacheHitRateCollapsedAfterGenerationSwitch": (
        "hit_rate_collapse_test.yaml",
        {"hitRateCollapse": {"ratio": 0.01}},
    ),
    "HermesCacheHomogeneousWorkload": (
        "homogeneous_workload_test.yaml",
        {"homogeneousWorkload": {"hitRate": 0.99}},
    ),
    "HermesCacheKVCacheSaturated": ("kv_cache_saturation_test.yaml", {"kvCacheSaturation": {"usage": 0.98}}),
    "HermesCacheQueueGrowing": ("queue_growing_test.yaml", {"queueGrowing": {"minWaiting": 1000}}),
    "HermesCacheSidecarFailingOpen": (
        "sidecar_fail_open_test.yaml",
        {"sidecarFailOpen": {"errorRatio": 0.5}},
    ),
}


def test_every_alert_has_a_threshold_check() -> None:
    assert sorted(NEVER_FIRES) == sorted(_alerts())


@pytest.mark.parametrize("alert", sorted(NEVER_FIRES))
def test_a_threshold_out_of_reach_makes_the_firing_test_fail(tmp_path: Path, alert: str) -> None:
    test_file, alerts = NEVER_FIRES[alert]
    _write_rules(tmp_path, {"monitoring": {"prometheusRule": {"alerts": alerts}}})
    proc = _promtool("test", "rules", test_file, cwd=tmp_path)
    assert proc.returncode != 0
    assert f"alertname: {alert}" in proc.stdout + proc.stderr


def test_longer_for_delays_an_alert(tmp_path: Path) -> None:
    # kv_cache_saturation_test expects a firing alert 20 minutes into saturation; with for: 30m it
    # is still pending then.
    _write_rules(
        tmp_path, {"monitoring": {"prometheusRule": {"alerts": {"kvCacheSaturation": {"for": "30m"}}}}}
    )
    proc = _promtool("test", "rules", "kv_cache_saturation_test.yaml", cwd=tmp_path)
    assert proc.returncode != 0


def test_alert_labels_reach_every_alert() -> None:
    groups = rule_groups({"monitoring": {"prometheusRule": {"alertLabels": {"team": "ml-platform"}}}})
    alerts = [r for g in groups for r in g["rules"] if "alert" in r]
    assert alerts and all(r["labels"]["team"] == "ml-platform" and r["labels"]["severity"] for r in alerts)


def test_every_alert_explains_itself() -> None:
    for g in rule_groups():
        for r in g["rules"]:
            if "alert" in r:
                assert {"summary", "description"} <= set(r["annotations"]), r["alert"]
                assert r["labels"]["severity"] in ("info", "warning", "critical"), r["alert"]
