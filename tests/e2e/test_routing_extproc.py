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
import sys
import threading
import time
import urllib.error
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


@contextlib.contextmanager
def _held_queue(endpoint: str, clients: int = 4) -> Iterator[None]:
    """Long generations sent straight to one pod (vLLM --max-num-seqs 1) by ``clients`` clients, each
    sending its next as soon as one ends: one runs and the rest wait, for as long as the block lasts.

    One generation takes a few seconds on an idle node and far longer on a busy one, so a fixed batch
    would drain at a time nobody controls. The tiny random model may emit its end-of-sequence token at
    any step, so ``ignore_eos`` (vLLM's sampling extension) makes each one really generate
    ``max_tokens``; the prompt is short so that prompt plus output stay inside the policy's maxModelLen."""
    stop = threading.Event()

    def client(i: int) -> None:
        n = 0
        while not stop.is_set():
            body = _body(f"Write a very long story number {i}-{n}.", system="Be verbose.", max_tokens=1200)
            try:
                _chat(endpoint, {**body, "ignore_eos": True})
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                # the load only keeps the pod busy: a pod on 0.25 CPU may drop one long request (a 502
                # through the port-forward); the next keeps the queue, which _wait_queue_seen checks
                stop.wait(1)
            n += 1

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    try:
        yield
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=600)


def _queue_held(picker: Picker, endpoint: str) -> bool:
    """Whether the EPP has both pods in its pool and a waiting request on ``endpoint``."""
    return picker.metric("inference_pool_ready_pods") == 2 and picker.queue_seen(endpoint) >= 1


def _wait_queue_seen(picker: Picker, endpoint: str) -> None:
    """Until the EPP itself holds a waiting queue for the held pod, with both pods in its pool.

    The EPP's own per-pod gauge is what counts, not the pod's counter: a pod busy on 0.25 CPU can
    miss a readiness probe, and when it comes back into the pool the EPP knows no metrics for it
    until its next scrape (every 250 ms here, --refresh-metrics-interval)."""
    deadline = time.monotonic() + 120
    while not _queue_held(picker, endpoint):
        assert time.monotonic() < deadline, (
            f"the EPP never saw a waiting request on {endpoint} with both pods Ready: "
            f"queue {picker.queue_seen(endpoint)}, ready pods {picker.metric('inference_pool_ready_pods')}"
        )
        time.sleep(0.25)


def _picks_under_load(picker: Picker, busy: str, bodies: list[tuple[dict[str, Any], str]]) -> list[str]:
    """The EPP's picks for ``bodies`` (body, tenant) made while it saw ``busy``'s queue throughout.

    A round during which the busy pod left the pool or its queue drained (as the EPP saw it) says
    nothing about spreading; it is made again, at most three times."""
    for _ in range(3):
        _wait_queue_seen(picker, busy)
        picks = [picker.pick(body, tenant=tenant) for body, tenant in bodies]
        if _queue_held(picker, busy):
            return picks
    raise AssertionError(f"the EPP's view of {busy}'s queue never held through a round of picks")


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
    # no shared prefix (shorter than one of the EPP's blocks): queue length decides
    bodies = [(_body(f"hi {i}", system="Be brief."), "team-a") for i in range(6)]
    with _held_queue(busy):
        picks = set(_picks_under_load(picker, busy, bodies))
    assert busy not in picks and len(picks) == 1, (busy, picks)


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
    body = _body("What are your opening hours?", system=system)
    bodies = [({**body, "cache_salt": "acme"}, "acme"), ({**body, "cache_salt": "globex"}, "globex")]
    with _held_queue(home):
        same, other = _picks_under_load(picker, home, bodies)
    assert same == home  # grouped: the prefix wins
    assert other != home  # same prompt, other tenant: no collision, the idle pod
