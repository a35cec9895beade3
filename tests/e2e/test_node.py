"""The real node of the local e2e cluster (scripts/node/up.sh, started by `make cluster-up`).

`hermes-node-0` is a real kubelet + containerd + kube-proxy on this machine next to kwok's fake GPU
nodes. These tests run real pods on it: two containers talking over the pod's loopback, `kubectl
logs/exec/port-forward`, a ClusterIP Service reached from the host through kube-proxy, and a pod
that calls the API server through the `kubernetes` Service exactly as an in-cluster client does
(ServiceAccount token, TLS verified against the mounted ca.crt). Images are built locally and loaded
with scripts/node/load-image.sh (nothing can be pulled).
"""

from __future__ import annotations

import json
import re
import subprocess
import textwrap
import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from conftest import REPO_ROOT, tool_path

if TYPE_CHECKING:
    from conftest import Kube

NODE_NAME = "hermes-node-0"
NODE_SCRIPTS = REPO_ROOT / "scripts" / "node"
# The web container answers HTTP; the client calls it over the pod's loopback and logs the answer.
WEB_CMD = 'echo "hello from $(hostname)" > /www/index.html && exec httpd -f -v -p 8080 -h /www'
CLIENT_CMD = (
    'while true; do echo "client got: $(wget -q -O - http://127.0.0.1:8080/index.html)"; sleep 1; done'
)


def _script(*args: str, timeout: float = 600) -> str:
    proc = subprocess.run(
        ["bash", *args], capture_output=True, text=True, timeout=timeout, check=False, cwd=REPO_ROOT
    )
    if proc.returncode != 0:
        raise AssertionError(f"`bash {' '.join(args)}` exited {proc.returncode}:\n{proc.stderr}")
    return proc.stdout.strip()


def _load_image(kind_args: list[str]) -> str:
    """Build (or reuse) a local image with the given script + args and load it into the node."""
    ref = _script(*kind_args).splitlines()[-1]
    _script(str(NODE_SCRIPTS / "load-image.sh"), ref)
    return ref


@pytest.fixture(scope="module")
def real_node(kube: Kube) -> dict[str, Any]:
    proc = kube.kubectl("get", "node", NODE_NAME, "-o", "json", check=False)
    if proc.returncode != 0:
        pytest.fail(
            f"node {NODE_NAME} is not in the cluster ({proc.stderr.strip()}); start it with `make cluster-up`"
            " (not with HERMES_E2E_REAL_NODE=0)",
            pytrace=False,
        )
    node: dict[str, Any] = json.loads(proc.stdout)
    return node


@pytest.fixture(scope="module")
def busybox_image(real_node: dict[str, Any]) -> str:
    return _load_image([str(NODE_SCRIPTS / "images.sh"), "busybox"])


@pytest.fixture(scope="module")
def python_image(real_node: dict[str, Any]) -> str:
    base = REPO_ROOT / "scripts" / "image" / "base.sh"
    if not base.exists():
        pytest.fail(f"{base} (the Debian base image with python3) is missing", pytrace=False)
    return _load_image([str(base), "hermes"])


def _wait_pod(
    kube: Kube, namespace: str, name: str, *, phase: str = "Ready", timeout: float = 120
) -> dict[str, Any]:
    """Wait until the pod is Ready (or reaches `phase`, e.g. Succeeded) and return it."""
    deadline = time.monotonic() + timeout
    pod: dict[str, Any] = {}
    while time.monotonic() < deadline:
        pod = kube.get_json("-n", namespace, "pod", name)
        status = pod.get("status", {})
        if phase == "Ready":
            conds = {c["type"]: c["status"] for c in status.get("conditions", [])}
            if conds.get("Ready") == "True":
                return pod
        elif status.get("phase") == phase:
            return pod
        if status.get("phase") == "Failed" and phase != "Failed":
            break
        time.sleep(1)
    events = kube.kubectl("-n", namespace, "get", "events", "--sort-by=.lastTimestamp", check=False).stdout
    status_text = json.dumps(pod.get("status"), indent=1)
    raise AssertionError(f"pod {namespace}/{name} not {phase} after {timeout:.0f}s: {status_text}\n{events}")


