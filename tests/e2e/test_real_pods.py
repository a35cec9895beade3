"""The operator's own pods, really running: vLLM and the sidecar on the real kubelet node.

Everything here is the product as a platform team installs it, on the local cluster's real node
(scripts/node/): the images built from the project's files (scripts/image/build.sh) and loaded into
the node's containerd; the chart with the operator **in the cluster** (operator.enabled=true, under
its ServiceAccount, talking to the API server through the `kubernetes` Service); the CPU example
policy applied with kubectl, whose pod runs the CPU build of vLLM with the tiny model from a
PersistentVolumeClaim and the sidecar with the operator's rendered config, probes and security
context; requests through the policy's Service with `kubectl port-forward`; Redis with vector search
(a real server on the host, reached by the pod at the node's address) holding the entries.

One policy serves the whole module (a pod takes a minute or two to load vLLM on two cores); the
tests run in file order and each leaves the policy Ready.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # bench/ holds the real-node rig
from bench.extproc import NODE, assignments, free_port, model_volume, run, tiny_model_dir

if TYPE_CHECKING:
    from conftest import Kube

ROOT = Path(__file__).resolve().parents[2]
RELEASE = "hermes-real"
POLICY = "hermes-cpu"
READY_TIMEOUT = 600  # vLLM on two shared cores: 1-3 minutes to load, more while images import
TENANT = {"x-tenant-id": "team-a"}


@dataclass
class Served:
    kube: Kube
    namespace: str
    url: str  # the policy's Service through kubectl port-forward
    redis: redis.Redis
    images: dict[str, str]
    redis_url: str = ""

    def hcp(self) -> dict[str, Any]:
        obj: dict[str, Any] = self.kube.get_json("-n", self.namespace, "hcp", POLICY)
        return obj

    def condition(self, ctype: str) -> dict[str, Any]:
        return next((c for c in self.hcp().get("status", {}).get("conditions", []) if c["type"] == ctype), {})

    def pod(self) -> dict[str, Any]:
        pods = self.kube.get_json("-n", self.namespace, "pods", "-l", f"app.kubernetes.io/instance={POLICY}")[
            "items"
        ]
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        assert len(live) == 1, [p["metadata"]["name"] for p in pods]
        return dict(live[0])

    def chat(self, question: str, **extra: Any) -> tuple[str, dict[str, Any]]:
        body = {
            "model": "tiny-llama",
            "messages": [{"role": "user", "content": question}],
            "max_tokens": 8,
            "temperature": 0,
            **extra,
        }
        req = urllib.request.Request(
            f"{self.url}/v1/chat/completions",
            data=json.dumps(body).encode(),
            headers={"content-type": "application/json", **TENANT},
        )
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.headers["x-hermes-cache"], json.loads(r.read())


def _wait_ready(s: Served, timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready = s.condition("Ready")
        if ready.get("status") == "True":
            return
        time.sleep(3)
    raise AssertionError(
        f"policy {POLICY} not Ready in {timeout:.0f} s: {s.condition('Ready')}\n"
        + s.kube.kubectl("-n", s.namespace, "describe", "pods", check=False).stdout[-6000:]
    )


@contextlib.contextmanager
def _port_forward(kube: Kube, namespace: str, target: str, port: int) -> Iterator[str]:
    local = free_port()
    log = open(os.devnull, "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            str(ROOT / ".e2e/bin/kubectl"),
            "--kubeconfig",
            str(kube.kubeconfig),
            "-n",
            namespace,
            "port-forward",
            target,
            f"{local}:{port}",
            "--address",
            "127.0.0.1",
        ],
        stdout=log,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{local}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=5):
                    break
            except (OSError, urllib.error.URLError):
                if proc.poll() is not None:
                    raise AssertionError(
                        f"kubectl port-forward {target} exited: {proc.stderr.read()}"
                    ) from None
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()
        log.close()


@pytest.fixture(scope="module")
def served(
    kube: Kube, crd_release: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("real-pods")
    images = assignments(run("bash", str(ROOT / "scripts/image/build.sh"), "all"))
    hermes, vllm = images["HERMES_IMAGE"], images["VLLM_IMAGE"]
    run("bash", str(ROOT / "scripts/node/load-image.sh"), hermes, vllm)
    node = kube.get_json("node", NODE)
    node_ip = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")

    # Redis with vector search, listening where the pod can reach it: the node's address.
    port, state = free_port(), tmp / "redis"
    env = {**os.environ, "HERMES_REDIS_ARGS": f"--bind 127.0.0.1 {node_ip} --protected-mode no"}
    subprocess.run(["bash", str(ROOT / "scripts/redis/start.sh"), str(port), str(state)], check=True, env=env)
    r = redis.Redis(host="127.0.0.1", port=port)

    # The tiny model on a PersistentVolume of the real node (hostPath), claimed by the policy.
    models = tiny_model_dir(tmp)
    ns = f"real-pods-{uuid.uuid4().hex[:6]}"
    pv = f"hermes-models-{ns}"
    kube.kubectl("create", "namespace", ns)
    kube.apply(json.dumps(model_volume(pv, ns, str(models))))

    repo, tag = hermes.rsplit(":", 1)
    values = tmp / "values.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "crds": {"enabled": False},  # owned by conftest's crd_release
                "operator": {
                    "enabled": True,
                    "image": {"repository": repo, "tag": tag, "pullPolicy": "Never"},
                    "watchNamespaces": [ns],
                    "extraArgs": ["--drift-interval=5"],
                },
            }
        )
    )
    op_ns = f"{ns}-system"
    kube.helm(
        "upgrade",
        "--install",
        RELEASE,
        str(ROOT / "charts/hermes-cache"),
        "-n",
        op_ns,
        "--create-namespace",
        "-f",
        str(values),
        "--wait",
        "--timeout",
        "5m",
    )
    doc = yaml.safe_load((ROOT / "examples/hermes-cpu.yaml").read_text())
    doc["metadata"]["namespace"] = ns
    doc["spec"]["engine"]["image"] = vllm
    doc["spec"]["model"]["storage"]["claimName"] = "hermes-models"
    doc["spec"]["semanticCache"]["redis"]["url"] = f"redis://{node_ip}:{port}/0"
    doc["spec"]["cpu"]["nodeSelector"] = {"hermes-cache.dev/node": "real"}
    kube.apply(json.dumps(doc), namespace=ns)
    s = Served(kube, ns, "", r, images, f"redis://{node_ip}:{port}/0")
    try:
        _wait_ready(s)
        with _port_forward(kube, ns, f"svc/{POLICY}", 8080) as url:
            s.url = url
            yield s
    finally:
        if os.environ.get("HERMES_KEEP_REAL_PODS") != "1":
            # The policy first, while its operator still runs to let it go (kopf's finalizer), then
            # the operator; the policy's pod frees the node's CPU for whatever test runs next.
            kube.kubectl("-n", ns, "delete", "hcp", "--all", "--timeout=120s", check=False)
            kube.helm("uninstall", RELEASE, "-n", op_ns, "--wait", check=False)
            kube.kubectl("delete", "namespace", ns, op_ns, "--wait=false", check=False)
            kube.kubectl("delete", "pv", pv, "--wait=false", check=False)
            subprocess.run(["bash", str(ROOT / "scripts/redis/stop.sh"), str(port), str(state)], check=False)


def _sidecar_python(served: Served, pod: dict[str, Any], code: str) -> str:
    """Run python in the pod's sidecar container (kubectl exec) and return what it printed."""
    name = pod["metadata"]["name"]
    return served.kube.kubectl(
        "-n", served.namespace, "exec", name, "-c", "sidecar", "--", "python3", "-c", code
    ).stdout


