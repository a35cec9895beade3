"""What `helm template` renders for the switches a user flips: CRD, operator, Redis, pod security."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_chart_common import (
    CHART,
    NAMESPACE,
    ROOT,
    TEST_IMAGE,
    everything_on,
    find,
    helm,
    kube_version,
    one,
    render,
    render_text,
)

CRD_NAME = "hermescachepolicies.hermes-cache.dev"


def _pod_specs(objs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{o['kind']}/{o['metadata']['name']}", o["spec"]["template"]["spec"])
        for o in objs
        if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job")
    ]


def test_defaults_install_the_crd_the_operator_and_its_identity() -> None:
    objs = render()
    kinds = sorted(f"{o['kind']}/{o['metadata']['name']}" for o in objs)
    assert kinds == [
        "ClusterRole/hermes-cache-endpoint-picker",
        "ClusterRole/hermes-cache-operator",
        "ClusterRoleBinding/hermes-cache-operator",
        f"CustomResourceDefinition/{CRD_NAME}",
        "Deployment/hermes-cache-operator",
        "Service/hermes-cache-operator",
        "ServiceAccount/hermes-cache",
    ]


def test_the_crd_template_carries_the_source_crd_unchanged() -> None:
    source = yaml.safe_load((ROOT / "crds" / "hermescachepolicy.yaml").read_text())
    rendered = one(render(), "CustomResourceDefinition")
    assert rendered["spec"] == source["spec"]
    assert rendered["metadata"]["name"] == source["metadata"]["name"]
    for k, v in (source["metadata"].get("labels") or {}).items():
        assert rendered["metadata"]["labels"][k] == v


def test_the_crd_template_is_regenerated_from_the_source() -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "sync-chart-crd.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr


def test_crds_keep_annotates_the_crd_and_crds_enabled_false_leaves_it_out() -> None:
    kept = one(render(), "CustomResourceDefinition")
    assert kept["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    not_kept = one(render({"crds": {"keep": False}}), "CustomResourceDefinition")
    assert "helm.sh/resource-policy" not in (not_kept["metadata"].get("annotations") or {})
    assert find(render({"crds": {"enabled": False}}), "CustomResourceDefinition") == []


def test_operator_disabled_keeps_the_service_account_and_its_rights() -> None:
    # The e2e tests run the operator outside the cluster with this ServiceAccount's token.
    objs = render({"operator": {"enabled": False}})
    assert find(objs, "Deployment") == [] and find(objs, "Service") == []
    sa = one(objs, "ServiceAccount")
    binding = one(objs, "ClusterRoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": NAMESPACE}
    ]
    assert binding["roleRef"]["name"] == one(objs, "ClusterRole", "hermes-cache-operator")["metadata"]["name"]


def test_the_operator_runs_cluster_wide_with_metrics_and_liveness_on_the_configured_ports() -> None:
    objs = render({"operator": {"metricsPort": 9191, "healthPort": 8181, "extraArgs": ["--workers=3"]}})
    dep = one(objs, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["command"] == ["hermes-cache"]
    assert c["args"] == [
        "run",
        "--all-namespaces",
        "--liveness=http://0.0.0.0:8181/healthz",
        "--metrics-port=9191",
        "--workers=3",
    ]
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"http-metrics": 9191, "http-health": 8181}
    assert pod["serviceAccountName"] == one(objs, "ServiceAccount")["metadata"]["name"]
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"]["type"] == "Recreate"
    assert c["image"] == "registry.example/hermes-cache:0.1.0"
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["HERMES_SIDECAR_IMAGE"] == c["image"]  # the sidecars the operator renders run the same build
    svc = one(objs, "Service")
    assert svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()


def test_image_digest_pins_the_operator_image() -> None:
    digest = "sha256:" + "a" * 64
    dep = one(render({"operator": {"image": {"tag": "1.2.3", "digest": digest}}}), "Deployment")
    assert (
        dep["spec"]["template"]["spec"]["containers"][0]["image"]
        == f"registry.example/hermes-cache:1.2.3@{digest}"
    )


@pytest.mark.parametrize("values", [{}, everything_on()], ids=["defaults", "everything-on"])
def test_every_pod_is_non_root_read_only_without_privileges(values: dict[str, Any]) -> None:
    pods = _pod_specs(render(values))
    assert pods
    for name, pod in pods:
        psc = pod.get("securityContext") or {}
        assert psc.get("seccompProfile") == {"type": "RuntimeDefault"}, name
        for c in pod.get("initContainers", []) + pod["containers"]:
            sc = c.get("securityContext") or {}
            assert sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True, (name, c["name"])
            assert sc.get("runAsUser", psc.get("runAsUser", 0)) != 0, (name, c["name"])
            assert sc.get("readOnlyRootFilesystem") is True, (name, c["name"])
            assert sc.get("allowPrivilegeEscalation") is False, (name, c["name"])
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], (name, c["name"])
            assert not sc.get("capabilities", {}).get("add"), (name, c["name"])
            assert "resources" in c and c["resources"].get("limits", {}).get("memory"), (name, c["name"])


def test_redis_with_a_generated_password_that_stays_out_of_the_pod_spec() -> None:
    objs = render({"redis": {"enabled": True}})
    sts = one(objs, "StatefulSet", "hermes-cache-redis")
    secret = one(objs, "Secret", "hermes-cache-redis")
    password = secret["data"]["password"]
    assert len(password) > 20
    c = sts["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == "docker.io/library/redis:8"
    # The image's entry point loads the bundled modules (vector search) only for redis-server.
    assert c["args"][0] == "redis-server"
    i = c["args"].index("--requirepass")
    assert c["args"][i + 1] == "$(REDIS_PASSWORD)"
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"]}
    assert env["REDIS_PASSWORD"] == {"name": "hermes-cache-redis", "key": "password"}
    assert password not in yaml.safe_dump(sts)
    # No persistence: no snapshots into an emptyDir.
    assert c["args"][c["args"].index("--save") + 1] == ""
    assert sts["spec"]["template"]["spec"]["volumes"] == [{"name": "data", "emptyDir": {}}]
    svc = one(objs, "Service", "hermes-cache-redis")
    assert svc["spec"]["selector"].items() <= sts["spec"]["template"]["metadata"]["labels"].items()
    assert svc["spec"]["ports"][0]["port"] == 6379


def test_redis_existing_secret_and_persistence() -> None:
    objs = render(
        {
            "redis": {
                "enabled": True,
                "maxmemory": "2gb",
                "auth": {"existingSecret": "my-redis", "existingSecretPasswordKey": "redis-password"},
                "persistence": {"enabled": True, "size": "20Gi", "storageClass": "fast"},
            }
        }
    )
    assert find(objs, "Secret") == []
    sts = one(objs, "StatefulSet")
    c = sts["spec"]["template"]["spec"]["containers"][0]
    assert {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"]}["REDIS_PASSWORD"] == {
        "name": "my-redis",
        "key": "redis-password",
    }
    assert "--save" not in c["args"]
    assert c["args"][c["args"].index("--maxmemory") + 1] == "2gb"
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert claim["spec"]["storageClassName"] == "fast"
    assert "volumes" not in sts["spec"]["template"]["spec"]


def test_redis_without_auth_has_no_password_anywhere() -> None:
    objs = render({"redis": {"enabled": True, "auth": {"enabled": False}}})
    assert find(objs, "Secret") == []
    c = one(objs, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]
    assert "--requirepass" not in c["args"] and "env" not in c


def test_long_release_names_still_give_valid_resource_names() -> None:
    long_release = "a-long-release-name-for-a-platform-team-with-rules-x"  # helm allows 53 characters
    proc = helm(
        "template", long_release, str(CHART), "--namespace", NAMESPACE, "--kube-version", kube_version(),
        "--set", "redis.enabled=true,monitoring.dashboards.enabled=true,monitoring.podMonitor.enabled=true",
        "--set", f"operator.image.repository={TEST_IMAGE}",
    )  # fmt: skip
    objs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    names = [o["metadata"]["name"] for o in objs if o["kind"] != "CustomResourceDefinition"]
    assert all(len(n) <= 63 and not n.endswith("-") for n in names), names
    assert len({(o["kind"], o["metadata"]["name"]) for o in objs}) == len(objs)


def test_common_labels_reach_every_resource() -> None:
    objs = render({"commonLabels": {"team": "ml-platform"}, **everything_on()})
    assert all(o["metadata"]["labels"]["team"] == "ml-platform" for o in objs)


def _notes(values: str) -> str:
    """NOTES.txt rendered. `helm template` skips NOTES.txt and `helm install --dry-run` has no
    --kube-version, so render a copy of the chart in which a template renders the notes with `tpl`."""
    with tempfile.TemporaryDirectory() as tmp:
        chart = Path(tmp) / "hermes-cache"
        shutil.copytree(CHART, chart)
        (chart / "templates" / "NOTES.txt").rename(chart / "notes.txt")
        (chart / "templates" / "notes.yaml").write_text(
            'notes: {{ tpl (.Files.Get "notes.txt") . | toJson }}\n'
        )
        out = helm(
            "template", "hermes-cache", str(chart), "--namespace", NAMESPACE,
            "--kube-version", kube_version(), "--show-only", "templates/notes.yaml", "--set", values,
            "--set", f"operator.image.repository={TEST_IMAGE}",
        ).stdout  # fmt: skip
        notes: str = yaml.safe_load(out)["notes"]
        return notes


def test_notes_tell_the_next_commands() -> None:
    notes = _notes("operator.enabled=false,redis.enabled=true")
    assert f"kubectl -n {NAMESPACE} create token hermes-cache" in notes
    assert "kubectl get hcp -A" in notes
    assert f"redis://hermes-cache-redis.{NAMESPACE}.svc:6379" in notes
    assert "get secret hermes-cache-redis -o jsonpath='{.data.password}'" in notes
    assert "helm uninstall hermes-cache" in notes and "kubectl delete crd " + CRD_NAME in notes
    assert "Monitoring is off" in notes


def test_notes_with_the_operator_in_the_cluster_and_monitoring_on() -> None:
    notes = _notes(
        "monitoring.podMonitor.enabled=true,monitoring.prometheusRule.enabled=true,crds.keep=false"
    )
    assert f"kubectl -n {NAMESPACE} rollout status deployment/hermes-cache-operator" in notes
    assert "/upstream/metrics (vLLM)" in notes
    assert "kubectl delete crd" not in notes


def test_operator_image_has_no_default_and_the_error_says_what_to_do() -> None:
    proc = render_text({"operator": {"image": {"repository": ""}}}, check=False)
    assert proc.returncode != 0
    assert "operator.image.repository is required when operator.enabled" in proc.stderr
    assert "make image" in proc.stderr and "operator.enabled=false" in proc.stderr
    # without the in-cluster operator, nothing needs the image
    objs = render({"operator": {"enabled": False, "image": {"repository": ""}}})
    assert not find(objs, "Deployment")


def test_watch_namespaces_scope_the_operator() -> None:
    dep = one(render({"operator": {"watchNamespaces": ["team-a", "team-b"]}}), "Deployment")
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=team-a" in args and "--namespace=team-b" in args
    assert "--all-namespaces" not in args
