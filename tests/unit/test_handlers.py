"""reconcile() called as a plain function, its Kubernetes and Redis I/O behind the operator's own interfaces.

These check the operator's decisions (what it applies, writes, refuses and publishes); the same code
path against a real API server is tests/e2e/test_operator.py.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from _policies import policy_doc

from hermes_operator.env import Env
from hermes_operator.generations import GenerationStoreError, generation_key
from hermes_operator.kube import KubeError, api_errors
from hermes_operator.metrics import OperatorMetrics
from hermes_operator.reconcile import owner_policy, reconcile, reconcile_owner
from hermes_operator.wiring import Debouncer, PolicyLocks, register


class RecordingKube:
    """Keeps applied objects by (kind, namespace, name); records status patches and events."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.applies: list[dict[str, Any]] = []
        self.deletes: list[tuple[str, str, str]] = []
        self.status_patches: list[dict[str, Any]] = []
        self.events: list[tuple[str, str, str]] = []
        self.secrets: dict[tuple[str, str], dict[str, str]] = {}
        self.pods: dict[str, list[dict[str, Any]]] = {}

    def secret_value(self, namespace: str, name: str, key: str) -> str:
        data = self.secrets.get((namespace, name))
        if data is None:
            raise LookupError(f"Secret {namespace}/{name} not found")
        if key not in data:
            raise LookupError(f"Secret {namespace}/{name} has no key {key!r}")
        return data[key]

    def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        key = (manifest["kind"], manifest["metadata"]["namespace"], manifest["metadata"]["name"])
        self.applies.append(copy.deepcopy(manifest))
        current = self.objects.get(key, {})
        merged = {**copy.deepcopy(manifest), "status": current.get("status", {})}
        merged["metadata"]["generation"] = current.get("metadata", {}).get("generation", 0) + (
            1 if current.get("spec") != manifest.get("spec") else 0
        )
        self.objects[key] = merged
        return merged

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.objects.get((kind, namespace, name)))

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        self.deletes.append((kind, namespace, name))
        return self.objects.pop((kind, namespace, name), None) is not None

    def patch_policy_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.status_patches.append(copy.deepcopy(status))
        policy = self.objects.get(("HermesCachePolicy", namespace, name))
        if policy is not None:  # a merge patch at the top level of status, as the API server does it
            merged = {**policy.get("status", {}), **copy.deepcopy(status)}
            policy["status"] = {k: v for k, v in merged.items() if v is not None}

    def event(self, namespace: str, name: str, uid: str, type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))

    def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return copy.deepcopy(self.pods.get(namespace, []))

    def set_deployment_status(self, namespace: str, name: str, ready: int) -> None:
        dep = self.objects[("Deployment", namespace, name)]
        dep["status"] = {
            "replicas": ready,
            "readyReplicas": ready,
            "updatedReplicas": ready,
            "observedGeneration": dep["metadata"]["generation"],
        }


class RecordingStore:
    """A GenerationStore keeping keys and published messages in dicts, optionally failing."""

    def __init__(self) -> None:
        self.keys: dict[str, str] = {}
        self.published: list[tuple[str, str]] = []
        self.stats: dict[str, dict[str, int]] = {}
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise GenerationStoreError("redis redis://r:6379: connection refused")

    def read_generation(self, namespace: str, policy: str) -> str | None:
        self._check()
        return self.keys.get(generation_key(namespace, policy))

    def write_generation(self, namespace: str, policy: str, record: str) -> None:
        self._check()
        self.keys[generation_key(namespace, policy)] = record
        self.published.append((generation_key(namespace, policy), record))

    def read_stats(self, namespace: str, policy: str, version: str) -> dict[str, int]:
        self._check()
        return self.stats.get(version, {})


class Clock:
    def __init__(self) -> None:
        self.t = 0

    def __call__(self) -> str:
        self.t += 1
        return f"2026-01-01T00:00:{self.t:02d}Z"


@pytest.fixture
def kube() -> RecordingKube:
    return RecordingKube()


@pytest.fixture
def store() -> RecordingStore:
    return RecordingStore()


@pytest.fixture
def env(kube: RecordingKube, store: RecordingStore) -> Env:
    return Env(kube=kube, stores=lambda url: store, metrics=OperatorMetrics(), now=Clock())