def _container_ids(pod: dict[str, Any]) -> dict[str, tuple[str, int]]:
    return {
        c["name"]: (c.get("containerID", ""), int(c.get("restartCount", 0)))
        for c in pod["status"]["containerStatuses"]
    }


def test_operator_runs_in_the_cluster_under_its_service_account(served: Served) -> None:
    ns = f"{served.namespace}-system"
    pods = served.kube.get_json("-n", ns, "pods", "-l", "app.kubernetes.io/component=operator")["items"]
    (op,) = pods
    assert op["spec"]["nodeName"] == NODE
    assert op["spec"]["serviceAccountName"] == f"{RELEASE}-hermes-cache"
    assert op["spec"]["containers"][0]["image"] == served.images["HERMES_IMAGE"]
    assert all(c["ready"] for c in op["status"]["containerStatuses"])


def test_the_policys_pod_runs_vllm_and_the_sidecar_as_rendered(served: Served) -> None:
    pod = served.pod()
    assert pod["spec"]["nodeName"] == NODE  # the real node: kwok fakes no process here
    containers = {c["name"]: c for c in pod["spec"]["containers"]}
    assert containers["vllm"]["image"] == served.images["VLLM_IMAGE"]
    assert containers["sidecar"]["image"] == served.images["HERMES_IMAGE"]  # the operator's own build
    assert containers["sidecar"]["securityContext"]["readOnlyRootFilesystem"] is True
    statuses = {c["name"]: c for c in pod["status"]["containerStatuses"]}
    assert statuses["vllm"]["ready"] and statuses["sidecar"]["ready"]
    # Processes really run: the sidecar as the image's non-root user, vLLM on the pod's loopback.
    uid = _sidecar_python(served, pod, "import os; print(os.getuid())")
    assert uid.strip() == "65532"
    health = _sidecar_python(
        served,
        pod,
        "import urllib.request as u; print(u.urlopen('http://127.0.0.1:8000/v1/models').read().decode())",
    )
    assert '"tiny-llama"' in health
    logs = served.kube.kubectl("-n", served.namespace, "logs", pod["metadata"]["name"], "-c", "vllm").stdout
    assert "KV cache size: 2,097,152 tokens" in logs  # the planner's figure, from vLLM itself
    assert served.hcp()["status"]["capacity"]["kvCacheTokensPerReplica"] == 2_097_152


