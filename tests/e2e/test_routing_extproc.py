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

import json
import re
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the rig lives in bench/extproc.py
from bench.extproc import Picker, routed_pool

if TYPE_CHECKING:
    from conftest import Kube

# ~2.6 KB: 20 blocks of the EPP's 128 characters (32-token blocks x 4 characters per token).
SYSTEM = " ".join(
    f"Rule {i}: answer as the support desk of Hermes Cache, politely and briefly." for i in range(34)
)


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


@pytest.fixture(scope="module")
def picker(
    kube: Kube, crd_release: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Picker]:
    """The rig (bench/extproc.py, shared with the routing benchmark): both pods in the EPP's pool."""
    with routed_pool(kube, tmp_path_factory.mktemp("routing-extproc")) as p:
        yield p


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
