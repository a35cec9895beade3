"""What the operator creates for a policy, checked on the rendered manifests."""

from __future__ import annotations

import json
from typing import Any, get_args

import pytest
import yaml
from _policies import policy_doc

from hermes_operator.capacity import plan_capacity
from hermes_operator.render import _sidecar_refusals, render_all, sidecar_config
from hermes_operator.spec import GuardRuleName, Policy, SpecError, parse_policy
from hermes_sidecar.config import CacheConfig, ConfigError, GuardRule, parse_config


def policy(uid: str = "", **spec: Any) -> Policy:
    doc = policy_doc(**spec)
    if uid:
        doc["metadata"]["uid"] = uid
    return parse_policy(doc)


def objects(p: Policy) -> dict[str, dict[str, Any]]:
    return {o["kind"]: o for o in render_all(p, plan_capacity(p.spec))}


def containers(p: Policy) -> dict[str, dict[str, Any]]:
    pod = objects(p)["Deployment"]["spec"]["template"]["spec"]
    return {c["name"]: c for c in pod["containers"]}


def test_pod_template_is_byte_identical_across_cache_versions() -> None:
    a = objects(policy(cacheVersion="v1", semanticCache={"redis": {"url": "redis://r:6379"}}))
    b = objects(policy(cacheVersion="v2", semanticCache={"redis": {"url": "redis://r:6379"}}))
    dump = lambda o: json.dumps(o, sort_keys=True).encode()  # noqa: E731
    assert dump(a["Deployment"]["spec"]["template"]) == dump(b["Deployment"]["spec"]["template"])
    assert dump(a["ConfigMap"]) == dump(b["ConfigMap"])


def test_pod_template_changes_with_a_sidecar_setting() -> None:
    a = objects(policy(semanticCache={"similarityThreshold": 0.9}))["Deployment"]["spec"]["template"]
    b = objects(policy(semanticCache={"similarityThreshold": 0.95}))["Deployment"]["spec"]["template"]
    assert a != b  # the config-hash annotation rolls the pods: the sidecar reads its file at start


def test_rendering_is_deterministic() -> None:
    p = policy(engine={"tensorParallelSize": 2})
    assert json.dumps(render_all(p, plan_capacity(p.spec))) == json.dumps(
        render_all(p, plan_capacity(p.spec))
    )


def test_vllm_args_follow_the_spec() -> None:
    args = containers(
        policy(
            model={"servedName": "hermes"},
            engine={
                "tensorParallelSize": 2,
                "gpuMemoryUtilization": 0.85,
                "maxModelLen": 16384,
                "maxNumSeqs": 64,
                "blockSize": 32,
                "kvCacheDtype": "fp8",
                "kvOffloadGiB": 20,
                "extraArgs": ["--enforce-eager"],
            },
        )
    )["vllm"]["args"]
    pairs = dict(zip(args[::2], args[1::2], strict=False))
    assert pairs["--model"] == "NousResearch/Hermes-3-Llama-3.1-8B"
    assert pairs["--served-model-name"] == "hermes"
    assert pairs["--tensor-parallel-size"] == "2"
    assert pairs["--gpu-memory-utilization"] == "0.85"
    assert pairs["--max-model-len"] == "16384"
    assert pairs["--max-num-seqs"] == "64"
    assert pairs["--block-size"] == "32"
    assert pairs["--kv-cache-dtype"] == "fp8"
    assert args[args.index("--kv-offloading-size") + 1] == "20"
    assert "--enable-prefix-caching" in args
    assert args[-1] == "--enforce-eager"
    assert not any(a.startswith("--swap-space") for a in args)


def test_prefix_caching_off_and_no_offload() -> None:
    args = containers(policy(engine={"prefixCaching": False}))["vllm"]["args"]
    assert "--no-enable-prefix-caching" in args and "--enable-prefix-caching" not in args
    assert "--kv-offloading-size" not in args


