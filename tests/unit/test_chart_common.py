"""Shared helpers of the chart tests: find helm and promtool, render the chart, parse the output.

The chart tests run the real `helm template` / `helm lint` and the real `promtool`. Where a tool is
missing (a plain `pytest tests/unit` on a machine without the cluster binaries) they skip, unless
HERMES_REQUIRE_CHART_TOOLS=1, which scripts/chart-test.sh sets: in `make test` they cannot skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "hermes-cache"
RELEASE = "hermes-cache"
NAMESPACE = "hermes-system"


def _pinned(key: str) -> str:
    for line in (ROOT / "scripts" / "k8s" / "versions.env").read_text().splitlines():
        if line.startswith(f"{key}="):
            return line.split("=", 1)[1].split()[0]
    raise AssertionError(f"{key} missing from scripts/k8s/versions.env")


def kube_version() -> str:
    """The Kubernetes version to render for: the e2e cluster's. Passed explicitly because a helm
    built from Go modules without helm's own ldflags assumes Kubernetes 1.20."""
    return os.environ.get("HERMES_KUBE_VERSION") or _pinned("KUBE_VERSION").removeprefix("v")


def _cache_dir() -> Path:
    if os.environ.get("HERMES_CACHE_DIR"):
        return Path(os.environ["HERMES_CACHE_DIR"])
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "hermes-cache"


def _require_or_skip(what: str) -> None:
    if os.environ.get("HERMES_REQUIRE_CHART_TOOLS") == "1":
        pytest.fail(f"{what} not found (HERMES_REQUIRE_CHART_TOOLS=1); run scripts/chart-test.sh")
    pytest.skip(f"{what} not found; scripts/chart-test.sh provides it")


def helm_path() -> str:
    """HERMES_HELM, else .e2e/bin/helm (make cluster-up), else the per-user build cache."""
    candidates = [
        os.environ.get("HERMES_HELM", ""),
        str(ROOT / ".e2e" / "bin" / "helm"),
        str(_cache_dir() / f"helm-{_pinned('HELM_VERSION')}" / "bin" / "helm"),
    ]
    for c in candidates:
        if c and os.access(c, os.X_OK):
            return c
    _require_or_skip("helm")
    raise AssertionError("unreachable")


def promtool_path() -> str:
    found = os.environ.get("HERMES_PROMTOOL") or shutil.which("promtool")
    if not found:
        _require_or_skip("promtool (Debian package prometheus: scripts/install-system.sh)")
    assert found
    return found


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([helm_path(), *args], capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def render_text(
    values: Mapping[str, Any] | None = None, *extra: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """`helm template` with `values` given as a values file (exact YAML types, no --set coercion)."""
    args = [
        "template",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--kube-version",
        kube_version(),
        *extra,
    ]
    values = with_image(values)
    if values:
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            yaml.safe_dump(dict(values), f)
        try:
            return helm(*args, "--values", f.name, check=check)
        finally:
            os.unlink(f.name)
    return helm(*args, check=check)


TEST_IMAGE = "registry.example/hermes-cache"


def with_image(values: Mapping[str, Any] | None) -> dict[str, Any]:
    """``values`` plus an operator image repository (it has no default) unless they set one."""
    out = dict(values or {})
    operator = dict(out.get("operator") or {})
    image = dict(operator.get("image") or {})
    image.setdefault("repository", TEST_IMAGE)
    operator["image"] = image
    out["operator"] = operator
    return out


def render(values: Mapping[str, Any] | None = None, *extra: str) -> list[dict[str, Any]]:
    """Every object `helm template` renders (NOTES.txt excluded), parsed."""
    docs = yaml.safe_load_all(render_text(values, *extra).stdout)
    return [d for d in docs if d]


def find(objs: Iterable[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def one(objs: Iterable[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = find(objs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {[o['metadata']['name'] for o in found]}"
    return found[0]


def everything_on() -> dict[str, Any]:
    """Values that turn on every optional part of the chart."""
    return {
        "redis": {"enabled": True, "persistence": {"enabled": True}},
        "monitoring": {
            "serviceMonitor": {"enabled": True},
            "podMonitor": {"enabled": True},
            "prometheusRule": {"enabled": True},
            "dashboards": {"enabled": True},
        },
    }


def rule_groups(values: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """spec.groups of the rendered PrometheusRule: the plain Prometheus rules file promtool reads."""
    merged: dict[str, Any] = {"monitoring": {"prometheusRule": {"enabled": True}}}
    if values:
        merged = _merge(merged, values)
    rule = one(render(merged, "--show-only", "templates/prometheusrule.yaml"), "PrometheusRule")
    groups: list[dict[str, Any]] = rule["spec"]["groups"]
    return groups


def _merge(a: dict[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), dict) else v
    return out