def cr(generation: int = 1, status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    doc = policy_doc(**spec)
    doc["metadata"].update(uid="uid-1", generation=generation)
    if status is not None:
        doc["status"] = status
    return doc


def conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


REDIS = {"semanticCache": {"redis": {"url": "redis://r:6379"}}}


def test_create_applies_children_and_reports_capacity(env: Env, kube: RecordingKube) -> None:
    status = reconcile(cr(), env)
    assert sorted(k[0] for k in kube.objects) == ["ConfigMap", "Deployment", "PodDisruptionBudget", "Service"]
    conds = conditions(status)
    assert conds["CapacityOK"]["status"] == "True"
    assert conds["Ready"]["status"] == "False" and conds["Ready"]["reason"] == "ReplicasNotReady"
    assert conds["Progressing"]["status"] == "True"
    assert all(c["observedGeneration"] == 1 for c in conds.values())
    assert status["capacity"]["kvBytesPerToken"] == 131_072
    assert status["selector"] == "app.kubernetes.io/name=hermes-cache,app.kubernetes.io/instance=hermes-8b"
    assert kube.status_patches == [status]


def test_reconciling_an_unchanged_policy_writes_nothing(env: Env, kube: RecordingKube) -> None:
    status = reconcile(cr(**REDIS), env)
    kube.status_patches.clear()
    kube.events.clear()
    again = reconcile(cr(status=status, **REDIS), env)
    assert again == status
    assert kube.status_patches == [] and kube.events == []


def test_ready_when_replicas_ready_and_transition_time_kept_for_unchanged_conditions(
    env: Env, kube: RecordingKube
) -> None:
    first = reconcile(cr(replicas=2), env)
    kube.set_deployment_status("team-a", "hermes-8b", ready=2)
    second = reconcile(cr(replicas=2, status=first), env)
    c1, c2 = conditions(first), conditions(second)
    assert c2["Ready"]["status"] == "True" and second["readyReplicas"] == 2
    assert c2["Ready"]["lastTransitionTime"] != c1["Ready"]["lastTransitionTime"]
    assert c2["CapacityOK"]["lastTransitionTime"] == c1["CapacityOK"]["lastTransitionTime"]
    assert c2["Progressing"]["status"] == "False"


def test_policy_that_cannot_fit_gets_capacity_false_an_event_and_no_deployment(
    env: Env, kube: RecordingKube
) -> None:
    big = {
        "model": {"name": "NousResearch/Hermes-3-Llama-3.1-70B"},
        "engine": {"tensorParallelSize": 1, "gpuMemoryUtilization": 0.85, "maxModelLen": 128000},
    }
    status = reconcile(cr(**big), env)
    assert kube.objects == {}
    cap = conditions(status)["CapacityOK"]
    assert cap["status"] == "False" and cap["reason"] == "InsufficientMemory"
    assert "needs 173.10 GiB per GPU" in cap["message"] and "has 68.00 GiB" in cap["message"]
    assert [e[:2] for e in kube.events] == [("Warning", "InsufficientMemory")]
    kube.events.clear()
    reconcile(cr(status=status, **big), env)
    assert kube.events == []  # one Event per refusal, not one per timer tick


def test_existing_deployment_is_left_alone_when_the_policy_stops_fitting(
    env: Env, kube: RecordingKube
) -> None:
    status = reconcile(cr(), env)
    before = copy.deepcopy(kube.objects)
    kube.applies.clear()
    reconcile(
        cr(generation=2, status=status, engine={"maxModelLen": 131072, "gpuMemoryUtilization": 0.2}), env
    )
    assert kube.applies == [] and kube.deletes == []
    assert kube.objects == before


def test_cache_version_change_publishes_a_generation_and_leaves_the_pod_template(
    env: Env, kube: RecordingKube, store: RecordingStore
) -> None:
    first = reconcile(cr(cacheVersion="v1", **REDIS), env)
    template_v1 = json.dumps(kube.objects[("Deployment", "team-a", "hermes-8b")]["spec"]["template"])
    dep_gen = kube.objects[("Deployment", "team-a", "hermes-8b")]["metadata"]["generation"]
    second = reconcile(cr(generation=2, status=first, cacheVersion="v2", **REDIS), env)
    dep = kube.objects[("Deployment", "team-a", "hermes-8b")]
    assert json.dumps(dep["spec"]["template"]) == template_v1
    assert dep["metadata"]["generation"] == dep_gen
    key = "hermes:team-a/hermes-8b:generation"
    record = json.loads(store.keys[key])
    assert record == {"version": "v2", "uid": "uid-1", "switchedAt": second["cacheVersionSwitchedAt"]}
    assert [k for k, _ in store.published] == [key, key]
    assert json.loads(store.published[-1][1]) == record
    assert second["cacheVersion"] == "v2" and first["cacheVersion"] == "v1"
    assert conditions(second)["CacheGenerationApplied"]["status"] == "True"
    assert env.metrics.generation_switches.labels("team-a", "hermes-8b")._value.get() == 1
    assert ("Normal", "CacheGenerationSwitched") in [e[:2] for e in kube.events]


SECRET_REDIS = {
    "semanticCache": {"redis": {"url": "redis://r:6379/0", "passwordSecretRef": {"name": "redis-auth"}}}
}


def test_the_operator_connects_with_the_password_from_the_secret(
    kube: RecordingKube, store: RecordingStore
) -> None:
    urls: list[str] = []

    def stores(url: str) -> RecordingStore:
        urls.append(url)
        return store

    env = Env(kube=kube, stores=stores, metrics=OperatorMetrics(), now=Clock())
    kube.secrets[("team-a", "redis-auth")] = {"password": "s3cr:t"}
    status = reconcile(cr(cacheVersion="v1", **SECRET_REDIS), env)
    assert urls == ["redis://:s3cr%3At@r:6379/0"]
    assert conditions(status)["CacheGenerationApplied"]["reason"] == "GenerationPublished"
    assert json.loads(store.keys["hermes:team-a/hermes-8b:generation"])["version"] == "v1"
    seen = json.dumps([status, kube.events, kube.status_patches])
    assert "s3cr" not in seen


def test_a_missing_password_secret_is_named_and_nothing_is_published(
    env: Env, kube: RecordingKube, store: RecordingStore
) -> None:
    status = reconcile(cr(cacheVersion="v1", **SECRET_REDIS), env)
    gen = conditions(status)["CacheGenerationApplied"]
    assert (gen["status"], gen["reason"]) == ("False", "RedisPasswordUnavailable")
    assert "Secret team-a/redis-auth not found" in gen["message"]
    assert "spec.semanticCache.redis.passwordSecretRef" in gen["message"]
    assert store.published == [] and status["cacheVersion"] == ""
    assert ("Warning", "RedisPasswordUnavailable") in [e[:2] for e in kube.events]
    # the next pass finds the Secret and publishes
    kube.secrets[("team-a", "redis-auth")] = {"password": "pw"}
    status = reconcile(cr(cacheVersion="v1", status=status, **SECRET_REDIS), env)
    assert conditions(status)["CacheGenerationApplied"]["status"] == "True"
    assert status["cacheVersion"] == "v1" and len(store.published) == 1


def test_redis_down_keeps_the_old_generation_and_says_why(
    env: Env, kube: RecordingKube, store: RecordingStore
) -> None:
    first = reconcile(cr(cacheVersion="v1", **REDIS), env)
    store.down = True
    second = reconcile(cr(generation=2, status=first, cacheVersion="v2", **REDIS), env)
    cond = conditions(second)["CacheGenerationApplied"]
    assert cond["status"] == "False" and cond["reason"] == "RedisUnavailable"
    assert "connection refused" in cond["message"]
    assert second["cacheVersion"] == "v1"
    assert ("Warning", "RedisUnavailable") in [e[:2] for e in kube.events]
    store.down = False
    third = reconcile(cr(generation=2, status=second, cacheVersion="v2", **REDIS), env)
    assert third["cacheVersion"] == "v2"


def test_timer_reads_generation_stats_into_status(env: Env, store: RecordingStore) -> None:
    first = reconcile(cr(cacheVersion="v3", **REDIS), env)
    store.stats["v3"] = {
        "hit_exact": 30,
        "hit_semantic": 10,
        "miss": 60,
        "bypass": 5,
        "error": 1,
        "entries": 70,
    }
    status = reconcile(cr(status=first, cacheVersion="v3", **REDIS), env, read_stats=True)
    assert status["semanticCache"] == {"hitRate": "0.400", "requests": 106, "entries": 70}
    # a change-triggered reconcile keeps the last stats instead of dropping them
    again = reconcile(cr(status=status, cacheVersion="v3", **REDIS), env)
    assert again["semanticCache"] == status["semanticCache"]


def test_timer_restores_a_generation_record_redis_lost(env: Env, store: RecordingStore) -> None:
    first = reconcile(cr(cacheVersion="v3", **REDIS), env)
    store.keys.clear()
    reconcile(cr(status=first, cacheVersion="v3", **REDIS), env, read_stats=True)
    record = json.loads(store.keys["hermes:team-a/hermes-8b:generation"])
    assert record["version"] == "v3" and record["switchedAt"] == first["cacheVersionSwitchedAt"]


def test_without_redis_the_generation_is_recorded_but_not_claimed_applied(env: Env) -> None:
    status = reconcile(cr(cacheVersion="v7"), env)
    cond = conditions(status)["CacheGenerationApplied"]
    assert status["cacheVersion"] == "v7"
    assert cond["status"] == "False" and cond["reason"] == "PodLocalCache"
    off = reconcile(cr(cacheVersion="v7", semanticCache={"enabled": False}), env)
    assert conditions(off)["CacheGenerationApplied"]["reason"] == "SemanticCacheDisabled"


def test_turning_autoscaling_off_removes_the_hpa(env: Env, kube: RecordingKube) -> None:
    status = reconcile(cr(autoscaling={"enabled": True, "maxReplicas": 3}), env)
    assert ("HorizontalPodAutoscaler", "team-a", "hermes-8b") in kube.objects
    reconcile(cr(generation=2, status=status), env)
    assert ("HorizontalPodAutoscaler", "team-a", "hermes-8b") not in kube.objects


def test_invalid_spec_is_refused_with_an_event_and_nothing_applied(env: Env, kube: RecordingKube) -> None:
    status = reconcile(cr(engine={"extraArgs": ["--port=9000"]}), env)
    ready = conditions(status)["Ready"]
    assert ready["status"] == "False" and ready["reason"] == "InvalidSpec"
    assert "spec.engine.extraArgs" in ready["message"] and "--port=9000" in ready["message"]
    assert kube.objects == {}
    assert [e[:2] for e in kube.events] == [("Warning", "InvalidSpec")]


def test_scaled_to_zero_is_not_ready_and_not_progressing(env: Env) -> None:
    conds = conditions(reconcile(cr(replicas=0), env))
    assert conds["Ready"]["reason"] == "ScaledToZero" and conds["Progressing"]["status"] == "False"


def test_apply_failure_is_reported(env: Env, kube: RecordingKube) -> None:
    def broken(manifest: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("admission webhook denied the request")

    kube.apply = broken  # type: ignore[method-assign]
    ready = conditions(reconcile(cr(), env))["Ready"]
    assert ready["reason"] == "ApplyFailed" and "admission webhook" in ready["message"]
    assert ("Warning", "ApplyFailed") in [e[:2] for e in kube.events]


def test_metrics_count_policies_by_condition_and_gpus(env: Env) -> None:
    reconcile(cr(replicas=3, engine={"tensorParallelSize": 2}), env)
    big = {"model": {"name": "NousResearch/Hermes-3-Llama-3.1-70B"}, "engine": {"maxModelLen": 128000}}
    doc = cr(**big)
    doc["metadata"]["name"] = "too-big"
    reconcile(doc, env)
    m = env.metrics
    assert m.gpus_requested.labels("team-a", "hermes-8b")._value.get() == 6
    assert m.gpus_requested.labels("team-a", "too-big")._value.get() == 0
    assert m.policies.labels("CapacityOK", "True")._value.get() == 1
    assert m.policies.labels("CapacityOK", "False")._value.get() == 1
    m.forget_policy("team-a", "too-big")
    assert m.policies.labels("CapacityOK", "False")._value.get() == 0


def test_generation_switch_counter_is_exported_at_zero_before_the_first_switch(env: Env) -> None:
    """Prometheus' increase() needs a sample before the first switch, or that switch never shows."""
    registry = env.metrics.registry
    labels = {"namespace": "team-a", "policy": "hermes-8b"}
    name = "hermes_operator_generation_switches_total"
    assert registry.get_sample_value(name, labels) is None
    first = reconcile(cr(cacheVersion="v1", **REDIS), env)
    assert registry.get_sample_value(name, labels) == 0.0  # publishing the first version is no switch
    reconcile(cr(generation=2, status=first, cacheVersion="v2", **REDIS), env)
    assert registry.get_sample_value(name, labels) == 1.0
    env.metrics.forget_policy("team-a", "hermes-8b")
    assert registry.get_sample_value(name, labels) is None


def test_a_policy_being_deleted_is_left_to_the_garbage_collector(env: Env, kube: RecordingKube) -> None:
    doc = cr()
    doc["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert reconcile(doc, env) == {}
    assert kube.applies == [] and kube.status_patches == [] and kube.events == []


def test_a_refused_event_does_not_stop_the_reconcile(env: Env, kube: RecordingKube) -> None:
    def refuse(*args: str) -> None:
        raise RuntimeError("namespace is being terminated")

    kube.event = refuse  # type: ignore[method-assign]
    status = reconcile(cr(engine={"extraArgs": ["--port=1"]}), env)
    assert conditions(status)["Ready"]["reason"] == "InvalidSpec"
    assert kube.status_patches == [status]


def test_apply_failure_message_is_the_api_servers_message(env: Env, kube: RecordingKube) -> None:
    from kubernetes.client import ApiException

    def broken(manifest: dict[str, Any]) -> dict[str, Any]:
        exc = ApiException(status=403, reason="Forbidden")  # str(): "(403)\nReason: Forbidden\n..."
        exc.body = '{"kind":"Status","message":"deployments.apps \\"x\\" is forbidden: quota exceeded"}'
        with api_errors():  # as KubeClient answers: the client's exception becomes a KubeError
            raise exc

    kube.apply = broken  # type: ignore[method-assign]
    ready = conditions(reconcile(cr(), env))["Ready"]
    assert (
        ready["message"]
        == 'applying the rendered objects failed: deployments.apps "x" is forbidden: quota exceeded'
    )


def test_the_kube_layer_keeps_the_api_servers_message_and_status() -> None:
    from kubernetes.client import ApiException

    for body, message in (('{"message": "namespace is terminating"}', "namespace is terminating"),
                          ("not json", "not json")):  # fmt: skip
        exc = ApiException(status=409, reason="Conflict")
        exc.body = body
        with pytest.raises(KubeError) as err, api_errors():
            raise exc
        assert (str(err.value), err.value.status) == (message, 409)


def _stored_policy(kube: RecordingKube, **spec: Any) -> dict[str, Any]:
    """The policy as the API server holds it: what reconcile_owner reads afresh."""
    doc = cr(**spec)
    kube.objects[("HermesCachePolicy", "team-a", "hermes-8b")] = doc
    return doc


def test_pods_turning_ready_reach_the_policy_status_through_its_deployment(
    env: Env, kube: RecordingKube
) -> None:
    reconcile(_stored_policy(kube, replicas=2), env)
    deployment = kube.objects[("Deployment", "team-a", "hermes-8b")]
    kube.set_deployment_status("team-a", "hermes-8b", ready=2)

    owner = owner_policy(deployment)
    assert owner == ("team-a", "hermes-8b", "uid-1")
    assert reconcile_owner(*owner, env)
    policy = kube.objects[("HermesCachePolicy", "team-a", "hermes-8b")]
    assert conditions(policy["status"])["Ready"]["status"] == "True"
    assert policy["status"]["readyReplicas"] == 2

    # Further Deployment events with nothing new (a resync, our own no-op apply) write nothing.
    patches = len(kube.status_patches)
    assert reconcile_owner(*owner, env)
    assert len(kube.status_patches) == patches


def test_a_deleted_deployment_is_applied_again_from_its_policy(env: Env, kube: RecordingKube) -> None:
    reconcile(_stored_policy(kube), env)
    deployment = kube.objects.pop(("Deployment", "team-a", "hermes-8b"))
    owner = owner_policy(deployment)
    assert owner is not None and reconcile_owner(*owner, env)
    assert kube.objects[("Deployment", "team-a", "hermes-8b")]["spec"] == deployment["spec"]
    policy = kube.objects[("HermesCachePolicy", "team-a", "hermes-8b")]
    assert conditions(policy["status"])["Ready"]["status"] == "False"


def test_deployment_events_of_a_deleted_or_replaced_policy_change_nothing(
    env: Env, kube: RecordingKube
) -> None:
    reconcile(_stored_policy(kube), env)
    deployment = kube.objects[("Deployment", "team-a", "hermes-8b")]
    applies = len(kube.applies)
    # recreated under the same name: the old Deployment's owner reference names the old uid
    kube.objects[("HermesCachePolicy", "team-a", "hermes-8b")]["metadata"]["uid"] = "uid-2"
    assert not reconcile_owner("team-a", "hermes-8b", "uid-1", env)
    del kube.objects[("HermesCachePolicy", "team-a", "hermes-8b")]
    assert not reconcile_owner("team-a", "hermes-8b", "uid-1", env)
    assert len(kube.applies) == applies
    assert owner_policy(deployment) == ("team-a", "hermes-8b", "uid-1")


def test_deployments_not_controlled_by_a_policy_are_not_ours() -> None:
    foreign = {"metadata": {"namespace": "x", "name": "web", "ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "u"},
    ]}}  # fmt: skip
    assert owner_policy(foreign) is None
    assert owner_policy({"metadata": {"namespace": "x", "name": "bare"}}) is None


async def test_a_burst_of_deployment_changes_is_one_reconcile() -> None:
    calls: list[tuple[str, str, str]] = []
    debouncer = Debouncer(calls.append, delay=0)
    for _ in range(10):
        debouncer.trigger(("team-a", "a", "uid-a"))
    debouncer.trigger(("team-a", "b", "uid-b"))
    await debouncer.idle()
    assert sorted(calls) == [("team-a", "a", "uid-a"), ("team-a", "b", "uid-b")]


async def test_a_change_during_a_reconcile_gets_one_more_pass() -> None:
    import asyncio

    key = ("team-a", "a", "uid-a")
    calls: list[tuple[str, str, str]] = []
    loop = asyncio.get_running_loop()
    debouncer: Debouncer

    def action(k: tuple[str, str, str]) -> None:
        if not calls:  # the Deployment changes again while the first reconcile is running
            loop.call_soon_threadsafe(debouncer.trigger, k)
            loop.call_soon_threadsafe(debouncer.trigger, k)
        calls.append(k)

    debouncer = Debouncer(action, delay=0)
    debouncer.trigger(key)
    await debouncer.idle()
    assert calls == [key, key]


async def test_a_failing_reconcile_does_not_stop_later_ones() -> None:
    calls: list[str] = []

    def action(k: tuple[str, str, str]) -> None:
        calls.append(k[1])
        if k[1] == "bad":
            raise RuntimeError("API server unreachable")

    debouncer = Debouncer(action, delay=0)
    debouncer.trigger(("team-a", "bad", "u"))
    await debouncer.idle()
    debouncer.trigger(("team-a", "bad", "u"))
    await debouncer.idle()
    assert calls == ["bad", "bad"]


def test_a_deleted_policy_leaves_no_lock_behind() -> None:
    locks = PolicyLocks()
    lock = locks(("team-a", "a"))
    assert locks(("team-a", "a")) is lock and len(locks) == 1
    locks.forget(("team-a", "a"))
    locks.forget(("team-a", "never-seen"))
    assert len(locks) == 0


async def test_every_reconcile_path_runs_on_one_pool_of_workers_threads(
    env: Env, kube: RecordingKube
) -> None:
    import threading

    import kopf

    handlers = register(env, kopf.OperatorRegistry(), drift_interval=3600, deployment_debounce=0, workers=2)
    settings = kopf.OperatorSettings()
    await handlers.start(settings=settings)
    pool = settings.execution.executor  # kopf runs its synchronous handlers (on_change, track) here
    assert pool is handlers.executor and settings.execution.max_workers == 2

    reconcile(_stored_policy(kube), env)
    threads: list[str] = []
    get = kube.get

    def recording_get(*args: Any) -> dict[str, Any] | None:
        threads.append(threading.current_thread().name)
        return get(*args)

    kube.get = recording_get  # type: ignore[method-assign]
    deployment = kube.objects[("Deployment", "team-a", "hermes-8b")]
    await handlers.child_deployment(event={"type": "MODIFIED"}, body=deployment)
    await handlers.debouncer.idle()
    await handlers.stop()
    assert threads and all(name.startswith("hermes-reconcile") for name in threads)
