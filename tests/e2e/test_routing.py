"""spec.routing on the real API server: upstream's InferencePool CRD, a pool the server accepts, and
the Endpoint Picker (built from its Go module, scripts/k8s/build.sh epp) Ready as a pod on the real
node, where its gRPC readiness probe is real: SERVING only once it has read its InferencePool.

The routed objects are those `hermes-cache plan` renders for examples/hermes-8b-routed.yaml, applied
with kubectl as the chart's operator ServiceAccount, so the chart's RBAC for them is exercised too
(create a ServiceAccount, bind the chart's ClusterRole `hermes-cache-endpoint-picker`, create the
pool). The serving pods are the example's GPU pods on kwok nodes (the EPP needs only the pool to be
ready; tests/e2e/test_routing_extproc.py drives it against real vLLM pods).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

if TYPE_CHECKING:
    from conftest import Kube

ROOT = Path(__file__).resolve().parents[2]
GIE_CRD = ROOT / "crds" / "gie" / "inference.networking.k8s.io_inferencepools.yaml"
POOL_CRD = "inferencepools.inference.networking.k8s.io"
NODE = "hermes-node-0"
EPP_READY_TIMEOUT = 300


def _assignments(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


@pytest.fixture(scope="module")
def gie_crd(kube: Kube) -> str:
    """Upstream's InferencePool CRD (the chart's copy), installed as a user would without the chart."""
    kube.kubectl("apply", "--server-side", "-f", str(GIE_CRD))
    kube.wait_established(POOL_CRD)
    return POOL_CRD


@pytest.fixture(scope="module")
def epp_image() -> str:
    """The EPP binary as an image in the real node's containerd."""
    out = subprocess.run(
        ["bash", str(ROOT / "scripts/k8s/epp-image.sh")],
        capture_output=True,
        text=True,
        timeout=3600,
        check=True,
    ).stdout
    image = _assignments(out)["EPP_IMAGE"]
    subprocess.run(["bash", str(ROOT / "scripts/node/load-image.sh"), image], check=True, timeout=600)
    return image


def _routed_objects(namespace: str, epp_image: str) -> list[dict[str, Any]]:
    doc = yaml.safe_load((ROOT / "examples/hermes-8b-routed.yaml").read_text())
    doc["metadata"]["namespace"] = namespace
    doc["spec"]["gpu"]["tolerations"].append({"key": "kwok.x-k8s.io/node", "operator": "Exists"})
    doc["spec"]["routing"]["endpointPicker"] = {"image": epp_image, "metricsIntervalMilliseconds": 1000}
    doc["spec"]["routing"].pop("gateway")  # no Gateway API CRDs on this cluster
    path = Path(tempfile.mkdtemp()) / "policy.yaml"
    path.write_text(yaml.safe_dump(doc))
    out = subprocess.run(
        [str(ROOT / ".venv/bin/hermes-cache"), "plan", "-o", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    resources: list[dict[str, Any]] = json.loads(out)["resources"]
    return resources


@pytest.fixture
def operator_sa(kube: Kube, crd_release: tuple[str, str], tmp_path: Path) -> Kube:
    _, release_ns = crd_release
    return kube.as_service_account(release_ns, "hermes-cache", tmp_path / "operator.kubeconfig")


@pytest.fixture
def routed(
    kube: Kube, operator_sa: Kube, gie_crd: str, epp_image: str, namespace: str
) -> Iterator[list[dict[str, Any]]]:
    objs = _routed_objects(namespace, epp_image)
    operator_sa.apply(json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}), namespace=namespace)
    yield objs


def test_the_upstream_crd_is_served_as_v1(kube: Kube, gie_crd: str) -> None:
    crd = kube.get_json("crd", gie_crd)
    assert [v["name"] for v in crd["spec"]["versions"] if v["served"]] == ["v1"]
    assert crd["metadata"]["annotations"]["inference.networking.k8s.io/bundle-version"] == "v1.5.0"


