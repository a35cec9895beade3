"""A new model under the same served name never gets the old model's answers (issue 16, part 3).

The CPU example policy on the local cluster's real node, set up exactly as tests/e2e/test_real_pods.py
does it (its module fixture ``served``: images, the in-cluster operator, Redis on the node's address,
the tiny model on a PersistentVolume). Then ``spec.model.name`` changes while ``servedName``, the model
folder and ``spec.cacheVersion`` stay: clients see the same ``model`` in their requests, vLLM loads the
same folder, and yet the next request is a miss, because the pod template carries the new producer
fingerprint (``HERMES_PRODUCER``) and the sidecar partitions entries and ``cache_salt`` by it. The
ConfigMap is left alone: the fingerprint is per pod, so old and new pods each keep their own partition
during the rolling update.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import test_real_pods as real

from hermes_operator.fingerprint import producer_fingerprint
from hermes_operator.render import PRODUCER_ANNOTATION
from hermes_operator.spec import parse_policy
from hermes_sidecar.contract import PRODUCER_ENV

served = real.served  # the module's policy, as test_real_pods.py sets it up (one per module)
ROLLOUT_TIMEOUT = 900  # the old pod drains, the new one loads vLLM on two shared cores


def _pods(s: real.Served) -> list[dict[str, Any]]:
    items = s.kube.get_json("-n", s.namespace, "pods", "-l", f"app.kubernetes.io/instance={real.POLICY}")[
        "items"
    ]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def _ready(pod: dict[str, Any]) -> bool:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    return bool(statuses) and all(c.get("ready") for c in statuses)


def _configmap(s: real.Served) -> dict[str, Any]:
    data: dict[str, Any] = s.kube.get_json("-n", s.namespace, "configmap", f"{real.POLICY}-sidecar")["data"]
    return data


def _until_hit(s: real.Served, question: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while s.chat(question)[0] != "hit-exact":
        assert time.monotonic() < deadline, f"{question!r} was never served from the cache"
        time.sleep(0.5)


def test_the_pod_carries_the_producer_fingerprint_of_its_spec(served: real.Served) -> None:
    pod = served.pod()
    want = producer_fingerprint(parse_policy(served.hcp()).spec)
    assert pod["metadata"]["annotations"][PRODUCER_ANNOTATION] == want
    sidecar = next(c for c in pod["spec"]["containers"] if c["name"] == "sidecar")
    assert {"name": PRODUCER_ENV, "value": want} in sidecar["env"]
    assert want not in json.dumps(_configmap(served))


def test_a_new_model_under_the_same_served_name_is_a_miss_without_a_cache_version_change(
    served: real.Served,
) -> None:
    question = f"Which ports does the ingest service expose? ({uuid.uuid4().hex[:8]})"
    assert served.chat(question)[0] == "miss"
    _until_hit(served, question)
    old_pod = served.pod()
    old_fp = old_pod["metadata"]["annotations"][PRODUCER_ANNOTATION]
    config_before = _configmap(served)
    hcp = served.hcp()
    version, served_name = hcp["spec"]["cacheVersion"], hcp["spec"]["model"].get("servedName") or "tiny-llama"
    assert served_name == "tiny-llama"

    # Another model name (one the capacity planner knows: the tiny weights' other preset name); the
    # same served name, folder (model.storage.path) and cacheVersion.
    patch = {"spec": {"model": {"name": "hermes-tiny-llama", "servedName": served_name}}}
    served.kube.kubectl(
        "-n", served.namespace, "patch", "hcp", real.POLICY, "--type=merge", "-p", json.dumps(patch)
    )
    new_spec = parse_policy(served.hcp()).spec
    new_fp = producer_fingerprint(new_spec)
    assert new_fp != old_fp

    deadline = time.monotonic() + ROLLOUT_TIMEOUT
    while True:
        pods = _pods(served)
        fresh = [p for p in pods if p["metadata"]["annotations"].get(PRODUCER_ANNOTATION) == new_fp]
        if len(pods) == 1 and fresh and _ready(fresh[0]):
            break
        assert time.monotonic() < deadline, [
            (p["metadata"]["name"], p["metadata"]["annotations"].get(PRODUCER_ANNOTATION), _ready(p))
            for p in pods
        ]
        time.sleep(3)
    real._wait_ready(served)
    new_pod = fresh[0]
    assert new_pod["metadata"]["uid"] != old_pod["metadata"]["uid"]
    vllm_args = [
        next(c for c in p["spec"]["containers"] if c["name"] == "vllm")["args"] for p in (old_pod, new_pod)
    ]
    assert vllm_args[0] == vllm_args[1]  # the same folder and served name: vLLM itself is unchanged
    assert _configmap(served) == config_before  # the fingerprint is per pod, not in the shared config
    after = served.hcp()
    assert after["spec"]["cacheVersion"] == version
    assert after["status"]["cacheVersion"] == version

    # The Service's pod changed: a new port-forward, the same question, the same `model` field.
    with real._port_forward(served.kube, served.namespace, f"svc/{real.POLICY}", 8080) as url:
        served.url = url
        decision, answer = served.chat(question)
        assert decision == "miss"
        assert answer["model"] == served_name
        _until_hit(served, question)  # the new model's own answer is cached in its own partition
    scope = f"{served.namespace}/{real.POLICY}"
    partitions = {
        served.redis.hget(k, "partition")
        for k in served.redis.scan_iter(match=f"hermes:{scope}:g:*:entry:*", count=1000)
    }
    assert len(partitions - {None}) == 2  # the old model's entry and the new model's, side by side
