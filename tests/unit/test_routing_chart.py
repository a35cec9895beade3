"""The chart's side of spec.routing: the GIE InferencePool CRD copy, installed only when asked, kept."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_chart_common import ROOT, find, one, render

POOL_CRD = "inferencepools.inference.networking.k8s.io"
COPY = ROOT / "crds" / "gie" / "inference.networking.k8s.io_inferencepools.yaml"


def _pinned() -> str:
    match = re.search(r"^GIE_VERSION=(\S+)", (ROOT / "scripts" / "k8s" / "versions.env").read_text(), re.M)
    assert match, "GIE_VERSION missing from scripts/k8s/versions.env"
    return match.group(1)


def test_the_gie_crd_is_left_to_the_user_by_default() -> None:
    assert find(render(), "CustomResourceDefinition", POOL_CRD) == []


def test_the_gie_crd_is_upstreams_and_kept_on_uninstall_when_installed() -> None:
    crd = one(
        render({"inferenceExtension": {"crds": {"enabled": True}}}), "CustomResourceDefinition", POOL_CRD
    )
    upstream = yaml.safe_load(COPY.read_text())
    assert crd["spec"] == upstream["spec"]
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert crd["metadata"]["annotations"]["inference.networking.k8s.io/bundle-version"] == _pinned()
    not_kept = one(
        render({"inferenceExtension": {"crds": {"enabled": True, "keep": False}}}),
        "CustomResourceDefinition",
        POOL_CRD,
    )
    assert "helm.sh/resource-policy" not in not_kept["metadata"]["annotations"]


def test_the_chart_template_and_the_copy_are_in_sync_with_the_pinned_version() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "sync-gie-crd.py"), "--check"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


def test_the_copy_is_the_modules_file_byte_for_byte() -> None:
    """Where the pinned module is in the Go module cache (after `scripts/k8s/build.sh epp`)."""
    modcache = Path(os.environ.get("GOMODCACHE") or Path.home() / "go" / "pkg" / "mod")
    module = modcache / "sigs.k8s.io" / f"gateway-api-inference-extension@{_pinned()}"
    upstream = module / "config" / "crd" / "bases" / COPY.name
    if not upstream.exists():
        pytest.skip(f"{upstream} not downloaded (scripts/k8s/build.sh epp downloads it)")
    assert COPY.read_bytes() == upstream.read_bytes()


def test_the_endpoint_picker_role_comes_with_the_crd_so_a_second_release_does_not_collide() -> None:
    """One per cluster like the CRD: a release with crds.enabled=false (a second operator) has none."""
    assert [o["metadata"]["name"] for o in find(render(), "ClusterRole")] == [
        "hermes-cache-endpoint-picker",
        "hermes-cache-operator",
    ]
    assert [o["metadata"]["name"] for o in find(render({"crds": {"enabled": False}}), "ClusterRole")] == [
        "hermes-cache-operator"
    ]