def _http_get(url: str, *, timeout: float = 30) -> str:
    """GET with retries (kube-proxy and the kubelet need a moment to pick up new objects)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                body: bytes = resp.read()
                return body.decode()
        except OSError as exc:
            last = exc
            time.sleep(1)
    raise AssertionError(f"GET {url} failed for {timeout:.0f}s: {last}")


@pytest.fixture(scope="module")
def web(kube: Kube, busybox_image: str) -> Iterator[dict[str, Any]]:
    """A two-container pod on the real node (web answers HTTP, client calls it over the pod's
    loopback and logs the answers) plus a ClusterIP Service in front of it."""
    namespace = f"e2e-node-{uuid.uuid4().hex[:6]}"
    kube.kubectl("create", "namespace", namespace)
    kube.wait_for(
        lambda: (
            kube.kubectl("-n", namespace, "get", "serviceaccount", "default", check=False).returncode == 0
        ),
        timeout=30,
        what=f"ServiceAccount default in {namespace}",
    )
    kube.apply(
        textwrap.dedent(
            f"""
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
              labels: {{app: web}}
            spec:
              nodeSelector: {{hermes-cache.dev/node: real}}
              terminationGracePeriodSeconds: 1
              containers:
              - name: web
                image: {busybox_image}
                imagePullPolicy: Never
                command: [sh, -c, {json.dumps(WEB_CMD)}]
                ports: [{{containerPort: 8080, name: http}}]
                readinessProbe:
                  httpGet: {{path: /index.html, port: 8080}}
                  periodSeconds: 1
              - name: client
                image: {busybox_image}
                imagePullPolicy: Never
                command: [sh, -c, {json.dumps(CLIENT_CMD)}]
            ---
            apiVersion: v1
            kind: Service
            metadata:
              name: web
            spec:
              type: ClusterIP
              selector: {{app: web}}
              ports: [{{port: 80, targetPort: http}}]
            """
        ),
        namespace=namespace,
    )
    pod = _wait_pod(kube, namespace, "web")
    try:
        yield {"namespace": namespace, "pod": pod}
    finally:
        kube.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_real_node_is_ready_and_not_kwoks(real_node: dict[str, Any]) -> None:
    meta, spec, status = real_node["metadata"], real_node["spec"], real_node["status"]
    assert "kwok.x-k8s.io/node" not in meta.get("annotations", {})
    assert meta["labels"]["hermes-cache.dev/node"] == "real"
    assert meta["labels"]["kubernetes.io/hostname"] == NODE_NAME
    assert not spec.get("taints"), spec.get("taints")
    ready = [c for c in status["conditions"] if c["type"] == "Ready"]
    assert ready and ready[0]["status"] == "True", ready
    info = status["nodeInfo"]
    assert info["kubeletVersion"].startswith("v1.36."), info
    assert info["containerRuntimeVersion"].startswith("containerd://"), info
    assert any(a["type"] == "InternalIP" for a in status["addresses"]), status["addresses"]


def test_two_containers_talk_over_loopback_and_logs_work(kube: Kube, web: dict[str, Any]) -> None:
    assert web["pod"]["spec"]["nodeName"] == NODE_NAME

    def client_got_answer() -> bool:
        logs = kube.kubectl("-n", web["namespace"], "logs", "web", "-c", "client", check=False).stdout
        return "client got: hello from web" in logs

    kube.wait_for(client_got_answer, timeout=30, what="the client container's log of an HTTP answer")


def test_exec(kube: Kube, web: dict[str, Any]) -> None:
    out = kube.kubectl(
        "-n", web["namespace"], "exec", "web", "-c", "web", "--", "cat", "/www/index.html"
    ).stdout
    assert out.strip() == "hello from web"


def test_port_forward(kube: Kube, web: dict[str, Any]) -> None:
    cmd = [tool_path("kubectl"), "--kubeconfig", str(kube.kubeconfig), "-n", web["namespace"],
           "port-forward", "pod/web", ":8080"]  # fmt: skip
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            match = re.search(r"Forwarding from 127\.0\.0\.1:(\d+)", line)
            assert match, f"unexpected port-forward output: {line!r}"
            assert _http_get(f"http://127.0.0.1:{match.group(1)}/index.html").strip() == "hello from web"
        finally:
            proc.terminate()


def test_pod_ip_reachable_from_host(web: dict[str, Any]) -> None:
    pod_ip = web["pod"]["status"]["podIP"]
    assert pod_ip.startswith("10.250."), pod_ip
    assert _http_get(f"http://{pod_ip}:8080/index.html").strip() == "hello from web"


def test_cluster_ip_service_from_host(kube: Kube, web: dict[str, Any]) -> None:
    svc = kube.get_json("-n", web["namespace"], "service", "web")
    cluster_ip = svc["spec"]["clusterIP"]
    assert cluster_ip.startswith("10.96."), cluster_ip
    assert _http_get(f"http://{cluster_ip}:80/index.html", timeout=60).strip() == "hello from web"


def test_cluster_ip_service_from_a_pod(kube: Kube, web: dict[str, Any], busybox_image: str) -> None:
    """Another pod on the node reaches the Service (kube-proxy's DNAT for pod traffic, across the
    bridge), and so does the web pod itself (hairpin)."""
    ns = web["namespace"]
    cluster_ip = kube.get_json("-n", ns, "service", "web")["spec"]["clusterIP"]
    # busybox-static's `wget -T` crashes (SIGSEGV); `timeout` bounds each try instead.
    url = f"http://{cluster_ip}/index.html"
    fetch = f"for i in $(seq 1 30); do timeout 3 wget -q -O - {url} && exit 0; sleep 1; done; exit 1"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "caller"},
        "spec": {
            "nodeSelector": {"hermes-cache.dev/node": "real"},
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "c",
                    "image": busybox_image,
                    "imagePullPolicy": "Never",
                    "command": ["sh", "-c", fetch],
                }
            ],
        },
    }
    kube.apply(json.dumps(pod), namespace=ns)
    _wait_pod(kube, ns, "caller", phase="Succeeded", timeout=90)
    assert kube.kubectl("-n", ns, "logs", "caller").stdout.strip() == "hello from web"
    hairpin = kube.kubectl("-n", ns, "exec", "web", "-c", "client", "--", "sh", "-c", fetch).stdout
    assert hairpin.strip() == "hello from web"


IN_CLUSTER_CLIENT = r"""
import json, os, ssl, urllib.request
sa = "/var/run/secrets/kubernetes.io/serviceaccount"
host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"]
ns = open(sa + "/namespace").read()
ctx = ssl.create_default_context(cafile=sa + "/ca.crt")
req = urllib.request.Request(
    f"https://{host}:{port}/api/v1/namespaces/{ns}/configmaps/kube-root-ca.crt",
    headers={"Authorization": "Bearer " + open(sa + "/token").read()},
)
with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
    body = json.load(resp)