def test_vllm_listens_on_loopback_and_only_the_sidecar_port_is_exposed() -> None:
    objs = objects(policy())
    c = containers(policy())
    args = c["vllm"]["args"]
    assert args[args.index("--host") + 1] == "127.0.0.1"
    assert "ports" not in c["vllm"]
    assert [p["containerPort"] for p in c["sidecar"]["ports"]] == [8080]
    assert objs["Service"]["spec"]["ports"][0]["targetPort"] == "http"


def test_prefix_hashes_agree_across_pods() -> None:
    c = containers(policy())["vllm"]
    assert {"name": "PYTHONHASHSEED", "value": "0"} in c["env"]
    assert c["args"][c["args"].index("--prefix-caching-hash-algo") + 1] == "sha256"


def test_gpus_and_shared_memory_follow_tensor_parallel_size() -> None:
    one = objects(policy())["Deployment"]["spec"]["template"]["spec"]
    four = objects(
        policy(model={"name": "NousResearch/Hermes-3-Llama-3.1-70B"}, engine={"tensorParallelSize": 4})
    )["Deployment"]["spec"]["template"]["spec"]
    assert one["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    assert four["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": "4"}
    assert not any(v["name"] == "dshm" for v in one["volumes"])
    dshm = next(v for v in four["volumes"] if v["name"] == "dshm")
    assert dshm["emptyDir"]["medium"] == "Memory"
    assert {"name": "dshm", "mountPath": "/dev/shm"} in four["containers"][0]["volumeMounts"]


def test_custom_gpu_resource_node_selector_and_tolerations() -> None:
    pod = objects(
        policy(
            gpu={
                "resource": "amd.com/gpu",
                "nodeSelector": {"gpu": "mi300x"},
                "tolerations": [{"key": "amd.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            }
        )
    )["Deployment"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["requests"] == {"amd.com/gpu": "1"}
    assert pod["nodeSelector"] == {"gpu": "mi300x"}
    assert pod["tolerations"] == [{"key": "amd.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def test_probes_and_graceful_drain() -> None:
    p = policy(engine={"shutdownTimeoutSeconds": 120})
    c = containers(p)
    vllm = c["vllm"]
    # the sidecar's port by number: a port *name* resolves only among the probed container's own ports
    assert vllm["startupProbe"]["httpGet"] == {"path": "/health", "port": 8080}
    assert vllm["readinessProbe"]["httpGet"] == {"path": "/health", "port": 8080}
    for name, container in c.items():
        named = {port["name"] for port in container.get("ports", [])}
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            port = container.get(probe, {}).get("httpGet", {}).get("port")
            assert not isinstance(port, str) or port in named, f"{name}.{probe} names a port it lacks"
    assert "127.0.0.1:8000/health" in " ".join(vllm["livenessProbe"]["exec"]["command"])
    # a crash's last log lines become its termination message, which the policy's status quotes
    assert {c[n]["terminationMessagePolicy"] for n in c} == {"FallbackToLogsOnError"}
    assert c["sidecar"]["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["sidecar"]["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert vllm["args"][vllm["args"].index("--shutdown-timeout") + 1] == "120"
    grace = objects(p)["Deployment"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > 120 + vllm["lifecycle"]["preStop"]["sleep"]["seconds"]


def test_sidecar_config_is_the_sidecar_contract() -> None:
    p = policy(
        name="chat",
        namespace="ml",
        semanticCache={"redis": {"url": "redis://r:6379/0"}, "similarityThreshold": 0.93},
    )
    cm = objects(p)["ConfigMap"]
    cfg = parse_config(yaml.safe_load(cm["data"]["config.yaml"]))
    assert cfg.upstream.url == "http://127.0.0.1:8000"
    assert cfg.cache.backend == "redis" and cfg.cache.redisUrl == "redis://r:6379/0"
    assert cfg.cache.similarityThreshold == 0.93
    assert cfg.cache.scope == "ml/chat"
    c = containers(p)["sidecar"]
    assert c["command"] == ["hermes-sidecar", "serve", "--config", "/etc/hermes-sidecar/config.yaml"]


def test_semantic_cache_disabled_and_memory_backend() -> None:
    off = parse_config(
        yaml.safe_load(objects(policy(semanticCache={"enabled": False}))["ConfigMap"]["data"]["config.yaml"])
    )
    assert off.cache.enabled is False
    mem = parse_config(yaml.safe_load(objects(policy())["ConfigMap"]["data"]["config.yaml"]))
    assert mem.cache.backend == "memory" and mem.cache.redisUrl is None


def test_labels_selector_and_owner_references() -> None:
    objs = objects(policy(uid="1234-abcd"))
    for obj in objs.values():
        meta = obj["metadata"]
        assert meta["labels"]["app.kubernetes.io/instance"] == "hermes-8b"
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "hermes-cache-operator"
        (ref,) = meta["ownerReferences"]
        assert ref == {
            "apiVersion": "hermes-cache.dev/v1alpha1",
            "kind": "HermesCachePolicy",
            "name": "hermes-8b",
            "uid": "1234-abcd",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    dep = objs["Deployment"]
    assert (
        dep["spec"]["selector"]["matchLabels"].items()
        <= dep["spec"]["template"]["metadata"]["labels"].items()
    )
    assert objs["PodDisruptionBudget"]["spec"]["selector"] == dep["spec"]["selector"]


def test_no_owner_reference_without_uid() -> None:
    assert all("ownerReferences" not in o["metadata"] for o in objects(policy()).values())


def test_hpa_targets_the_policy_scale_subresource() -> None:
    objs = objects(policy(autoscaling={"enabled": True, "minReplicas": 2, "maxReplicas": 6, "target": 4}))
    hpa = objs["HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "hermes-cache.dev/v1alpha1",
        "kind": "HermesCachePolicy",
        "name": "hermes-8b",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    (metric,) = hpa["spec"]["metrics"]
    assert metric["pods"]["metric"]["name"] == "vllm_num_requests_waiting"
    assert metric["pods"]["target"] == {"type": "AverageValue", "averageValue": "4000m"}
    kv = objects(policy(autoscaling={"enabled": True, "metric": "kvCacheUsage", "target": 0.8}))
    assert kv["HorizontalPodAutoscaler"]["spec"]["metrics"][0]["pods"]["target"]["averageValue"] == "800m"


def test_no_hpa_without_autoscaling() -> None:
    assert "HorizontalPodAutoscaler" not in objects(policy())


def test_policy_that_does_not_fit_renders_nothing() -> None:
    p = policy(
        model={"name": "NousResearch/Hermes-3-Llama-3.1-70B"},
        engine={"tensorParallelSize": 1, "gpuMemoryUtilization": 0.85, "maxModelLen": 128000},
    )
    assert render_all(p, plan_capacity(p.spec)) == []


def test_hugging_face_token_comes_from_a_secret() -> None:
    env = containers(policy(model={"name": "meta-llama/Llama-3.1-8B-Instruct", "hfTokenSecret": "hf"}))[
        "vllm"
    ]["env"]
    assert {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}} in env
    assert not any(e["name"] == "HF_TOKEN" for e in containers(policy())["vllm"]["env"])


REDIS_WITH_SECRET = {
    "redis": {"url": "redis://r:6379/0", "passwordSecretRef": {"name": "redis-auth", "key": "pw"}}
}


def test_redis_password_secret_reaches_the_sidecar_as_a_file_or_the_policy_is_refused() -> None:
    """The password never lands in the ConfigMap; a sidecar that cannot read it is never deployed."""
    p = policy(semanticCache=REDIS_WITH_SECRET)
    if "redisPasswordFile" in CacheConfig.model_fields:
        objs = objects(p)
        pod = objs["Deployment"]["spec"]["template"]["spec"]
        volume = next(v for v in pod["volumes"] if v.get("secret"))
        assert volume["secret"] == {"secretName": "redis-auth", "items": [{"key": "pw", "path": "password"}]}
        mount = next(m for m in containers(p)["sidecar"]["volumeMounts"] if m["name"] == volume["name"])
        cfg = parse_config(yaml.safe_load(objs["ConfigMap"]["data"]["config.yaml"]))
        assert cfg.cache.redisPasswordFile == f"{mount['mountPath']}/password"
        assert cfg.cache.redisUrl == "redis://r:6379/0"
        assert all(m["name"] != volume["name"] for m in containers(p)["vllm"]["volumeMounts"])
    else:
        with pytest.raises(SpecError) as refused:
            objects(p)
        [problem] = refused.value.problems
        assert problem.startswith("spec.semanticCache.redis.passwordSecretRef: ")
        assert "cache.redisPasswordFile" in problem and "leave the field unset" in problem


def test_a_config_the_sidecar_would_refuse_is_refused_naming_the_policy_field() -> None:
    with pytest.raises(SpecError) as refused:
        objects(policy(semanticCache={"embedding": {"provider": "openai"}}))
    [problem] = refused.value.problems
    assert problem.startswith("spec.semanticCache.embedding: ")
    assert "needs embedding.url" in problem


VERIFIER = {
    "url": "http://verifier.ml.svc:8000",
    "model": "BAAI/bge-reranker-v2-m3",
    "minScore": 0.6,
    "minSimilarity": 0.72,
    "timeoutSeconds": 0.5,
    "onError": "miss",
}


def sidecar_cfg(p: Policy) -> Any:
    return parse_config(yaml.safe_load(objects(p)["ConfigMap"]["data"]["config.yaml"]))


def test_a_policy_verifier_reaches_the_sidecar_config_with_its_values() -> None:
    cfg = sidecar_cfg(policy(semanticCache={"similarityThreshold": 0.88, "verifier": VERIFIER}))
    v = cfg.cache.guard.verifier
    assert cfg.cache.guard.enabled is True
    assert v is not None
    assert (v.url, v.model, v.minScore, v.minSimilarity, v.timeoutSeconds, v.onError) == (
        "http://verifier.ml.svc:8000", "BAAI/bge-reranker-v2-m3", 0.6, 0.72, 0.5, "miss",
    )  # fmt: skip
    assert v.apiKeyFile is None
    assert cfg.cache.similarityThreshold == 0.88


def test_no_verifier_unless_the_policy_asks_and_adding_one_rolls_the_pods() -> None:
    plain = policy()
    assert sidecar_cfg(plain).cache.guard.verifier is None
    verified = policy(semanticCache={"verifier": {"url": "http://v:8000", "model": "m"}})
    v = sidecar_cfg(verified).cache.guard.verifier
    assert v is not None and (v.minScore, v.minSimilarity, v.timeoutSeconds, v.onError) == (
        0.5, 0.7, 1.0, "threshold",
    )  # fmt: skip
    annotation = "hermes-cache.dev/sidecar-config-hash"
    hashes = [
        objects(p)["Deployment"]["spec"]["template"]["metadata"]["annotations"][annotation]
        for p in (plain, verified)
    ]
    assert hashes[0] != hashes[1]


def test_a_served_model_verifier_asks_the_pods_own_vllm_for_the_policys_model() -> None:
    p = policy(semanticCache={"verifier": {"kind": "served-model"}})
    cfg = sidecar_cfg(p)
    v = cfg.cache.guard.verifier
    assert v is not None and (v.kind, v.scope) == ("served-model", "uncertain")
    # the vLLM next to the sidecar on loopback (its upstream), under the name vLLM serves
    assert v.url == cfg.upstream.url and v.url.startswith("http://127.0.0.1:")
    args = containers(p)["vllm"]["args"]
    assert v.model == args[args.index("--served-model-name") + 1] == "Hermes-3-Llama-3.1-8B"
    other = {"kind": "served-model", "url": "http://judge.ml.svc:8000", "model": "judge", "scope": "all"}
    v = sidecar_cfg(policy(semanticCache={"verifier": other})).cache.guard.verifier
    assert v is not None and (v.url, v.model, v.scope) == ("http://judge.ml.svc:8000", "judge", "all")
    rerank = sidecar_cfg(policy(semanticCache={"verifier": VERIFIER})).cache.guard.verifier
    assert rerank is not None and (rerank.kind, rerank.scope) == ("rerank", "all")


def test_verifier_api_key_secret_reaches_only_the_sidecar_as_a_file() -> None:
    ref = {"name": "rerank-key", "key": "token"}
    p = policy(semanticCache={"verifier": {**VERIFIER, "apiKeySecretRef": ref}})
    objs = objects(p)
    pod = objs["Deployment"]["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v.get("secret"))
    assert volume["secret"] == {"secretName": "rerank-key", "items": [{"key": "token", "path": "api-key"}]}
    mount = next(m for m in containers(p)["sidecar"]["volumeMounts"] if m["name"] == volume["name"])
    verifier = sidecar_cfg(p).cache.guard.verifier
    assert verifier is not None and verifier.apiKeyFile == f"{mount['mountPath']}/api-key"
    assert all(m["name"] != volume["name"] for m in containers(p)["vllm"]["volumeMounts"])


def test_verifier_and_redis_secrets_are_mounted_side_by_side() -> None:
    semantic = {**REDIS_WITH_SECRET, "verifier": {**VERIFIER, "apiKeySecretRef": {"name": "rerank-key"}}}
    mounts = containers(policy(semanticCache=semantic))["sidecar"]["volumeMounts"]
    paths = [m["mountPath"] for m in mounts]
    assert len(paths) == len(set(paths)) == 4  # config, /tmp, two secrets


def test_a_verifier_setting_the_sidecar_refuses_names_the_policy_field() -> None:
    """A stricter sidecar build refuses at render time, naming spec.semanticCache.verifier."""
    config = sidecar_config(policy(semanticCache={"verifier": VERIFIER}))
    config["cache"]["guard"]["verifier"]["url"] = "verifier:8000"
    with pytest.raises(ConfigError) as err:
        parse_config(config)
    [line] = _sidecar_refusals(err.value.problems)
    assert line.startswith("spec.semanticCache.verifier.url: the bundled hermes-sidecar refuses")
    assert "http:// or https://" in line


def test_a_setting_the_sidecar_does_not_know_says_so() -> None:
    """An older sidecar build has no such key: the line says what to do rather than what pydantic said."""
    config = sidecar_config(policy(semanticCache={"verifier": VERIFIER}))
    config["cache"]["guard"]["verifier"]["newSetting"] = 1
    with pytest.raises(ConfigError) as err:
        parse_config(config)
    [line] = _sidecar_refusals(err.value.problems)
    assert line.startswith("spec.semanticCache.verifier: the bundled hermes-sidecar refuses")
    assert line.endswith(
        "this sidecar version has no such setting: run a sidecar that has it, or leave the field unset"
    )


def test_verifier_overrule_reaches_the_sidecar_and_names_the_sidecars_rules() -> None:
    assert get_args(GuardRuleName) == get_args(GuardRule)  # a rule the sidecar adds must be offered here
    v = sidecar_cfg(policy(semanticCache={"verifier": {**VERIFIER, "overrule": ["edit", "scope"]}}))
    assert v.cache.guard.verifier is not None and v.cache.guard.verifier.overrule == ["edit", "scope"]


def test_verifier_overrule_min_score_reaches_the_sidecar_only_when_set() -> None:
    spec = {**VERIFIER, "overrule": ["number", "scope"], "overruleMinScore": 0.998}
    v = sidecar_cfg(policy(semanticCache={"verifier": spec})).cache.guard.verifier
    assert v is not None and v.overruleMinScore == 0.998
    assert v.min_score(overruled=True) == 0.998 and v.min_score(overruled=False) == v.minScore
    unset = sidecar_cfg(policy(semanticCache={"verifier": {**VERIFIER, "overrule": ["scope"]}}))
    assert unset.cache.guard.verifier is not None and unset.cache.guard.verifier.overruleMinScore is None
    assert unset.cache.guard.verifier.min_score(overruled=True) == unset.cache.guard.verifier.minScore
