"""The producer fingerprint (operator/hermes_operator/fingerprint.py): which spec fields change it, which
do not, and how it reaches the sidecar (the pod template, never the shared ConfigMap)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from _policies import EXAMPLES, deep_merge, example, policy_doc

from hermes_operator.capacity import plan_capacity
from hermes_operator.cli import main
from hermes_operator.fingerprint import FIELDS, producer_fingerprint
from hermes_operator.render import PRODUCER_ANNOTATION, render_configmap, render_pod_template
from hermes_operator.spec import Policy, parse_policy
from hermes_sidecar.config import parse_config
from hermes_sidecar.contract import PRODUCER_ENV
from hermes_sidecar.tenants import Tenancy

CPU = example("hermes-cpu.yaml")


def policy(patch: dict[str, Any] | None = None, base: dict[str, Any] | None = None) -> Policy:
    doc = base or policy_doc()
    doc = {**doc, "spec": deep_merge(doc["spec"], patch or {})}
    return parse_policy(doc)


def fp(patch: dict[str, Any] | None = None, base: dict[str, Any] | None = None) -> str:
    return producer_fingerprint(policy(patch, base).spec)


# Every field in FIELDS, changed in a way that changes the answers.
CHANGES = {
    "model.name": {"model": {"name": "NousResearch/Hermes-3-Llama-3.1-70B"}},
    "model.storage": {"model": {"storage": {"claimName": "models", "path": "hermes-3-8b-v2"}}},
    "engine.image": {"engine": {"image": "vllm/vllm-openai:v0.34.0"}},
    "engine.dtype": {"engine": {"dtype": "float16"}},
    "engine.kvCacheDtype": {"engine": {"kvCacheDtype": "fp8"}},
    "engine.maxModelLen": {"engine": {"maxModelLen": 4096}},
    "engine.extraArgs": {"engine": {"extraArgs": ["--revision", "8f3c2a1"]}},
    "device": {"device": "cpu", "engine": {"image": "localhost/hermes-vllm-cpu:x", "blockSize": 32}},
}

# Changes that leave the answers as they were: scale, speed, the cache's own settings, the version.
NEUTRAL = {
    "cacheVersion": {"cacheVersion": "v2"},
    "replicas": {"replicas": 3},
    "autoscaling": {"autoscaling": {"enabled": True, "maxReplicas": 8}},
    "engine.tensorParallelSize": {"engine": {"tensorParallelSize": 2}},
    "engine.gpuMemoryUtilization": {"engine": {"gpuMemoryUtilization": 0.8}},
    "engine.maxNumSeqs": {"engine": {"maxNumSeqs": 64}},
    "engine.blockSize": {"engine": {"blockSize": 32}},
    "engine.prefixCaching": {"engine": {"prefixCaching": False}},
    "engine.shutdownTimeoutSeconds": {"engine": {"shutdownTimeoutSeconds": 120}},
    "gpu": {"gpu": {"memoryGiB": 40}},
    "model.servedName": {"model": {"servedName": "chat"}},
    "semanticCache": {"semanticCache": {"similarityThreshold": 0.9, "redis": {"url": "redis://r:6379"}}},
    "sidecar.port": {"sidecar": {"port": 9090}},
    "tenancy": {"tenancy": {"trustGroups": [{"name": "bots", "tenants": ["h:a", "h:b"]}]}},
    "experiment": {"experiment": {"header": "x-variant", "variants": ["candidate"]}},
}


def test_every_field_in_the_fingerprint_has_a_change_case() -> None:
    assert set(CHANGES) == set(FIELDS)


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_an_answer_changing_field_changes_the_fingerprint(field: str) -> None:
    assert fp(CHANGES[field]) != fp()


@pytest.mark.parametrize("field", sorted(NEUTRAL))
def test_a_field_that_changes_no_answer_keeps_the_fingerprint(field: str) -> None:
    assert fp(NEUTRAL[field]) == fp()


def test_the_fingerprint_is_stable_and_short() -> None:
    # the same spec gives the same string in any process (no hash randomisation, sorted keys)
    assert fp() == fp() == producer_fingerprint(parse_policy(policy_doc(name="other", namespace="x")).spec)
    assert fp().startswith("v1-") and len(fp()) == 19


def test_storage_path_defaults_to_the_model_name() -> None:
    # an empty path loads the folder named after the model: the same weights as writing it out
    name = "NousResearch/Hermes-3-Llama-3.1-8B"
    implicit = fp({"model": {"storage": {"claimName": "models"}}})
    explicit = fp({"model": {"storage": {"claimName": "models", "path": name}}})
    assert implicit == explicit
    assert fp({"model": {"storage": {"claimName": "other-models"}}}) != implicit


def test_the_pod_carries_it_and_the_configmap_does_not() -> None:
    p = policy()
    tmpl = render_pod_template(p)
    sidecar = next(c for c in tmpl["spec"]["containers"] if c["name"] == "sidecar")
    assert {"name": PRODUCER_ENV, "value": producer_fingerprint(p.spec)} in sidecar["env"]
    assert tmpl["metadata"]["annotations"][PRODUCER_ANNOTATION] == producer_fingerprint(p.spec)
    vllm = next(c for c in tmpl["spec"]["containers"] if c["name"] == "vllm")
    assert all(e["name"] != PRODUCER_ENV for e in vllm["env"])
    assert producer_fingerprint(p.spec) not in yaml.safe_dump(render_configmap(p))


def test_cache_version_change_leaves_the_pod_template_alone_a_model_change_does_not() -> None:
    base = render_pod_template(policy())
    assert render_pod_template(policy({"cacheVersion": "v9"})) == base
    # a new model under the same served name: the pods roll, the sidecar gets a new partition
    renamed = policy(
        {"model": {"name": "NousResearch/Hermes-3-Llama-3.1-70B", "servedName": "Hermes-3-Llama-3.1-8B"}}
    )
    new = render_pod_template(renamed)
    assert new != base
    env = {e["name"]: e["value"] for c in new["spec"]["containers"] for e in c.get("env", []) if "value" in e}
    assert env[PRODUCER_ENV] == producer_fingerprint(renamed.spec) != fp()


def test_the_cpu_example_model_swap_changes_only_what_it_must() -> None:
    # the e2e test's change (tests/e2e/test_model_isolation.py): another model name, the same served
    # name and folder; vLLM runs as before, only the sidecar's partition moves
    before = policy(base=CPU)
    served = before.spec.model.name
    after = policy({"model": {"name": "hermes-tiny-llama", "servedName": served}}, base=CPU)
    assert producer_fingerprint(before.spec) != producer_fingerprint(after.spec)
    assert plan_capacity(after.spec).fits  # a model name the planner knows: the operator deploys it
    a, b = render_pod_template(before), render_pod_template(after)
    vllm = [next(c for c in t["spec"]["containers"] if c["name"] == "vllm") for t in (a, b)]
    assert vllm[0]["args"] == vllm[1]["args"]
    assert (
        a["metadata"]["annotations"][PRODUCER_ANNOTATION] != b["metadata"]["annotations"][PRODUCER_ANNOTATION]
    )


def test_the_sidecar_takes_the_pod_s_fingerprint_over_its_config() -> None:
    cfg = parse_config({"producer": "from-configmap"})
    assert Tenancy.from_config(cfg, {PRODUCER_ENV: "v1-0123456789abcdef"}).producer == "v1-0123456789abcdef"
    assert Tenancy.from_config(cfg, {}).producer == "from-configmap"
    assert Tenancy.from_config(parse_config({}), {}).producer == ""


def test_plan_shows_the_fingerprint_and_the_trust_groups(
    capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    doc = policy_doc(
        tenancy={"trustGroups": [{"name": "support-bots", "tenants": ["h:bot-eu", "h:bot-us"]}]},
        experiment={"header": "x-hermes-variant", "variants": ["control", "candidate"]},
    )
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert main(["plan", str(path)]) == 0
    out = capsys.readouterr().out
    assert producer_fingerprint(parse_policy(doc).spec) in out
    assert "support-bots: h:bot-eu, h:bot-us share a cache_salt" in out
    assert "variants control, candidate from header x-hermes-variant" in out
    # and the rendered sidecar config carries them, in the form the sidecar reads
    assert main(["plan", str(path), "-o", "yaml"]) == 0
    resources = yaml.safe_load(capsys.readouterr().out)["resources"]
    cm = next(r for r in resources if r["kind"] == "ConfigMap")
    cfg = parse_config(yaml.safe_load(cm["data"]["config.yaml"]))
    assert [(g.name, g.tenants) for g in cfg.tenancy.trustGroups] == [
        ("support-bots", ["h:bot-eu", "h:bot-us"])
    ]
    assert cfg.experiment.header == "x-hermes-variant" and cfg.experiment.variants == ["control", "candidate"]


def test_examples_render_with_a_fingerprint() -> None:
    for path in sorted(EXAMPLES.glob("hermes-*.yaml")):
        doc = yaml.safe_load(path.read_text())
        if doc.get("kind") != "HermesCachePolicy":
            continue
        assert producer_fingerprint(parse_policy(doc).spec).startswith("v1-"), path.name
