"""A replica larger than one node: the planner's group layout and the LeaderWorkerSet it renders."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from _policies import example, policy_doc

from hermes_operator.capacity import (
    GiB,
    plan_capacity,
    replica_group,
    resolve_architecture,
    weights_bytes_per_gpu,
)
from hermes_operator.podstatus import diagnose_groups
from hermes_operator.render import ROLE_LABEL, lws_name, render_all, selector_string
from hermes_operator.spec import Policy, parse_policy

LLAMA_405B = "NousResearch/Hermes-3-Llama-3.1-405B"


def policy(**spec: Any) -> Policy:
    return parse_policy(policy_doc(name="big", **spec))


def policy_405b(pp: int = 2, **spec: Any) -> Policy:
    engine = {
        "tensorParallelSize": 8,
        "pipelineParallelSize": pp,
        "maxModelLen": 32768,
        **spec.pop("engine", {}),
    }
    return policy(model={"name": LLAMA_405B}, engine=engine, **spec)


def objects(p: Policy) -> dict[str, dict[str, Any]]:
    return {o["kind"]: o for o in render_all(p, plan_capacity(p.spec))}


# ------------------------------------------------------------------ planner


def test_405b_does_not_fit_one_node_and_the_refusal_names_the_layout_that_does() -> None:
    cap = plan_capacity(policy_405b(pp=1).spec)
    assert not cap.fits and cap.reason == "InsufficientMemory"
    # 811 GB of bf16 weights over 8 GPUs: about 94.5 GiB each, over the 72 GiB budget
    assert "94.50 GiB weights" in cap.message and "has 72.00 GiB" in cap.message
    assert "spec.engine.pipelineParallelSize 2 (16 GPUs on 2 node(s)" in cap.message


def test_two_stages_on_two_nodes_split_the_layers_and_the_kv_cache() -> None:
    p = policy_405b()
    cap = plan_capacity(p.spec)
    arch = resolve_architecture(p.spec)
    assert cap.fits, cap.message
    assert (cap.pipelineStages, cap.nodesPerReplica, cap.gpusPerNode, cap.gpusPerReplica) == (2, 2, 8, 16)
    # the largest stage: 63 of 126 layers, plus the embedding (or the LM head), over 8 GPUs
    per_layer = (arch.parameterCount - 2 * arch.vocabSize * arch.hiddenSize) / arch.numLayers
    assert cap.weightsBytesPerGPU == math.ceil((63 * per_layer + arch.vocabSize * arch.hiddenSize) * 2 / 8)
    # KV per token per GPU counts that stage's layers only: 2 x 63 layers x 1 KV head x 128 x 2 bytes
    assert cap.kvBytesPerTokenPerGPU == 2 * 63 * 1 * 128 * 2
    assert cap.kvCacheBytesPerGPU == cap.budgetBytesPerGPU - cap.weightsBytesPerGPU - cap.overheadBytesPerGPU
    blocks = cap.kvCacheBytesPerGPU // (16 * cap.kvBytesPerTokenPerGPU)
    assert cap.kvCacheTokensPerReplica == blocks * 16
    assert "2 stages of 8 GPUs on 2 nodes of 8 GPUs" in cap.message


def test_one_stage_plans_exactly_as_before() -> None:
    """The single-node path is unchanged: weights = parameters x bytes / TP."""
    p = policy(engine={"tensorParallelSize": 4})
    arch = resolve_architecture(p.spec)
    assert weights_bytes_per_gpu(p.spec, arch, 1) == math.ceil(arch.parameterCount * 2 / 4)
    cap = plan_capacity(p.spec)
    assert (cap.pipelineStages, cap.nodesPerReplica, cap.gpusPerNode, cap.gpusPerReplica) == (1, 1, 4, 4)


def test_stages_that_fit_one_node_stay_one_pod() -> None:
    group = replica_group(policy(engine={"tensorParallelSize": 4, "pipelineParallelSize": 2}).spec)
    assert (group.nodes, group.gpus_per_node, group.multi_node) == (1, 8, False)
    dep = objects(policy(engine={"tensorParallelSize": 4, "pipelineParallelSize": 2}))["Deployment"]
    vllm = dep["spec"]["template"]["spec"]["containers"][0]
    assert vllm["resources"]["limits"]["nvidia.com/gpu"] == "8"
    assert "--pipeline-parallel-size" in vllm["args"] and "--nnodes" not in vllm["args"]


def test_gpu_per_node_sets_the_group_size() -> None:
    group = replica_group(policy_405b(pp=4, gpu={"perNode": 16}).spec)
    assert (group.nodes, group.gpus_per_node) == (2, 16)


def test_more_stages_than_layers_is_refused_with_numbers() -> None:
    p = policy(
        model={"name": "x/tiny", "architecture": {"numLayers": 2, "numAttentionHeads": 8, "numKVHeads": 8,
                                                   "headDim": 64, "hiddenSize": 512, "vocabSize": 1000,
                                                   "parameterCount": 10_000_000}},
        engine={"tensorParallelSize": 8, "pipelineParallelSize": 4},
    )  # fmt: skip
    cap = plan_capacity(p.spec)
    assert cap.reason == "PipelineParallelMismatch"
    assert "pipelineParallelSize 4 is more than the model's 2 layers" in cap.message


def test_still_too_big_names_what_to_change() -> None:
    cap = plan_capacity(policy_405b(pp=2, gpu={"memoryGiB": 24}).spec)
    assert not cap.fits
    assert "of stage 1 of 2 (63 layers)" in cap.message
    assert "spec.engine.pipelineParallelSize" in cap.message and f"{24 * 0.9:.2f} GiB" in cap.message


# ------------------------------------------------------------------ render


def test_a_replica_over_two_nodes_is_a_leaderworkerset_group() -> None:
    objs = objects(policy_405b(replicas=3))
    assert "Deployment" not in objs
    lws = objs["LeaderWorkerSet"]
    assert lws["apiVersion"] == "leaderworkerset.x-k8s.io/v1"
    assert lws["metadata"]["name"] == "big-group"
    spec = lws["spec"]
    assert spec["replicas"] == 3
    assert spec["startupPolicy"] == "LeaderCreated"
    tmpl = spec["leaderWorkerTemplate"]
    assert tmpl["size"] == 2 and tmpl["restartPolicy"] == "RecreateGroupOnPodRestart"
    leader, worker = tmpl["leaderTemplate"], tmpl["workerTemplate"]
    assert [c["name"] for c in leader["spec"]["containers"]] == ["vllm", "sidecar"]
    assert [c["name"] for c in worker["spec"]["containers"]] == ["vllm"]
    assert leader["metadata"]["labels"][ROLE_LABEL] == "leader"
    assert worker["metadata"]["labels"][ROLE_LABEL] == "worker"
    for pod in (leader, worker):
        assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "8"
    # the worker keeps only the volumes its one container mounts (no sidecar config)
    assert {v["name"] for v in worker["spec"]["volumes"]} == {
        m["name"] for m in worker["spec"]["containers"][0]["volumeMounts"]
    }
    assert "readinessProbe" not in worker["spec"]["containers"][0]


def test_group_commands_use_vllms_native_multi_node_mode() -> None:
    tmpl = objects(policy_405b(engine={"extraArgs": ["--enforce-eager"]}))["LeaderWorkerSet"]["spec"][
        "leaderWorkerTemplate"
    ]
    leader = tmpl["leaderTemplate"]["spec"]["containers"][0]
    worker = tmpl["workerTemplate"]["spec"]["containers"][0]
    for c in (leader, worker):
        assert c["command"] == ["vllm", "serve"]
        args = c["args"]
        flags = dict(zip(args, [*args[1:], None], strict=True))
        assert flags["--tensor-parallel-size"] == "8" and flags["--pipeline-parallel-size"] == "2"
        assert flags["--nnodes"] == "2" and flags["--distributed-executor-backend"] == "mp"
        assert flags["--node-rank"] == "$(LWS_WORKER_INDEX)"
        assert flags["--master-addr"] == "$(LWS_LEADER_ADDRESS)"
        assert args[-1] == "--enforce-eager"  # the user's flags last, as on a Deployment
    assert "--headless" in worker["args"] and "--headless" not in leader["args"]


def test_service_and_scale_selector_pick_the_leaders_and_the_pdb_every_pod() -> None:
    p = policy_405b(autoscaling={"enabled": True, "minReplicas": 1, "maxReplicas": 3})
    objs = objects(p)
    assert objs["Service"]["spec"]["selector"][ROLE_LABEL] == "leader"
    assert ROLE_LABEL not in objs["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"]
    assert selector_string(p).endswith(f"{ROLE_LABEL}=leader")
    # the HPA scales the policy (its scale subresource counts groups), not the LWS directly
    assert objs["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["kind"] == "HermesCachePolicy"


def test_single_node_policies_render_as_before() -> None:
    p = policy(engine={"tensorParallelSize": 4})
    objs = objects(p)
    assert "LeaderWorkerSet" not in objs and objs["Deployment"]["metadata"]["name"] == "big"
    assert ROLE_LABEL not in objs["Service"]["spec"]["selector"]
    assert ROLE_LABEL not in selector_string(p)
    args = objs["Deployment"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--pipeline-parallel-size" not in args and "--nnodes" not in args


def test_a_cache_version_change_leaves_the_group_untouched() -> None:
    a = objects(policy_405b(cacheVersion="v1"))["LeaderWorkerSet"]
    b = objects(policy_405b(cacheVersion="v2"))["LeaderWorkerSet"]
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def test_the_example_is_a_fitting_two_node_group() -> None:
    p = parse_policy(example("hermes-405b-multinode.yaml"))
    cap = plan_capacity(p.spec)
    assert cap.fits and (cap.nodesPerReplica, cap.gpusPerNode, cap.pipelineStages) == (2, 8, 2)
    assert lws_name(p) in {o["metadata"]["name"] for o in render_all(p, cap)}
    assert cap.budgetBytesPerGPU == int(80 * GiB * 0.9)


# ------------------------------------------------------------------ status


def _pod(name: str, group: int, ready: bool, unschedulable: str = "") -> dict[str, Any]:
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
    if unschedulable:
        conditions.append({"type": "PodScheduled", "status": "False", "message": unschedulable})
    return {
        "metadata": {"name": name, "labels": {"leaderworkerset.sigs.k8s.io/group-index": str(group)}},
        "status": {"conditions": conditions},
    }


def test_the_condition_names_the_group_that_is_stuck() -> None:
    pods = [
        _pod("big-group-0", 0, True),
        _pod("big-group-0-1", 0, True),
        _pod("big-group-1", 1, True),
        _pod("big-group-1-1", 1, False, "0/8 nodes are available: 8 Insufficient nvidia.com/gpu."),
    ]
    problem = diagnose_groups(pods, 2)
    assert problem is not None and problem.reason == "Unschedulable"
    assert problem.message.startswith(
        "group 1 (big-group-1, big-group-1-1): 1/2 pods ready; pod big-group-1-1"
    )
    assert "Insufficient nvidia.com/gpu" in problem.message


def test_a_group_missing_a_pod_is_named_too() -> None:
    problem = diagnose_groups([_pod("big-group-0", 0, True)], 2)
    assert problem is not None and problem.reason == "GroupNotReady"
    assert problem.message == "group 0 (big-group-0): 1/2 pods ready; 1 pod(s) not created yet"


def test_whole_ready_groups_are_no_problem() -> None:
    assert diagnose_groups([_pod("g-0", 0, True), _pod("g-0-1", 0, True)], 2) is None


@pytest.mark.parametrize("pp", [2, 4])
def test_gpus_requested_count_every_node_of_every_group(pp: int) -> None:
    from hermes_operator.render import gpus_requested

    p = policy_405b(pp=pp, replicas=2)
    assert gpus_requested(p, plan_capacity(p.spec)) == 2 * 8 * pp


# ------------------------------------------------------------------ reconcile


def _reconcile_env() -> tuple[Any, Any]:
    from test_handlers import Clock, RecordingKube, RecordingStore

    from hermes_operator.env import Env
    from hermes_operator.metrics import OperatorMetrics

    kube, store = RecordingKube(), RecordingStore()
    return kube, Env(kube=kube, stores=lambda url: store, metrics=OperatorMetrics(), now=Clock())


def _cr(status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    doc = policy_doc(name="big", **spec)
    doc["metadata"].update(uid="uid-1", generation=1)
    if status is not None:
        doc["status"] = status
    return doc


def test_reconcile_applies_a_group_reports_groups_and_moves_between_kinds() -> None:
    from hermes_operator.reconcile import reconcile

    kube, env = _reconcile_env()
    big = {"model": {"name": LLAMA_405B}, "engine": {"tensorParallelSize": 8, "pipelineParallelSize": 2}}
    # a policy that used to fit one node left a Deployment behind: it goes when the group comes
    kube.objects[("Deployment", "team-a", "big")] = {"metadata": {"name": "big"}}
    status = reconcile(_cr(**big, replicas=2), env)
    assert ("LeaderWorkerSet", "team-a", "big-group") in kube.objects
    assert ("Deployment", "team-a", "big") in kube.deletes
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "False",
        "GroupsNotReady",
        "0/2 groups ready",
    )
    assert status["capacity"]["nodesPerReplica"] == 2 and "hermes-cache.dev/role=leader" in status["selector"]

    lws = kube.objects[("LeaderWorkerSet", "team-a", "big-group")]
    lws["status"] = {"replicas": 2, "readyReplicas": 2, "updatedReplicas": 2, "observedGeneration": 1}
    status = reconcile(_cr(status=status, **big, replicas=2), env)
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"], ready["message"]) == ("True", "GroupsReady", "2/2 groups ready")
    assert (status["replicas"], status["readyReplicas"]) == (2, 2)

    # back to one node: the Deployment returns and the LeaderWorkerSet is deleted
    status = reconcile(
        _cr(status=status, model={"name": "NousResearch/Hermes-3-Llama-3.1-8B"}, replicas=2), env
    )
    assert ("LeaderWorkerSet", "team-a", "big-group") in kube.deletes
    assert ("Deployment", "team-a", "big") in kube.objects
    assert status["capacity"]["nodesPerReplica"] == 1
