"""spec.device cpu and spec.model.storage: what a dev or test cluster without GPUs gets."""

from __future__ import annotations

from typing import Any

import pytest
from _policies import example, policy_doc

from hermes_operator.capacity import CPU_RUNTIME_BYTES, GiB, plan_capacity
from hermes_operator.cli import plan_document
from hermes_operator.render import gpus_requested, render_all
from hermes_operator.spec import Policy, parse_policy

CPU_IMAGE = "localhost/hermes-vllm-cpu:test"


def cpu_policy(**spec: Any) -> Policy:
    base: dict[str, Any] = {
        "device": "cpu",
        "model": {"name": "tiny-llama"},
        "engine": {"image": CPU_IMAGE, "maxModelLen": 2048, "blockSize": 128},
    }
    for key, value in spec.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    return parse_policy(policy_doc(**base))


def pod(p: Policy, sidecar_image: str = "reg.example/hermes-cache:1") -> dict[str, Any]:
    (deploy,) = [o for o in render_all(p, plan_capacity(p.spec), sidecar_image) if o["kind"] == "Deployment"]
    spec: dict[str, Any] = deploy["spec"]["template"]["spec"]
    return spec


def containers(p: Policy) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in pod(p)["containers"]}


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container["env"]}


def test_cpu_replica_requests_no_gpu_and_gets_memory_from_the_plan() -> None:
    p = cpu_policy(cpu={"cores": 1.5, "memoryGiB": 6, "kvCacheGiB": 2})
    vllm = containers(p)["vllm"]
    assert vllm["resources"] == {
        "requests": {"cpu": "1500m", "memory": "6144Mi"},
        "limits": {"memory": "6144Mi"},  # no CPU limit: throttling would stretch every token
    }
    assert env_of(vllm)["VLLM_CPU_KVCACHE_SPACE"] == "2"
    # vLLM's CPU backend needs more /dev/shm than a container runtime gives by default (64 MiB)
    assert {"name": "dshm", "mountPath": "/dev/shm"} in vllm["volumeMounts"]
    assert vllm["image"] == CPU_IMAGE
    assert gpus_requested(p, plan_capacity(p.spec)) == 0
    assert "nvidia.com/gpu" not in str(pod(p))


def test_cpu_placement_comes_from_spec_cpu_not_spec_gpu() -> None:
    p = cpu_policy(
        gpu={"nodeSelector": {"nvidia.com/gpu.product": "H100"}},
        cpu={"nodeSelector": {"pool": "cpu"}, "tolerations": [{"key": "cpu-only", "operator": "Exists"}]},
    )
    spec = pod(p)
    assert spec["nodeSelector"] == {"pool": "cpu"}
    assert spec["tolerations"] == [{"key": "cpu-only", "operator": "Exists"}]


def test_cpu_plan_counts_weights_runtime_and_kv_against_the_memory_limit() -> None:
    cap = plan_capacity(cpu_policy(cpu={"kvCacheGiB": 1}).spec)
    assert cap.fits and cap.gpusPerReplica == 0
    # the tiny Llama: 2 layers x 1 KV head x 64 x 2 (K,V) x 2 bytes = 512 bytes per token
    assert cap.kvBytesPerToken == 512
    assert cap.kvCacheTokensPerReplica == GiB // 512 == 2_097_152  # vLLM logs the same figure
    assert cap.overheadBytesPerGPU == CPU_RUNTIME_BYTES


def test_cpu_plan_refuses_a_memory_limit_below_weights_runtime_and_kv_naming_the_fields() -> None:
    cap = plan_capacity(cpu_policy(cpu={"memoryGiB": 2, "kvCacheGiB": 1}).spec)
    assert not cap.fits and cap.reason == "InsufficientMemory"
    assert "spec.cpu.memoryGiB is 2" in cap.message
    assert "raise spec.cpu.memoryGiB to at least 5" in cap.message
    assert "spec.cpu.kvCacheGiB" in cap.message


def test_cpu_plan_refuses_a_kv_cache_smaller_than_one_sequence() -> None:
    big = {"model": {"name": "NousResearch/Hermes-3-Llama-3.1-8B"}, "cpu": {"memoryGiB": 64, "kvCacheGiB": 1}}
    cap = plan_capacity(cpu_policy(**big, engine={"image": CPU_IMAGE, "maxModelLen": 131072}).spec)
    assert not cap.fits
    assert "spec.cpu.kvCacheGiB 1 holds 8,192 tokens, less than one sequence" in cap.message
    assert "raise spec.cpu.kvCacheGiB to 16" in cap.message