def test_models_and_a_chat_answer_through_the_policys_service(served: Served) -> None:
    with urllib.request.urlopen(f"{served.url}/v1/models", timeout=30) as r:
        assert [m["id"] for m in json.loads(r.read())["data"]] == ["tiny-llama"]
    decision, answer = served.chat(f"What is a KV cache? ({uuid.uuid4().hex[:8]})")
    assert decision == "miss"
    assert answer["choices"][0]["message"]["role"] == "assistant"


def test_miss_then_exact_hit_then_semantic_hit_with_entries_in_redis(served: Served) -> None:
    topic = uuid.uuid4().hex[:6]
    first = f"How do I install Python 3.11 on Ubuntu for project {topic}?"
    assert served.chat(first)[0] == "miss"
    assert served.chat(first)[0] == "hit-exact"
    decision, _ = served.chat(f"How can I install Python 3.11 on Ubuntu for project {topic}?")
    assert decision == "hit-semantic"
    keys = [k.decode() for k in served.redis.scan_iter(match="hermes:*", count=1000)]
    assert any(f"{served.namespace}/{POLICY}" in k for k in keys), keys[:20]


def test_cache_version_change_starts_a_new_generation_without_restarting_the_pod(served: Served) -> None:
    question = f"What does the sidecar cache? ({uuid.uuid4().hex[:8]})"
    served.chat(question)
    assert served.chat(question)[0] == "hit-exact"
    before = served.pod()
    served.kube.kubectl(
        "-n",
        served.namespace,
        "patch",
        "hcp",
        POLICY,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"cacheVersion": f"v-{uuid.uuid4().hex[:6]}"}}),
    )
    deadline = time.monotonic() + 60
    decision = "hit-exact"
    while time.monotonic() < deadline and decision != "miss":
        time.sleep(1)
        decision = served.chat(question)[0]
    assert decision == "miss"
    after = served.pod()
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert _container_ids(after) == _container_ids(before)  # same containers, no restart
    assert served.condition("CacheGenerationApplied").get("status") == "True"


