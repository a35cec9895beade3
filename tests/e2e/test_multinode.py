"""A replica larger than one node: examples/hermes-405b-multinode.yaml as a LeaderWorkerSet group.

Against the local cluster's real control plane and the LeaderWorkerSet controller that
scripts/cluster-up.sh builds from sigs.k8s.io/lws and runs with upstream's CRD and webhooks; the
groups' pods land on kwok's fake 8-GPU nodes. The operator runs as in tests/e2e/test_operator.py: a
local `hermes-cache run` with a token of the chart's ServiceAccount, so the chart's RBAC applies.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

if TYPE_CHECKING:
    from conftest import Kube

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_operator import KWOK_TOLERATION, Operator, operator_as_service_account  # noqa: E402

EXAMPLE = ROOT / "examples" / "hermes-405b-multinode.yaml"
NAME = "hermes-405b"
H100 = "NVIDIA-H100-80GB-HBM3"
LWS = "leaderworkersets.leaderworkerset.x-k8s.io"
GROUP = f"{NAME}-group"  # the LeaderWorkerSet (and its pods: GROUP-<index>[-<worker>])
GROUP_INDEX = "leaderworkerset.sigs.k8s.io/group-index"
ROLE = "hermes-cache.dev/role"


@pytest.fixture(scope="module")
def operator(
    kube: Kube, crd_release: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    with operator_as_service_account(kube, tmp_path_factory.mktemp("operator-multinode")) as op:
        yield op


def _example() -> dict[str, Any]:
    """The example as the local cluster runs it: kwok's fake nodes carry their own taint."""
    doc: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    doc["spec"]["gpu"]["tolerations"] = [*doc["spec"]["gpu"].get("tolerations", []), KWOK_TOLERATION]
    return doc


def _hcp(kube: Kube, ns: str) -> dict[str, Any]:
    obj: dict[str, Any] = kube.get_json("-n", ns, "hcp", NAME)
    return obj


def _ready(obj: dict[str, Any]) -> dict[str, Any]:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == "Ready"), {})


