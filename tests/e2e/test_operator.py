"""The operator against a real control plane (kube-apiserver 1.36, controller-manager, kwok GPU nodes).

The chart is installed with operator.enabled=false (CRD, ServiceAccount, RBAC); the operator runs as
a local `hermes-cache run` process whose kubeconfig holds a token of the chart's ServiceAccount, so
every call it makes is checked against the chart's RBAC. Redis for the generation record is the
project's own (scripts/redis/start.sh) on the host, reachable by the local operator process.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

import redis

if TYPE_CHECKING:
    from conftest import Kube

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "unit"))
from _policies import deep_merge, invalid_cases  # noqa: E402

RELEASE = "hermes-cache"
SYSTEM_NS = "hermes-system"
H100 = "NVIDIA-H100-80GB-HBM3"
KWOK_TOLERATION = {"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}
FAKE_SLOT = "hermes-cache.dev/e2e-slot"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Operator:
    """`hermes-cache run` as a child process, restartable; its log is kept for the tests to read."""

    def __init__(self, kubeconfig: Path, log: Path, drift_interval: float = 5) -> None:
        self.kubeconfig, self.log, self.drift_interval = kubeconfig, log, drift_interval
        self.proc: subprocess.Popen[bytes] | None = None
        self.metrics_port = 0

    def start(self) -> None:
        self.metrics_port, health = _free_port(), _free_port()
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    str(ROOT / ".venv/bin/hermes-cache"),
                    "run",
                    # Only the namespaces of these tests (conftest's `namespace` fixture): other
                    # engineers' operators and benchmarks share the cluster with their own policies.
                    "--namespace=e2e-test-*",
                    f"--metrics-port={self.metrics_port}",
                    "--metrics-addr=127.0.0.1",
                    f"--liveness=http://127.0.0.1:{health}/healthz",
                    f"--drift-interval={self.drift_interval}",
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-4000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{health}/healthz", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise AssertionError("operator liveness endpoint never answered:\n" + self.log.read_text()[-4000:])

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            return r.read().decode()


def _sa_kubeconfig(kube: Kube, path: Path) -> None:
    """A kubeconfig for the chart's ServiceAccount: same server and CA, the SA's token."""
    admin = yaml.safe_load(kube.kubeconfig.read_text())
    cluster = admin["clusters"][0]["cluster"]
    if "certificate-authority" in cluster:
        ca = Path(cluster["certificate-authority"])
        if not ca.is_absolute():
            cluster["certificate-authority"] = str((kube.kubeconfig.parent / ca).resolve())
    token = kube.kubectl("-n", SYSTEM_NS, "create", "token", RELEASE, "--duration=2h").stdout.strip()
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "e2e", "cluster": cluster}],
                "users": [{"name": "operator", "user": {"token": token}}],
                "contexts": [{"name": "operator", "context": {"cluster": "e2e", "user": "operator"}}],
                "current-context": "operator",
            }
        )
    )


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # a free port: a fixed one collides with a Redis left behind by another run on the same machine
    state, port = tmp_path_factory.mktemp("redis"), _free_port()
    subprocess.run(["bash", str(ROOT / "scripts/redis/start.sh"), str(port), str(state)], check=True)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        subprocess.run(["bash", str(ROOT / "scripts/redis/stop.sh"), str(port), str(state)], check=False)


@pytest.fixture(scope="module")
def operator(
    kube: Kube, crd_release: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    with operator_as_service_account(kube, tmp_path_factory.mktemp("operator")) as op:
        yield op


@contextlib.contextmanager
def operator_as_service_account(kube: Kube, tmp: Path) -> Iterator[Operator]:
    """The operator as a local process under the chart's ServiceAccount (RBAC is real); its log path is
    printed on the way out."""
    _sa_kubeconfig(kube, tmp / "kubeconfig")
    op = Operator(tmp / "kubeconfig", tmp / "operator.log")
    op.start()
    try:
        yield op
    finally:
        op.stop()
        print(f"operator log: {op.log}")


def _policy(name: str, **spec: Any) -> dict[str, Any]:
    base = {
        "model": {"name": "NousResearch/Hermes-3-Llama-3.1-8B"},
        "engine": {"maxModelLen": 16384},
        "gpu": {"nodeSelector": {"nvidia.com/gpu.product": H100}, "tolerations": [KWOK_TOLERATION]},
        "semanticCache": {"enabled": False},
    }
    return {
        "apiVersion": "hermes-cache.dev/v1alpha1",
        "kind": "HermesCachePolicy",
        "metadata": {"name": name},
        "spec": deep_merge(base, spec),
    }


def _apply(kube: Kube, ns: str, doc: dict[str, Any]) -> None:
    kube.apply(json.dumps(doc), namespace=ns)


def _hcp(kube: Kube, ns: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = kube.get_json("-n", ns, "hcp", name)
    return obj


def _condition(obj: dict[str, Any], ctype: str) -> dict[str, Any]:
    for c in obj.get("status", {}).get("conditions", []):
        if c["type"] == ctype:
            return dict(c)
    return {}


def _wait_condition(
    kube: Kube, ns: str, name: str, ctype: str, status: str, timeout: float = 120
) -> dict[str, Any]:
    kube.wait_for(
        lambda: _condition(_hcp(kube, ns, name), ctype).get("status") == status,
        timeout=timeout,
        what=f"{ns}/{name} {ctype}={status}",
    )
    return _hcp(kube, ns, name)


def test_policy_becomes_ready_with_running_pods_on_the_selected_gpu_type(
    kube: Kube, operator: Operator, namespace: str
) -> None:
    _apply(kube, namespace, _policy("chat", replicas=2))
    obj = _wait_condition(kube, namespace, "chat", "Ready", "True")
    assert obj["status"]["readyReplicas"] == 2
    assert _condition(obj, "CapacityOK")["status"] == "True"
    assert all(c["observedGeneration"] == obj["metadata"]["generation"] for c in obj["status"]["conditions"])
    pods = kube.get_json("-n", namespace, "pods", "-l", "app.kubernetes.io/instance=chat")["items"]
    assert len(pods) == 2 and all(p["status"]["phase"] == "Running" for p in pods)
    for pod in pods:
        node = kube.get_json("node", pod["spec"]["nodeName"])
        assert node["metadata"]["labels"]["nvidia.com/gpu.product"] == H100
    dep = kube.get_json("-n", namespace, "deployment", "chat", "--show-managed-fields")
    managers = {m["manager"] for m in dep["metadata"]["managedFields"] if m["operation"] == "Apply"}
    assert managers == {"hermes-cache-operator"}
    assert dep["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]
    # no finalizer: a policy stays deletable when the operator is not running
    assert not obj["metadata"].get("finalizers")


def test_printer_columns(kube: Kube, operator: Operator, namespace: str) -> None:
    _apply(kube, namespace, _policy("cols", cacheVersion="v5"))
    _wait_condition(kube, namespace, "cols", "Ready", "True")
    out = kube.kubectl("-n", namespace, "get", "hcp", "cols").stdout.splitlines()
    header = out[0].split()
    for col in ("NAME", "MODEL", "TP", "REPLICAS", "READY", "VERSION", "HIT", "RATE", "AGE"):
        assert col in header
    row = out[1].split()
    assert row[:6] == ["cols", "NousResearch/Hermes-3-Llama-3.1-8B", "1", "1", "1", "v5"]


def test_kubectl_scale_reaches_the_deployment(kube: Kube, operator: Operator, namespace: str) -> None:
    _apply(kube, namespace, _policy("scaled"))
    _wait_condition(kube, namespace, "scaled", "Ready", "True")
    kube.kubectl("-n", namespace, "scale", "hcp/scaled", "--replicas=3")
    kube.wait_for(
        lambda: _hcp(kube, namespace, "scaled").get("status", {}).get("readyReplicas") == 3,
        timeout=120,
        what="3 ready replicas after kubectl scale",
    )
    assert kube.get_json("-n", namespace, "deployment", "scaled")["spec"]["replicas"] == 3
    scale = json.loads(
        kube.kubectl(
            "get",
            "--raw",
            f"/apis/hermes-cache.dev/v1alpha1/namespaces/{namespace}/hermescachepolicies/scaled/scale",
        ).stdout
    )
    assert scale["status"]["replicas"] == 3
    assert (
        scale["status"]["selector"] == "app.kubernetes.io/name=hermes-cache,app.kubernetes.io/instance=scaled"
    )


CASES = invalid_cases()


def test_invalid_policies_are_refused_by_the_api_server_naming_the_field(
    kube: Kube, operator: Operator, namespace: str
) -> None:
    assert len(CASES) >= 10
    failures = []
    for i, case in enumerate(CASES):
        doc = _policy(f"bad-{i}")
        doc["spec"] = deep_merge(doc["spec"], case["spec"])
        proc = kube.kubectl(
            "-n", namespace, "create", "--dry-run=server", "-f", "-", input=json.dumps(doc), check=False
        )
        if proc.returncode == 0 or case["field"] not in proc.stderr:
            failures.append((case, proc.returncode, proc.stderr))
    assert failures == []


# Hostile policies a careless or malicious client sends: wrong types, huge strings, unknown fields,
# and settings that each pass the schema but conflict with each other or with the model.
HOSTILE_REFUSED = [
    ("wrong type", {"replicas": "three"}, "spec.replicas"),
    ("wrong type", {"engine": {"tensorParallelSize": [4]}}, "spec.engine.tensorParallelSize"),
    ("wrong type", {"semanticCache": {"enabled": "yes please"}}, "spec.semanticCache.enabled"),
    ("wrong type", {"gpu": {"nodeSelector": ["a", "b"]}}, "spec.gpu.nodeSelector"),
    ("huge string", {"model": {"servedName": "x" * 100_000}}, "spec.model.servedName"),
    ("huge string", {"cacheVersion": "v" * 5_000}, "spec.cacheVersion"),
    ("huge list", {"engine": {"extraArgs": ["--enforce-eager"] * 1_000}}, "spec.engine.extraArgs"),
    ("unknown field", {"engine": {"tensorParalelSize": 2}}, 'unknown field "spec.engine.tensorParalelSize"'),
    ("conflict", {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2}}, "spec.autoscaling"),
    ("conflict", {"device": "cpu"}, "spec.engine.image"),
]


def test_hostile_policies_are_refused_or_reported_and_the_operator_keeps_reconciling(
    kube: Kube, operator: Operator, namespace: str
) -> None:
    """Nothing a client sends stops the operator: refused at the door, or a condition, never a crash."""
    leaks = []
    for i, (kind, spec, field) in enumerate(HOSTILE_REFUSED):
        doc = _policy(f"hostile-{i}", **spec)
        # --validate=strict: what a client that does not prune unknown fields sends
        proc = kube.kubectl(
            "-n", namespace, "create", "--validate=strict", "-f", "-", input=json.dumps(doc), check=False
        )
        if proc.returncode == 0 or field not in proc.stderr:
            leaks.append((kind, field, proc.returncode, proc.stderr[-500:]))
    assert leaks == []
    # Past the schema, the operator reports what it cannot do, in a condition naming the field.
    unknown = _policy("hostile-unknown-model", model={"name": "acme/Unknown-13B"})
    _apply(kube, namespace, unknown)
    # a verifier URL of 512 characters and a threshold pair that only the operator can check together
    odd = _policy(
        "hostile-odd",
        semanticCache={"enabled": True, "redis": {"url": "redis://" + "r" * 400 + ":6379/0"}},
    )
    _apply(kube, namespace, odd)
    fine = _policy("still-served")
    _apply(kube, namespace, fine)
    cond = _condition(
        _wait_condition(kube, namespace, "hostile-unknown-model", "CapacityOK", "False"), "CapacityOK"
    )
    assert cond["reason"] == "UnknownModel" and "spec.model.architecture" in cond["message"]
    _wait_condition(kube, namespace, "still-served", "Ready", "True")
    odd_status = _hcp(kube, namespace, "hostile-odd").get("status", {})
    assert odd_status.get("observedGeneration") == 1  # reconciled (its Redis is unreachable: fail open)
    assert operator.proc is not None and operator.proc.poll() is None, "the operator process died"
    assert "Traceback" not in operator.log.read_text(errors="replace")[-200_000:]


def test_policy_that_cannot_fit_gets_capacity_false_an_event_and_no_deployment(
    kube: Kube, operator: Operator, namespace: str
) -> None:
    doc = yaml.safe_load((ROOT / "examples/hermes-70b-tp1.yaml").read_text())
    _apply(kube, namespace, doc)
    obj = _wait_condition(kube, namespace, "hermes-70b-tp1", "CapacityOK", "False")
    cond = _condition(obj, "CapacityOK")
    assert cond["reason"] == "InsufficientMemory" and "68.00 GiB" in cond["message"]
    kube.wait_for(
        lambda: any(
            e["reason"] == "InsufficientMemory" and e["involvedObject"]["name"] == "hermes-70b-tp1"
            for e in kube.get_json("-n", namespace, "events")["items"]
        ),
        timeout=30,
        what="a Warning event for the refusal",
    )
    assert kube.kubectl("-n", namespace, "get", "deployment", "hermes-70b-tp1", check=False).returncode != 0


def test_cache_version_change_publishes_generation_without_touching_the_deployment(
    kube: Kube, operator: Operator, namespace: str, redis_url: str
) -> None:
    spec = {"semanticCache": {"enabled": True, "redis": {"url": redis_url}}, "cacheVersion": "v1"}
    _apply(kube, namespace, _policy("gen", **spec))
    _wait_condition(kube, namespace, "gen", "Ready", "True")
    before = kube.get_json("-n", namespace, "deployment", "gen")
    pods_before = {
        p["metadata"]["name"]
        for p in kube.get_json("-n", namespace, "pods", "-l", "app.kubernetes.io/instance=gen")["items"]
    }

    kube.kubectl(
        "-n", namespace, "patch", "hcp", "gen", "--type=merge", "-p", '{"spec":{"cacheVersion":"v2"}}'
    )
    kube.wait_for(
        lambda: _hcp(kube, namespace, "gen")["status"].get("cacheVersion") == "v2",
        timeout=60,
        what="status.cacheVersion v2",
    )
    obj = _hcp(kube, namespace, "gen")
    record = json.loads(redis.Redis.from_url(redis_url).get(f"hermes:{namespace}/gen:generation") or b"{}")
    assert record == {
        "version": "v2",
        "uid": obj["metadata"]["uid"],
        "switchedAt": obj["status"]["cacheVersionSwitchedAt"],
    }
    after = kube.get_json("-n", namespace, "deployment", "gen")
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"]["template"] == before["spec"]["template"]
    pods_after = {
        p["metadata"]["name"]
        for p in kube.get_json("-n", namespace, "pods", "-l", "app.kubernetes.io/instance=gen")["items"]
    }
    assert pods_after == pods_before
    assert _condition(obj, "CacheGenerationApplied")["status"] == "True"


def test_redis_password_from_a_secret(kube: Kube, operator: Operator, namespace: str, tmp_path: Path) -> None:
    """The operator (as the chart's ServiceAccount) reads the Secret a policy names, never its URL."""
    from hermes_sidecar.config import CacheConfig

    port, password = _free_port(), "s3cr:t/pw"
    subprocess.run(["bash", str(ROOT / "scripts/redis/start.sh"), str(port), str(tmp_path)], check=True)
    try:
        redis.Redis(port=port).config_set("requirepass", password)
        url = f"redis://127.0.0.1:{port}/0"
        ref = {"name": "redis-auth", "key": "pw"}
        spec = {"semanticCache": {"enabled": True, "redis": {"url": url, "passwordSecretRef": ref}}}
        _apply(kube, namespace, _policy("auth", **spec))
        missing = _wait_condition(kube, namespace, "auth", "CacheGenerationApplied", "False")
        cond = _condition(missing, "CacheGenerationApplied")
        assert cond["reason"] == "RedisPasswordUnavailable", cond
        assert f"Secret {namespace}/redis-auth not found" in cond["message"]

        kube.kubectl(
            "-n", namespace, "create", "secret", "generic", "redis-auth", f"--from-literal=pw={password}"
        )
        obj = _wait_condition(kube, namespace, "auth", "CacheGenerationApplied", "True", timeout=60)
        record = redis.Redis(port=port, password=password).get(f"hermes:{namespace}/auth:generation")
        assert json.loads(record or b"{}")["uid"] == obj["metadata"]["uid"]
        assert password not in json.dumps(obj) and "s3cr" not in operator.log.read_text()

        if "redisPasswordFile" in CacheConfig.model_fields:
            _wait_condition(kube, namespace, "auth", "Ready", "True")
            pod = kube.get_json("-n", namespace, "deployment", "auth")["spec"]["template"]["spec"]
            assert {"key": "pw", "path": "password"} in next(
                v["secret"]["items"] for v in pod["volumes"] if "secret" in v
            )
        else:  # the bundled sidecar cannot read the password yet: nothing is deployed
            ready = _condition(obj, "Ready")
            assert ready["reason"] == "InvalidSpec" and "passwordSecretRef" in ready["message"], ready
            assert kube.kubectl("-n", namespace, "get", "deployment", "auth", check=False).returncode != 0
    finally:
        subprocess.run(["bash", str(ROOT / "scripts/redis/stop.sh"), str(port), str(tmp_path)], check=False)


def test_deleting_a_policy_garbage_collects_its_objects(
    kube: Kube, operator: Operator, namespace: str
) -> None:
    _apply(kube, namespace, _policy("gone", autoscaling={"enabled": True}))
    _wait_condition(kube, namespace, "gone", "Ready", "True")
    kube.kubectl("-n", namespace, "delete", "hcp", "gone")

    def children_left() -> list[str]:
        out = kube.kubectl(
            "-n",
            namespace,
            "get",
            "deployment,service,configmap,pdb,hpa",
            "-l",
            "app.kubernetes.io/instance=gone",
            "-o",
            "name",
        ).stdout
        return out.split()

    kube.wait_for(lambda: children_left() == [], timeout=90, what="children garbage-collected")


def test_restarting_the_operator_writes_nothing(kube: Kube, operator: Operator, namespace: str) -> None:
    _apply(kube, namespace, _policy("steady", replicas=2, cacheVersion="v3"))
    _wait_condition(kube, namespace, "steady", "Ready", "True")
    time.sleep(6)  # one drift tick after Ready, so nothing is still in flight

    def versions() -> dict[str, str]:
        out = {}
        for kind in ("hcp", "deployment", "service", "configmap", "pdb"):
            for obj in kube.get_json("-n", namespace, kind)["items"]:
                if obj["metadata"]["name"].startswith("steady"):
                    out[f"{kind}/{obj['metadata']['name']}"] = obj["metadata"]["resourceVersion"]
        return out

    before = versions()
    assert len(before) == 5
    log_size = operator.log.stat().st_size
    operator.stop()
    operator.start()
    # wait for the resumed operator to have reconciled this policy, and one drift tick on top
    kube.wait_for(
        lambda: f"[{namespace}/steady] Resuming is processed" in operator.log.read_text()[log_size:],
        timeout=60,
        what="the restarted operator to resume the policy",
    )
    time.sleep(6)
    assert versions() == before


def test_autoscaling_policy_gets_an_hpa_that_can_scale_it(
    kube: Kube, operator: Operator, namespace: str
) -> None:
    _apply(
        kube, namespace, _policy("auto", autoscaling={"enabled": True, "minReplicas": 1, "maxReplicas": 3})
    )
    _wait_condition(kube, namespace, "auto", "Ready", "True")
    hpa = kube.get_json("-n", namespace, "hpa", "auto")
    assert hpa["spec"]["scaleTargetRef"]["kind"] == "HermesCachePolicy"

    def able_to_scale() -> bool:
        conds = kube.get_json("-n", namespace, "hpa", "auto").get("status", {}).get("conditions", [])
        return any(c["type"] == "AbleToScale" and c["status"] == "True" for c in conds)

    # AbleToScale=True: the HPA controller read the policy's scale subresource and its selector
    kube.wait_for(able_to_scale, timeout=90, what="HPA AbleToScale=True")


def test_deployment_changes_reach_the_policy_within_seconds_not_at_the_drift_pass(
    kube: Kube, operator: Operator, namespace: str, tmp_path: Path
) -> None:
    """With a 300 s drift interval, only the Deployment watch can make these happen in time."""
    operator.stop()  # one operator at a time: both run standalone
    slow = Operator(operator.kubeconfig, tmp_path / "operator.log", drift_interval=300)
    try:
        slow.start()
        start = time.monotonic()
        _apply(kube, namespace, _policy("watched", replicas=2))
        obj = _wait_condition(kube, namespace, "watched", "Ready", "True", timeout=30)
        ready_s = time.monotonic() - start
        assert obj["status"]["readyReplicas"] == 2

        # Deleted by hand: put back, and the policy follows it through not ready to Ready again.
        old_uid = kube.get_json("-n", namespace, "deployment", "watched")["metadata"]["uid"]
        start = time.monotonic()
        kube.kubectl("-n", namespace, "delete", "deployment", "watched", "--wait=false")

        def recreated() -> bool:
            proc = kube.kubectl("-n", namespace, "get", "deployment", "watched", "-o", "json", check=False)
            return proc.returncode == 0 and json.loads(proc.stdout)["metadata"]["uid"] != old_uid

        kube.wait_for(recreated, timeout=30, interval=0.2, what="the deleted Deployment recreated")
        recreated_s = time.monotonic() - start
        kube.wait_for(
            lambda: (
                _condition(_hcp(kube, namespace, "watched"), "Ready").get("status") == "True"
                and _hcp(kube, namespace, "watched")["status"]["readyReplicas"] == 2
            ),
            timeout=30,
            what="Ready again with the recreated Deployment's pods",
        )

        # Edited by hand: the operator's spec.replicas wins again.
        start = time.monotonic()
        kube.kubectl("-n", namespace, "scale", "deployment", "watched", "--replicas=5")
        kube.wait_for(
            lambda: kube.get_json("-n", namespace, "deployment", "watched")["spec"]["replicas"] == 2,
            timeout=30,
            interval=0.2,
            what="spec.replicas of the edited Deployment back to 2",
        )
        repaired_s = time.monotonic() - start
        print(
            f"\ndrift interval 300 s: Ready {ready_s:.1f} s after apply; deleted Deployment back in "
            f"{recreated_s:.1f} s; scaled Deployment repaired in {repaired_s:.1f} s"
        )
        assert "forbidden" not in slow.log.read_text()
    finally:
        slow.stop()
        operator.start()


def test_fifty_policies_become_ready(kube: Kube, operator: Operator, namespace: str) -> None:
    """Fifty single-replica policies on a fake per-node slot resource (the cluster has only 32 GPUs)."""
    nodes = [n["metadata"]["name"] for n in kube.get_json("nodes", "-l", "type=kwok")["items"]]
    patch = json.dumps({"status": {"capacity": {FAKE_SLOT: "100"}, "allocatable": {FAKE_SLOT: "100"}}})
    for node in nodes:
        kube.kubectl("patch", "node", node, "--subresource=status", "--type=merge", "-p", patch)
    docs = [_policy(f"p{i:02d}", gpu={"resource": FAKE_SLOT}) for i in range(50)]
    start = time.monotonic()
    kube.apply("\n---\n".join(json.dumps(d) for d in docs), namespace=namespace)

    def ready_count() -> int:
        items = kube.get_json("-n", namespace, "hcp")["items"]
        return sum(_condition(o, "Ready").get("status") == "True" for o in items)

    kube.wait_for(lambda: ready_count() == 50, timeout=600, interval=2, what="50 policies Ready")
    elapsed = time.monotonic() - start
    print(f"\n50 policies Ready in {elapsed:.1f} s")
    (ROOT / ".e2e").mkdir(exist_ok=True)
    (ROOT / ".e2e" / "fifty-policies-seconds.txt").write_text(f"{elapsed:.1f}\n")
    assert 'hermes_operator_policies{condition="Ready",status="True"}' in operator.metrics()


def _rbac_rules_from_docs() -> list[dict[str, list[str]]]:
    text = (ROOT / "docs/operator.md").read_text()
    section = text.split("### RBAC needed", 1)[1].split("\n## ", 1)[0]
    rules = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or cells[0] in ("API group", "") or set(cells[0]) == {"-"}:
            continue
        group = "" if cells[0].startswith('""') else cells[0]
        rules.append(
            {
                "apiGroups": [group],
                "resources": [r.strip() for r in cells[1].split(",")],
                "verbs": [v.strip() for v in cells[2].split(",")],
            }
        )
    return rules


def test_rbac_in_the_docs_is_enough(
    kube: Kube, operator: Operator, namespace: str, redis_url: str, tmp_path: Path
) -> None:
    """The operator under a ClusterRole built from docs/operator.md "RBAC needed", and nothing else."""
    rules = _rbac_rules_from_docs()
    assert len(rules) >= 8
    name = f"hermes-docs-rbac-{namespace[-6:]}"
    kube.apply(
        json.dumps({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "docs-rbac"}}),
        namespace,
    )
    kube.apply(
        json.dumps(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": name},
                "rules": rules,
            }
        )
    )
    kube.apply(
        json.dumps(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": name},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
                "subjects": [{"kind": "ServiceAccount", "name": "docs-rbac", "namespace": namespace}],
            }
        )
    )
    admin = yaml.safe_load(kube.kubeconfig.read_text())
    token = kube.kubectl("-n", namespace, "create", "token", "docs-rbac", "--duration=1h").stdout.strip()
    admin["users"] = [{"name": admin["contexts"][0]["context"]["user"], "user": {"token": token}}]
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(admin))

    operator.stop()  # one operator at a time: both run standalone
    docs_op = Operator(tmp_path / "kubeconfig", tmp_path / "operator.log")
    try:
        docs_op.start()
        spec = {
            "semanticCache": {"enabled": True, "redis": {"url": redis_url}},
            "autoscaling": {"enabled": True},
        }
        _apply(kube, namespace, _policy("rbac", **spec))
        _wait_condition(kube, namespace, "rbac", "Ready", "True")
        kube.kubectl(
            "-n",
            namespace,
            "patch",
            "hcp",
            "rbac",
            "--type=merge",
            "-p",
            '{"spec":{"cacheVersion":"v2","autoscaling":{"enabled":false}}}',
        )
        kube.wait_for(
            lambda: _hcp(kube, namespace, "rbac")["status"].get("cacheVersion") == "v2",
            timeout=60,
            what="generation switch under the docs' RBAC",
        )
        kube.wait_for(
            lambda: kube.kubectl("-n", namespace, "get", "hpa", "rbac", check=False).returncode != 0,
            timeout=60,
            what="HPA removed under the docs' RBAC",
        )
        big = yaml.safe_load((ROOT / "examples/hermes-70b-tp1.yaml").read_text())
        _apply(kube, namespace, big)
        kube.wait_for(
            lambda: any(
                e["reason"] == "InsufficientMemory" for e in kube.get_json("-n", namespace, "events")["items"]
            ),
            timeout=60,
            what="the refusal Event under the docs' RBAC",
        )
        # RBAC denials read 'is forbidden: User "system:serviceaccount:..." cannot <verb> resource ...'
        denied = [line for line in docs_op.log.read_text().splitlines() if 'forbidden: User "system:' in line]
        assert denied == []
    finally:
        docs_op.stop()
        kube.kubectl("delete", "clusterrolebinding,clusterrole", name, "--ignore-not-found", check=False)
        operator.start()