def test_the_routed_example_gets_a_pool_the_api_server_accepts_and_a_ready_epp(
    kube: Kube, routed: list[dict[str, Any]], namespace: str
) -> None:
    pool = kube.get_json("-n", namespace, "inferencepool", "hermes-8b-routed")
    rendered = next(o for o in routed if o["kind"] == "InferencePool")
    assert pool["spec"]["selector"] == rendered["spec"]["selector"]
    assert pool["spec"]["targetPorts"] == [{"number": 8080}]
    # defaults the API server filled in from upstream's schema
    assert pool["spec"]["endpointPickerRef"]["group"] == ""
    assert pool["spec"]["endpointPickerRef"]["failureMode"] == "FailOpen"

    def epp_ready() -> bool:
        dep = kube.get_json("-n", namespace, "deployment", "hermes-8b-routed-epp")
        return int((dep.get("status") or {}).get("readyReplicas") or 0) == 1

    kube.wait_for(epp_ready, timeout=EPP_READY_TIMEOUT, interval=2, what="the EPP Deployment Ready")
    pods = kube.get_json("-n", namespace, "pods", "-l", "app.kubernetes.io/name=hermes-cache-epp")["items"]
    assert [p["spec"]["nodeName"] for p in pods] == [NODE]  # a real kubelet ran the gRPC probe
    logs = kube.kubectl("-n", namespace, "logs", "deploy/hermes-8b-routed-epp").stdout
    assert "v1.5.0" in logs  # the version stamp of our build (build-ref)


def test_without_its_pool_the_epp_is_not_ready(
    kube: Kube, routed: list[dict[str, Any]], namespace: str
) -> None:
    """The readiness is real: an EPP started while its pool is missing runs but is never Ready (its
    health service answers NOT_SERVING until it has read the pool)."""
    selector = "app.kubernetes.io/name=hermes-cache-epp"

    def pods() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = kube.get_json("-n", namespace, "pods", "-l", selector)["items"]
        return items

    def ready(pod: dict[str, Any]) -> bool:
        conds = (pod.get("status") or {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)

    kube.wait_for(
        lambda: any(ready(p) for p in pods()), timeout=EPP_READY_TIMEOUT, interval=2, what="EPP Ready"
    )
    old = {p["metadata"]["name"] for p in pods()}
    kube.kubectl("-n", namespace, "delete", "inferencepool", "hermes-8b-routed")
    kube.kubectl("-n", namespace, "delete", "pod", "-l", selector, "--wait=false")

    def new_running() -> list[dict[str, Any]]:
        return [
            p
            for p in pods()
            if p["metadata"]["name"] not in old and (p.get("status") or {}).get("phase") == "Running"
        ]

    kube.wait_for(lambda: bool(new_running()), timeout=240, interval=2, what="a new EPP pod running")
    time.sleep(20)  # ten readiness periods
    (pod,) = new_running()
    assert not ready(pod), pod["status"]
    statuses = pod["status"]["containerStatuses"]
    assert statuses[0]["restartCount"] == 0 or statuses[0]["state"].get("running"), statuses


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"targetPorts": [{"number": 8080}, {"number": 8080}]}, "targetPorts"),
        ({"targetPorts": [{"number": 8000 + i} for i in range(9)]}, "targetPorts"),
        ({"endpointPickerRef": {"name": "x-epp", "failureMode": "FailOpen"}}, "port"),
        (
            {"endpointPickerRef": {"name": "x-epp", "port": {"number": 9002}, "failureMode": "Retry"}},
            "failureMode",
        ),
    ],
)
def test_the_api_server_refuses_broken_pools(
    kube: Kube, gie_crd: str, namespace: str, patch: dict[str, Any], field: str
) -> None:
    """Upstream's own schema and CEL rules: what our render must never produce."""
    pool = {
        "apiVersion": "inference.networking.k8s.io/v1",
        "kind": "InferencePool",
        "metadata": {"name": "broken", "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": {"app": "x"}},
            "targetPorts": [{"number": 8080}],
            "endpointPickerRef": {"name": "x-epp", "port": {"number": 9002}},
            **patch,
        },
    }
    proc = kube.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(pool), check=False)
    assert proc.returncode != 0
    assert field in proc.stderr
