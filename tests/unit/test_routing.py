"""spec.routing: the InferencePool, the Endpoint Picker and the Routing condition (docs/routing.md)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from _policies import ROOT, example, policy_doc
from test_handlers import RecordingKube, conditions, cr

from hermes_operator.capacity import plan_capacity
from hermes_operator.cli import main
from hermes_operator.env import Env
from hermes_operator.metrics import OperatorMetrics
from hermes_operator.reconcile import reconcile
from hermes_operator.render import render_all, render_deployment, render_service
from hermes_operator.routing import (
    EPP_CONFIG_DIR,
    EPP_CONFIG_FILE,
    EXT_PROC_PORT,
    UPSTREAM_METRICS_PATH,
    endpoint_picker_config,
    render_routing,
)
from hermes_operator.spec import parse_policy

GIE_CRD = yaml.safe_load(
    (ROOT / "crds" / "gie" / "inference.networking.k8s.io_inferencepools.yaml").read_text()
)
POOL_SCHEMA = GIE_CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
ROUTED = {"replicas": 2, "routing": {"enabled": True}}


def objects(**spec: Any) -> dict[str, dict[str, Any]]:
    doc = policy_doc(**spec)
    doc["metadata"]["uid"] = "uid-1"  # children are owned by the policy (garbage-collected with it)
    policy = parse_policy(doc)
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in render_all(policy, plan_capacity(policy.spec))}


def _schema_problems(value: Any, schema: dict[str, Any], path: str) -> list[str]:
    """The parts of the upstream openAPI schema a rendered object can get wrong: unknown fields,
    missing required ones, types, enums and numeric/length/item bounds (CEL is the e2e test's)."""
    kind = schema.get("type")
    if kind == "object":
        if not isinstance(value, dict):
            return [f"{path}: not an object"]
        props = schema.get("properties")
        out = [f"{path}.{k}: required" for k in schema.get("required", []) if k not in value]
        for k, v in value.items():
            if props is not None and k not in props:
                out.append(f"{path}.{k}: not in the upstream schema")
            elif props is not None:
                out += _schema_problems(v, props[k], f"{path}.{k}")
            elif "additionalProperties" in schema:
                out += _schema_problems(v, schema["additionalProperties"], f"{path}.{k}")
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            out.append(f"{path}: too many properties")
        return out
    if kind == "array":
        if not isinstance(value, list) or not schema.get("minItems", 0) <= len(value) <= schema.get(
            "maxItems", 1e9
        ):
            return [f"{path}: not an array of the allowed length"]
        return [
            p for i, item in enumerate(value) for p in _schema_problems(item, schema["items"], f"{path}[{i}]")
        ]
    if kind == "string":
        if not isinstance(value, str):
            return [f"{path}: not a string"]
        if "enum" in schema and value not in schema["enum"]:
            return [f"{path}: {value!r} not in {schema['enum']}"]
        if "pattern" in schema and not re.search(schema["pattern"], value):
            return [f"{path}: {value!r} does not match {schema['pattern']}"]
        if not schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", 1e9):
            return [f"{path}: length out of bounds"]
        return []
    if kind == "integer":
        ok = isinstance(value, int) and schema.get("minimum", -1e18) <= value <= schema.get("maximum", 1e18)
        return [] if ok else [f"{path}: {value!r} not an integer in bounds"]
    return []


def test_routing_is_off_by_default_and_renders_nothing_extra() -> None:
    kinds = sorted(k.split("/")[0] for k in objects(replicas=2))
    assert kinds == ["ConfigMap", "Deployment", "PodDisruptionBudget", "Service"]


def test_the_pool_matches_the_upstream_crd_and_selects_the_serving_pods_on_the_sidecar_port() -> None:
    objs = objects(sidecar={"port": 9000}, **ROUTED)
    pool = objs["InferencePool/hermes-8b"]
    assert pool["apiVersion"] == "inference.networking.k8s.io/v1"
    assert _schema_problems(pool["spec"], POOL_SCHEMA["properties"]["spec"], "spec") == []
    pod_labels = objs["Deployment/hermes-8b"]["spec"]["template"]["metadata"]["labels"]
    assert pool["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pool["spec"]["selector"]["matchLabels"] == objs["Service/hermes-8b"]["spec"]["selector"]
    assert pool["spec"]["targetPorts"] == [{"number": 9000}]
    # the EPP the pool names is the rendered Service, on its ext_proc port
    ref = pool["spec"]["endpointPickerRef"]
    service = objs[f"Service/{ref['name']}"]
    assert ref["port"]["number"] == EXT_PROC_PORT
    assert EXT_PROC_PORT in [p["port"] for p in service["spec"]["ports"]]
    assert ref["failureMode"] == "FailOpen"
    assert pool["metadata"]["ownerReferences"][0]["kind"] == "HermesCachePolicy"


def test_a_broken_pool_is_caught_by_the_schema_check() -> None:
    """The schema check above can fail: an unknown field and a bad enum are reported."""
    spec = objects(**ROUTED)["InferencePool/hermes-8b"]["spec"]
    bad = {**spec, "appProtocol": "grpc", "targetPort": 8080}
    assert len(_schema_problems(bad, POOL_SCHEMA["properties"]["spec"], "spec")) == 2


def test_a_group_pool_selects_only_the_leaders() -> None:
    policy = example("hermes-405b-multinode.yaml")
    policy["spec"]["routing"] = {"enabled": True}
    parsed = parse_policy(policy)
    pool = next(o for o in render_all(parsed, plan_capacity(parsed.spec)) if o["kind"] == "InferencePool")
    assert pool["spec"]["selector"]["matchLabels"]["hermes-cache.dev/role"] == "leader"


def test_the_endpoint_picker_is_never_selected_as_a_serving_pod() -> None:
    objs = objects(**ROUTED)
    epp = objs["Deployment/hermes-8b-epp"]
    epp_labels = epp["spec"]["template"]["metadata"]["labels"]
    for selector in (
        objs["InferencePool/hermes-8b"]["spec"]["selector"]["matchLabels"],
        objs["Service/hermes-8b"]["spec"]["selector"],
        objs["PodDisruptionBudget/hermes-8b"]["spec"]["selector"]["matchLabels"],
    ):
        assert not selector.items() <= epp_labels.items()
    assert objs["Service/hermes-8b-epp"]["spec"]["selector"].items() <= epp_labels.items()
    assert epp["spec"]["selector"]["matchLabels"].items() <= epp_labels.items()


def test_the_endpoint_picker_config_has_upstreams_scorers_and_reads_metrics_through_the_sidecar() -> None:
    objs = objects(**ROUTED)
    cm = objs["ConfigMap/hermes-8b-epp"]
    config = yaml.safe_load(cm["data"][EPP_CONFIG_FILE])
    assert config["kind"] == "EndpointPickerConfig"
    weights = {p["pluginRef"]: p["weight"] for p in config["schedulingProfiles"][0]["plugins"]}
    assert weights == {"queue-scorer": 2, "kv-cache-utilization-scorer": 2, "prefix-cache-scorer": 3}
    source = next(p for p in config["plugins"] if p["type"] == "metrics-data-source")
    assert source["parameters"]["path"] == UPSTREAM_METRICS_PATH
    declared = {p["type"] for p in config["plugins"]}
    assert set(weights) <= declared
    assert config["dataLayer"]["sources"][0]["pluginRef"] == "metrics-data-source"
    # the Deployment mounts that ConfigMap where its --config-file points, without deprecated flags
    pod = objs["Deployment/hermes-8b-epp"]["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    assert args[args.index("--config-file") + 1] == f"{EPP_CONFIG_DIR}/{EPP_CONFIG_FILE}"
    assert pod["volumes"][0]["configMap"]["name"] == "hermes-8b-epp"
    assert pod["containers"][0]["volumeMounts"][0]["mountPath"] == EPP_CONFIG_DIR
    assert not [a for a in args if a.startswith("--model-server-metrics") or a.endswith("-metric")]
    assert args[args.index("--pool-name") + 1] == "hermes-8b"
    assert args[args.index("--pool-namespace") + 1] == "team-a"
    assert pod["serviceAccountName"] == "hermes-8b-epp"
    assert pod["containers"][0]["readinessProbe"]["grpc"]["service"] == "inference-extension"


def test_weights_reach_the_config_a_zero_drops_the_scorer_and_a_change_restarts_the_epp() -> None:
    policy = parse_policy(policy_doc(routing={"enabled": True, "weights": {"queue": 0, "prefixCache": 5}}))
    profile = endpoint_picker_config(policy)["schedulingProfiles"][0]["plugins"]
    assert profile == [
        {"pluginRef": "kv-cache-utilization-scorer", "weight": 2},
        {"pluginRef": "prefix-cache-scorer", "weight": 5},
    ]

    def config_hash(**routing: Any) -> str:
        epp = objects(routing={"enabled": True, **routing})["Deployment/hermes-8b-epp"]
        return str(epp["spec"]["template"]["metadata"]["annotations"]["hermes-cache.dev/epp-config-hash"])

    assert config_hash() != config_hash(weights={"prefixCache": 5})
    assert config_hash() == config_hash()


def test_the_httproute_sends_the_named_gateways_requests_to_the_pool() -> None:
    assert "HTTPRoute/hermes-8b" not in objects(**ROUTED)
    route = objects(
        replicas=2,
        routing={"enabled": True, "gateway": {"name": "gw", "namespace": "infra", "sectionName": "https"}},
    )["HTTPRoute/hermes-8b"]
    assert route["spec"]["parentRefs"] == [
        {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": "gw",
            "namespace": "infra",
            "sectionName": "https",
        }
    ]
    backend = route["spec"]["rules"][0]["backendRefs"][0]
    assert backend == {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": "hermes-8b"}


def test_the_binding_names_the_charts_cluster_role() -> None:
    objs = objects(**ROUTED)
    binding = objs["RoleBinding/hermes-8b-epp"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "hermes-cache-endpoint-picker",
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "hermes-8b-epp", "namespace": "team-a"}]
    assert "ServiceAccount/hermes-8b-epp" in objs


def test_routing_does_not_change_the_serving_pods() -> None:
    plain, routed = parse_policy(policy_doc(replicas=2)), parse_policy(policy_doc(**ROUTED))
    assert render_deployment(plain) == render_deployment(routed)
    assert render_service(plain) == render_service(routed)


@pytest.fixture
def kube() -> RecordingKube:
    return RecordingKube()


@pytest.fixture
def env(kube: RecordingKube) -> Env:
    from test_handlers import Clock, RecordingStore

    store = RecordingStore()
    return Env(kube=kube, stores=lambda url: store, metrics=OperatorMetrics(), now=Clock())


def test_one_replica_without_autoscaling_is_a_warning_not_a_refusal(env: Env, kube: RecordingKube) -> None:
    status = reconcile(cr(routing={"enabled": True}), env)
    routing = conditions(status)["Routing"]
    assert (routing["status"], routing["reason"]) == ("False", "SingleReplica")
    assert "spec.routing.enabled" in routing["message"] and "spec.replicas 1" in routing["message"]
    assert ("InferencePool", "team-a", "hermes-8b") in kube.objects  # applied anyway
    assert conditions(status)["Ready"]["reason"] != "InvalidSpec"
    assert [e[1] for e in kube.events] == ["SingleReplica"]
    reconcile(cr(routing={"enabled": True}, status=status), env)
    assert len(kube.events) == 1  # once, not on every reconcile


@pytest.mark.parametrize(
    "spec",
    [{"replicas": 2}, {"replicas": 1, "autoscaling": {"enabled": True, "maxReplicas": 3}}],
)
def test_more_than_one_possible_pod_is_no_warning(env: Env, spec: dict[str, Any]) -> None:
    status = reconcile(cr(routing={"enabled": True}, **spec), env)
    routing = conditions(status)["Routing"]
    assert (routing["status"], routing["reason"]) == ("True", "PoolRendered")


def test_an_unrouted_policy_has_no_routing_condition_and_costs_no_request(
    env: Env, kube: RecordingKube
) -> None:
    status = reconcile(cr(replicas=2), env)
    assert "Routing" not in conditions(status)
    assert kube.deletes == []


def test_turning_routing_off_removes_the_pool_and_the_endpoint_picker(env: Env, kube: RecordingKube) -> None:
    status = reconcile(cr(**ROUTED), env)
    routed = {
        k for k in kube.objects if k[2].startswith("hermes-8b") and k[0] not in ("PodDisruptionBudget",)
    }
    assert ("Deployment", "team-a", "hermes-8b-epp") in routed
    status = reconcile(cr(generation=2, status=status, replicas=2), env)
    assert "Routing" not in conditions(status)
    left = set(kube.objects)
    for kind, name in [
        ("InferencePool", "hermes-8b"),
        ("Deployment", "hermes-8b-epp"),
        ("Service", "hermes-8b-epp"),
        ("ConfigMap", "hermes-8b-epp"),
        ("ServiceAccount", "hermes-8b-epp"),
        ("RoleBinding", "hermes-8b-epp"),
    ]:
        assert (kind, "team-a", name) not in left
    assert ("Deployment", "team-a", "hermes-8b") in left and ("Service", "team-a", "hermes-8b") in left


def test_plan_shows_the_routing_resources_and_the_warning(
    capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(policy_doc(routing={"enabled": True})))
    assert main(["plan", str(path)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^routing\s+InferencePool hermes-8b -> endpoint picker", out, re.MULTILINE)
    assert re.search(r"^warning\s+spec.routing.enabled is true", out, re.MULTILINE)
    assert "InferencePool/hermes-8b" in out and "Deployment/hermes-8b-epp" in out


def test_the_routed_example_plans_a_pool_an_epp_and_a_route_without_warning(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["plan", "-o", "json", str(ROOT / "examples" / "hermes-8b-routed.yaml")]) == 0
    kinds = {r["kind"] for r in json.loads(capsys.readouterr().out)["resources"]}
    assert {"InferencePool", "HTTPRoute", "ServiceAccount", "RoleBinding"} <= kinds
    policy = parse_policy(example("hermes-8b-routed.yaml"))
    assert [o["kind"] for o in render_routing(policy)].count("Deployment") == 1
    assert main(["plan", str(ROOT / "examples" / "hermes-8b-routed.yaml")]) == 0
    assert "\nwarning" not in capsys.readouterr().out
