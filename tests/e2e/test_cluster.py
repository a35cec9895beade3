"""Smoke tests of the local e2e cluster itself (scripts/cluster-up.sh): version, fake GPU nodes,
scheduling onto a GPU type, ServiceAccount tokens under RBAC, owner-reference garbage collection."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import Kube

GPU_PRODUCTS = {
    "a100": "NVIDIA-A100-SXM4-80GB",
    "h100": "NVIDIA-H100-80GB-HBM3",
}


def test_server_is_kubernetes_1_36(kube: Kube) -> None:
    assert kube.server_version().startswith("v1.36.")


def test_fake_gpu_nodes(kube: Kube) -> None:
    nodes = kube.get_json("nodes")["items"]
    gpu_nodes = [n for n in nodes if n["status"].get("allocatable", {}).get("nvidia.com/gpu") == "8"]
    assert len(gpu_nodes) >= 4, [n["metadata"]["name"] for n in nodes]

    products = {n["metadata"]["labels"].get("nvidia.com/gpu.product") for n in gpu_nodes}
    assert products >= set(GPU_PRODUCTS.values())
    for node in gpu_nodes:
        labels = node["metadata"]["labels"]
        assert GPU_PRODUCTS[labels["hermes-cache.dev/gpu-type"]] == labels["nvidia.com/gpu.product"]
        assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
        assert {"key": "kwok.x-k8s.io/node", "value": "fake", "effect": "NoSchedule"} in node["spec"][
            "taints"
        ]
        assert node["status"]["capacity"]["nvidia.com/gpu"] == "8"
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready and ready[0]["status"] == "True", node["metadata"]["name"]


@pytest.mark.parametrize("gpu_type", sorted(GPU_PRODUCTS))
def test_deployment_runs_on_requested_gpu_type(kube: Kube, namespace: str, gpu_type: str) -> None:
    product = GPU_PRODUCTS[gpu_type]
    kube.apply(
        textwrap.dedent(
            f"""
            apiVersion: apps/v1
            kind: Deployment
            metadata:
              name: gpu-workload
            spec:
              replicas: 3
              selector:
                matchLabels: {{app: gpu-workload}}
              template:
                metadata:
                  labels: {{app: gpu-workload}}
                spec:
                  nodeSelector:
                    nvidia.com/gpu.product: {product}
                  tolerations:
                  - {{key: kwok.x-k8s.io/node, operator: Exists, effect: NoSchedule}}
                  containers:
                  - name: main
                    image: registry.invalid/none:0
                    resources:
                      limits: {{nvidia.com/gpu: "2"}}
            """
        ),
        namespace=namespace,
    )
    kube.kubectl(
        "-n", namespace, "rollout", "status", "deployment/gpu-workload", "--timeout=120s", timeout=150
    )

    node_types = {
        n["metadata"]["name"]: n["metadata"]["labels"].get("hermes-cache.dev/gpu-type")
        for n in kube.get_json("nodes")["items"]
    }
    pods = kube.get_json("pods", "-n", namespace, "-l", "app=gpu-workload")["items"]
    assert len(pods) == 3
    for pod in pods:
        assert pod["status"]["phase"] == "Running", pod["status"]
        assert node_types[pod["spec"]["nodeName"]] == gpu_type


def test_service_account_token_is_subject_to_rbac(kube: Kube, namespace: str, tmp_path: Path) -> None:
    kube.kubectl("-n", namespace, "create", "serviceaccount", "probe")
    token = kube.kubectl("-n", namespace, "create", "token", "probe", "--duration=10m").stdout.strip()
    assert token.count(".") == 2, "expected a JWT"
    probe = kube.as_service_account(namespace, "probe", tmp_path / "probe.kubeconfig")

    whoami = json.loads(probe.kubectl("auth", "whoami", "-o", "json").stdout)
    assert whoami["status"]["userInfo"]["username"] == f"system:serviceaccount:{namespace}:probe"

    def can_i(verb: str, resource: str) -> str:
        return probe.kubectl("-n", namespace, "auth", "can-i", verb, resource, check=False).stdout.strip()

    assert can_i("list", "pods") == "no"
    assert probe.kubectl("-n", namespace, "get", "pods", check=False).returncode != 0
    kube.kubectl("-n", namespace, "create", "role", "pod-reader", "--verb=list", "--resource=pods")
    kube.kubectl(
        "-n",
        namespace,
        "create",
        "rolebinding",
        "probe-reads",
        "--role=pod-reader",
        f"--serviceaccount={namespace}:probe",
    )
    kube.wait_for(lambda: can_i("list", "pods") == "yes", timeout=30, what="RBAC grant to take effect")
    assert can_i("delete", "pods") == "no"
    probe.kubectl("-n", namespace, "get", "pods")


def test_owner_reference_garbage_collection(kube: Kube, namespace: str) -> None:
    kube.kubectl("-n", namespace, "create", "configmap", "owner", "--from-literal=k=v")
    owner_uid = kube.get_json("configmap", "owner", "-n", namespace)["metadata"]["uid"]
    child = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "child",
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner_uid}],
        },
        "data": {"k": "v"},
    }
    kube.apply(json.dumps(child), namespace=namespace)
    kube.kubectl("-n", namespace, "delete", "configmap", "owner", "--wait=true")
    kube.wait_for(
        lambda: kube.kubectl("-n", namespace, "get", "configmap", "child", check=False).returncode != 0,
        timeout=60,
        what="the garbage collector to delete the owned ConfigMap",
    )