print(json.dumps({"host": host, "port": port, "status": resp.status, "name": body["metadata"]["name"]}))
"""


def test_pod_reaches_api_server_through_kubernetes_service(
    kube: Kube, namespace: str, python_image: str
) -> None:
    kube.apply(
        textwrap.dedent(
            """
            apiVersion: v1
            kind: ServiceAccount
            metadata: {name: reader}
            ---
            apiVersion: rbac.authorization.k8s.io/v1
            kind: Role
            metadata: {name: read-configmaps}
            rules:
            - {apiGroups: [""], resources: [configmaps], verbs: [get]}
            ---
            apiVersion: rbac.authorization.k8s.io/v1
            kind: RoleBinding
            metadata: {name: reader}
            roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: read-configmaps}
            subjects:
            - {kind: ServiceAccount, name: reader}
            """
        ),
        namespace=namespace,
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "in-cluster"},
        "spec": {
            "serviceAccountName": "reader",
            "nodeSelector": {"hermes-cache.dev/node": "real"},
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "client",
                    "image": python_image,
                    "imagePullPolicy": "Never",
                    "command": ["python3", "-c", IN_CLUSTER_CLIENT],
                }
            ],
        },
    }
    kube.apply(json.dumps(pod), namespace=namespace)
    try:
        _wait_pod(kube, namespace, "in-cluster", phase="Succeeded", timeout=120)
    finally:
        logs = kube.kubectl("-n", namespace, "logs", "in-cluster", check=False)
    result = json.loads(logs.stdout.strip().splitlines()[-1])
    assert result == {"host": "10.96.0.1", "port": "443", "status": 200, "name": "kube-root-ca.crt"}, logs