def test_killed_vllm_is_restarted_by_the_kubelet_and_the_policy_says_so_then_recovers(served: Served) -> None:
    pod = served.pod()
    cid, restarts = _container_ids(pod)["vllm"]
    pid = _host_pid(cid.removeprefix("containerd://"))
    os.kill(pid, signal.SIGKILL)  # from the host, as the OOM killer would: exit code 137
    deadline = time.monotonic() + 120
    seen: dict[str, Any] = {}
    while time.monotonic() < deadline:
        seen = served.condition("Ready")
        if seen.get("status") == "False" and "restart" in seen.get("message", ""):
            break
        time.sleep(1)
    assert seen.get("status") == "False", seen
    assert seen["reason"] in {"ContainerRestarted", "CrashLoopBackOff", "Starting"}, seen
    assert "exit code 137" in seen["message"], seen
    _wait_ready(served)
    after = served.pod()
    assert after["metadata"]["uid"] == pod["metadata"]["uid"]
    assert _container_ids(after)["vllm"][1] == restarts + 1
    assert served.chat(f"Are you back? ({uuid.uuid4().hex[:8]})")[0] == "miss"


def test_a_model_volume_without_the_model_is_named_in_the_policys_status(served: Served) -> None:
    """Last: it replaces the module's policy (the node's two cores hold one vLLM pod at a time)."""
    kube, ns = served.kube, served.namespace
    kube.kubectl("-n", ns, "delete", "hcp", POLICY, "--timeout=120s")
    kube.wait_for(
        lambda: not kube.get_json("-n", ns, "pods", "-l", f"app.kubernetes.io/instance={POLICY}")["items"],
        timeout=120,
        what=f"the pods of {POLICY} gone",
    )
    doc = yaml.safe_load((ROOT / "examples/hermes-cpu.yaml").read_text())
    doc["metadata"].update(name="hermes-cpu-nomodel", namespace=ns)
    spec = doc["spec"]
    spec["engine"]["image"] = served.images["VLLM_IMAGE"]
    spec["model"]["storage"]["path"] = "no-such-model"
    spec["semanticCache"]["redis"]["url"] = served.redis_url
    spec["cpu"]["nodeSelector"] = {"hermes-cache.dev/node": "real"}
    kube.apply(json.dumps(doc), namespace=ns)
    seen: dict[str, Any] = {}

    def says_why() -> bool:
        nonlocal seen
        hcp = kube.get_json("-n", ns, "hcp", "hermes-cpu-nomodel")
        seen = next((c for c in hcp.get("status", {}).get("conditions", []) if c["type"] == "Ready"), {})
        return seen.get("reason") in {"CrashLoopBackOff", "ContainerRestarted"}

    kube.wait_for(says_why, timeout=300, what="the policy's Ready condition to name the crash")
    assert seen["status"] == "False"
    assert "container vllm" in seen["message"] and "exit code 1" in seen["message"], seen
    # the end of vLLM's own log, quoted from the termination message: the path it could not load
    assert "no-such-model" in seen["message"], seen


def _host_pid(container_id: str) -> int:
    """The host PID of a container's main process, from the node's containerd."""
    out = run("bash", "-c", f'source "{ROOT}/scripts/node/lib.sh"; ctr_node task ls')
    for line in out.splitlines()[1:]:
        parts = line.split()
        if parts and parts[0] == container_id:
            return int(parts[1])
    raise AssertionError(f"container {container_id} has no task in the node's containerd:\n{out}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-v"]))