def test_model_storage_mounts_the_claim_read_only_and_vllm_loads_from_it_offline() -> None:
    p = cpu_policy(model={"name": "tiny-llama", "storage": {"claimName": "models", "path": "llm/tiny"}})
    spec = pod(p)
    vol = {v["name"]: v for v in spec["volumes"]}
    assert vol["model-store"]["persistentVolumeClaim"] == {"claimName": "models", "readOnly": True}
    assert "model-cache" not in vol  # nothing is downloaded into the pod
    vllm = {c["name"]: c for c in spec["containers"]}["vllm"]
    assert {"name": "model-store", "mountPath": "/models", "readOnly": True} in vllm["volumeMounts"]
    args = vllm["args"]
    assert args[args.index("--model") + 1] == "/models/llm/tiny"
    assert args[args.index("--served-model-name") + 1] == "tiny-llama"
    assert env_of(vllm)["HF_HUB_OFFLINE"] == "1"


def test_model_storage_without_path_uses_the_model_name_as_folder() -> None:
    p = parse_policy(policy_doc(model={"name": "NousResearch/Hermes-3-Llama-3.1-8B",
                                       "storage": {"claimName": "models"}}))  # fmt: skip
    args = {c["name"]: c for c in pod(p)["containers"]}["vllm"]["args"]
    assert args[args.index("--model") + 1] == "/models/NousResearch/Hermes-3-Llama-3.1-8B"


def test_without_storage_the_model_is_downloaded_into_an_empty_dir() -> None:
    spec = pod(parse_policy(policy_doc()))
    assert {"name": "model-cache", "emptyDir": {}} in spec["volumes"]


def test_sidecar_runs_the_operators_image_unless_the_policy_names_one() -> None:
    assert containers(cpu_policy())["sidecar"]["image"] == "reg.example/hermes-cache:1"
    named = cpu_policy(sidecar={"image": "mine/sidecar:2"})
    assert containers(named)["sidecar"]["image"] == "mine/sidecar:2"


def test_containers_run_without_privileges_and_the_sidecar_on_a_read_only_root() -> None:
    c = containers(cpu_policy())
    side = c["sidecar"]["securityContext"]
    assert side["runAsNonRoot"] and side["readOnlyRootFilesystem"]
    assert side["capabilities"] == {"drop": ["ALL"]} and side["allowPrivilegeEscalation"] is False
    assert {"name": "sidecar-tmp", "mountPath": "/tmp"} in c["sidecar"]["volumeMounts"]
    assert c["vllm"]["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod(cpu_policy())["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}


def test_the_cpu_example_fits_and_plans_without_a_gpu() -> None:
    out = plan_document(example("hermes-cpu.yaml"))
    assert out["capacity"]["fits"] and out["capacity"]["gpusPerReplica"] == 0
    kinds = [r["kind"] for r in out["resources"]]
    assert kinds == ["ConfigMap", "Deployment", "Service", "PodDisruptionBudget"]
    service = out["resources"][2]
    assert service["metadata"]["name"] == "hermes-cpu"
    assert service["spec"]["ports"][0]["port"] == 8080  # first port: the sidecar's


@pytest.mark.parametrize("device", ["gpu", "cpu"])
def test_vllm_args_never_name_the_device(device: str) -> None:
    """vLLM picks its platform from the build it runs; the image, not a flag, decides."""
    p = cpu_policy() if device == "cpu" else parse_policy(policy_doc())
    assert "--device" not in containers(p)["vllm"]["args"]


def test_store_truncated_reaches_the_sidecar_and_is_off_by_default() -> None:
    import yaml

    def cfg(p: Policy) -> dict[str, Any]:
        (cm,) = [o for o in render_all(p, plan_capacity(p.spec)) if o["kind"] == "ConfigMap"]
        out: dict[str, Any] = yaml.safe_load(cm["data"]["config.yaml"])["cache"]
        return out

    assert cfg(cpu_policy())["storeTruncated"] is False
    assert cfg(cpu_policy(semanticCache={"storeTruncated": True}))["storeTruncated"] is True