def _pods(kube: Kube, ns: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = kube.get_json("-n", ns, "pods", "-l", f"app.kubernetes.io/instance={NAME}")[
        "items"
    ]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def _wait_groups_ready(kube: Kube, ns: str, groups: int, timeout: float = 180) -> dict[str, Any]:
    def done() -> bool:
        obj = _hcp(kube, ns)
        st = obj.get("status", {})
        return (
            _ready(obj).get("status") == "True"
            and st.get("readyReplicas") == groups
            and st.get("observedGeneration") == obj["metadata"]["generation"]
        )

    kube.wait_for(done, timeout=timeout, interval=1, what=f"{ns}/{NAME} Ready with {groups} groups ready")
    return _hcp(kube, ns)


def _gpus(pod: dict[str, Any]) -> int:
    return sum(
        int(c["resources"].get("limits", {}).get("nvidia.com/gpu", 0)) for c in pod["spec"]["containers"]
    )


def test_405b_example_runs_as_a_group_over_two_nodes_and_follows_scale_and_pod_loss(
    kube: Kube, operator: Operator, namespace: str
) -> None:
    kube.apply(json.dumps(_example()), namespace=namespace)
    obj = _wait_groups_ready(kube, namespace, 1)
    assert _ready(obj)["reason"] == "GroupsReady", _ready(obj)
    capacity = obj["status"]["capacity"]
    assert (capacity["pipelineStages"], capacity["nodesPerReplica"], capacity["gpusPerNode"]) == (2, 2, 8)
    assert capacity["gpusPerReplica"] == 16 and capacity["fits"] is True

    # The LeaderWorkerSet: one group of 2 pods that is recreated whole, owned by the policy.
    lws = kube.get_json("-n", namespace, LWS, GROUP)
    tmpl = lws["spec"]["leaderWorkerTemplate"]
    assert (lws["spec"]["replicas"], tmpl["size"], tmpl["restartPolicy"]) == (
        1,
        2,
        "RecreateGroupOnPodRestart",
    )
    assert lws["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]
    assert not kube.get_json("-n", namespace, "deployments")["items"]

    # Leader and worker on two different H100 nodes, 8 GPUs each; the sidecar on the leader only;
    # the LWS webhook gave vLLM's --node-rank and --master-addr their values.
    pods = _pods(kube, namespace)
    by_role = {p["metadata"]["labels"][ROLE]: p for p in pods}
    assert sorted(by_role) == ["leader", "worker"], [p["metadata"]["name"] for p in pods]
    leader, worker = by_role["leader"], by_role["worker"]
    nodes = {p["spec"]["nodeName"] for p in pods}
    assert len(nodes) == 2, nodes
    for node in nodes:
        assert kube.get_json("node", node)["metadata"]["labels"]["nvidia.com/gpu.product"] == H100
    assert _gpus(leader) == _gpus(worker) == 8
    assert [c["name"] for c in leader["spec"]["containers"]] == ["vllm", "sidecar"]
    assert [c["name"] for c in worker["spec"]["containers"]] == ["vllm"]
    env = {e["name"]: e.get("value") for e in worker["spec"]["containers"][0]["env"]}
    assert env["LWS_WORKER_INDEX"] == "1" and env["LWS_GROUP_SIZE"] == "2"
    assert env["LWS_LEADER_ADDRESS"].startswith(f"{leader['metadata']['name']}.{GROUP}.{namespace}")
    assert "--headless" in worker["spec"]["containers"][0]["args"]

    # The Service selects the leaders only: its endpoints are the leader's address.
    assert kube.get_json("-n", namespace, "service", NAME)["spec"]["selector"][ROLE] == "leader"

    def endpoint_ips() -> set[str]:
        slices = kube.get_json("-n", namespace, "endpointslices", "-l", f"kubernetes.io/service-name={NAME}")
        return {a for s in slices["items"] for e in s.get("endpoints") or [] for a in e["addresses"]}

    kube.wait_for(lambda: endpoint_ips() == {leader["status"]["podIP"]}, timeout=60, what="leader endpoints")

    # A new cache generation restarts nothing: the LWS spec and the pods stay as they are.
    uids = {p["metadata"]["uid"] for p in pods}
    lws_generation = lws["metadata"]["generation"]
    kube.kubectl(
        "-n", namespace, "patch", "hcp", NAME, "--type=merge", "-p", '{"spec":{"cacheVersion":"v2"}}'
    )
    kube.wait_for(
        lambda: (
            _hcp(kube, namespace).get("status", {}).get("observedGeneration")
            == _hcp(kube, namespace)["metadata"]["generation"]
        ),
        timeout=60,
        what="the cacheVersion change observed",
    )
    assert kube.get_json("-n", namespace, LWS, GROUP)["metadata"]["generation"] == lws_generation
    assert {p["metadata"]["uid"] for p in _pods(kube, namespace)} == uids

    # Scaling the policy (its scale subresource) adds a group: 2 more pods on 2 more nodes.
    kube.kubectl("-n", namespace, "scale", "hcp", NAME, "--replicas=2")
    obj = _wait_groups_ready(kube, namespace, 2)
    assert kube.get_json("-n", namespace, LWS, GROUP)["spec"]["replicas"] == 2
    pods = _pods(kube, namespace)
    assert len(pods) == 4 and len({p["spec"]["nodeName"] for p in pods}) == 4
    assert obj["status"]["replicas"] == 2
    assert "hermes-cache.dev/role=leader" in obj["status"]["selector"]

    # Deleting a worker recreates its whole group (a new leader pod too); the status follows.
    group1 = {
        p["metadata"]["name"]: p["metadata"]["uid"]
        for p in pods
        if p["metadata"]["labels"][GROUP_INDEX] == "1"
    }
    leader1 = f"{GROUP}-1"
    assert set(group1) == {leader1, f"{GROUP}-1-1"}, group1
    kube.kubectl("-n", namespace, "delete", "pod", f"{GROUP}-1-1", "--wait=false")

    def group1_recreated() -> bool:
        now = {p["metadata"]["name"]: p["metadata"]["uid"] for p in _pods(kube, namespace)}
        return leader1 in now and now[leader1] != group1[leader1] and f"{GROUP}-1-1" in now

    kube.wait_for(group1_recreated, timeout=120, interval=1, what="group 1 recreated with a new leader")
    _wait_groups_ready(kube, namespace, 2)

    # More groups than the H100 nodes hold (5 x 2 pods, 8 nodes; the scheduler places pods, not
    # groups): the condition names a group that cannot be placed, with its pods.
    kube.kubectl("-n", namespace, "scale", "hcp", NAME, "--replicas=5")

    def names_a_stuck_group() -> bool:
        """Ready=False naming a group (and every pod of it) that has a pod no node could take."""
        ready = _ready(_hcp(kube, namespace))
        named = re.match(r"[0-4]/5 groups ready; group ([0-4]) \(", ready.get("message", ""))
        if ready.get("reason") != "Unschedulable" or not named:
            return False
        members = [
            p for p in _pods(kube, namespace) if p["metadata"]["labels"][GROUP_INDEX] == named.group(1)
        ]
        return (
            len(members) == 2
            and any(not p["spec"].get("nodeName") for p in members)
            and all(p["metadata"]["name"] in ready["message"] for p in members)
        )

    kube.wait_for(
        names_a_stuck_group, timeout=120, interval=1, what="Ready=False naming an unschedulable group"
    )
    kube.kubectl("-n", namespace, "scale", "hcp", NAME, "--replicas=1")
    _wait_groups_ready(kube, namespace, 1)
