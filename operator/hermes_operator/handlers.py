"""One level-based reconcile, and the thin kopf handlers that call it.

:func:`reconcile` reads nothing but the policy object it is given, the Deployment it owns and (for a
generation switch or the stats) the policy's Redis; it computes everything from the current spec,
so create, update, resume, a change to a child Deployment and the drift pass all call it and it never
depends on having seen an earlier event. Its I/O goes through :class:`~hermes_operator.kube.Kube` and
a store factory, which is how unit tests call it as a plain function.

Writes are made only when something changed: children are server-side applied (a no-op for the API
server when nothing moved), status is patched only when it differs from the status read, and an
Event is posted only when a refusal is new. A restarted operator therefore writes nothing. After a
child Deployment's event (mostly its status moving during a rollout) even the no-op applies are
skipped when the live Deployment is provably the one the last apply produced: at 200 policies they
were three quarters of the operator's requests, and they queue behind the same API server.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .capacity import plan_capacity
from .generations import (
    GenerationStore,
    GenerationStoreError,
    generation_record,
    redact,
    summarize_stats,
    url_with_password,
)
from .kube import Kube, now_rfc3339
from .metrics import OperatorMetrics
from .podstatus import diagnose
from .render import (
    DEFAULT_SIDECAR_IMAGE_REF,
    FIELD_MANAGER,
    gpus_requested,
    redis_url,
    render_all,
    render_hpa,
    selector_string,
)
from .spec import API_VERSION, GROUP, KIND, PLURAL, VERSION, Policy, SpecError, parse_policy

log = logging.getLogger("hermes_operator")

StoreFactory = Callable[[str], GenerationStore]

READY = "Ready"
CAPACITY_OK = "CapacityOK"
GENERATION_APPLIED = "CacheGenerationApplied"
PROGRESSING = "Progressing"
_REDIS_REFUSALS = ("RedisUnavailable", "RedisPasswordUnavailable")
# Seconds from the last of a burst of changes to a child Deployment to the reconcile of its policy.
DEPLOYMENT_DEBOUNCE = 1.0
# The label every child carries (render.labels) that selects the Deployments the operator watches.
CHILD_LABELS = {"app.kubernetes.io/managed-by": FIELD_MANAGER}


@dataclass
class Env:
    """What reconcile talks to. ``now`` returns RFC 3339 timestamps (tests pin it)."""

    kube: Kube
    stores: StoreFactory
    metrics: OperatorMetrics = field(default_factory=OperatorMetrics)
    now: Callable[[], str] = now_rfc3339
    # The sidecar image of policies that name none (spec.sidecar.image): the operator's own.
    sidecar_image: str = DEFAULT_SIDECAR_IMAGE_REF
    # What the last full apply of each policy left behind, so a reconcile after a child Deployment
    # event can tell that nothing needs applying (see _children_unchanged).
    applied: dict[tuple[str, str], _Applied] = field(default_factory=dict)


@dataclass(frozen=True)
class _Applied:
    """One policy's last successful apply: the rendered objects' digest and the Deployment it produced."""

    policy_uid: str
    digest: str
    deployment_uid: str
    deployment_generation: int


def _digest(manifests: list[dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps(manifests, sort_keys=True).encode()).hexdigest()


def _contains(live: Any, want: Any) -> bool:
    """Every key/value of ``want`` is present in ``live`` (a subset test on mappings, equality below)."""
    if isinstance(want, Mapping):
        return isinstance(live, Mapping) and all(k in live and _contains(live[k], v) for k, v in want.items())
    return bool(live == want)


def _children_unchanged(
    env: Env, key: tuple[str, str], uid: str, digest: str, rendered_deploy: dict[str, Any]
) -> dict[str, Any] | None:
    """The live Deployment when applying would change nothing, else None.

    True when this process last applied exactly these rendered objects for this policy, and the live
    Deployment is the one that apply produced with its spec untouched since (same uid and
    ``metadata.generation``: the API server bumps the generation on every spec change, by anyone)
    and its labels, annotations and owner references still include ours (metadata edits do not bump
    the generation). Called only after a Deployment event, whose burst of status updates would
    otherwise re-apply four unchanged objects each time; the change handlers and the drift pass
    always apply, which repairs drift of the ConfigMap, Service and PDB (not watched).
    """
    memo = env.applied.get(key)
    if memo is None or memo.policy_uid != uid or memo.digest != digest:
        return None
    live = env.kube.get("apps/v1", "Deployment", *key)
    if not live:
        return None
    meta = live.get("metadata") or {}
    if (meta.get("uid") or "") != memo.deployment_uid or int(meta.get("generation") or 0) != (
        memo.deployment_generation
    ):
        return None
    want = rendered_deploy["metadata"]
    for part in ("labels", "annotations"):
        if not _contains(meta.get(part) or {}, want.get(part) or {}):
            return None
    if want.get("ownerReferences") and not all(
        any(_contains(ref, w) for ref in meta.get("ownerReferences") or []) for w in want["ownerReferences"]
    ):
        return None
    return live


def _plain(obj: Any) -> Any:
    """kopf hands out mapping views; reconcile works on plain data."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def _cond(ctype: str, status: bool | None, reason: str, message: str) -> dict[str, Any]:
    return {
        "type": ctype,
        "status": "Unknown" if status is None else ("True" if status else "False"),
        "reason": reason,
        "message": message,
    }


def merge_conditions(
    old: list[dict[str, Any]], new: list[dict[str, Any]], generation: int, now: str
) -> list[dict[str, Any]]:
    """Stamp ``observedGeneration``; keep ``lastTransitionTime`` unless the status flips."""
    by_type = {c.get("type"): c for c in old}
    out = []
    for c in new:
        prev = by_type.get(c["type"])
        keep = prev is not None and prev.get("status") == c["status"] and prev.get("lastTransitionTime")
        out.append(
            {
                **c,
                "observedGeneration": generation,
                "lastTransitionTime": prev["lastTransitionTime"] if keep and prev else now,
            }
        )
    return out


def _status_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any] | None:
    """The merge patch turning ``old`` into ``new`` at the top level, or None when they are equal."""
    if old == new:
        return None
    patch: dict[str, Any] = {k: None for k in old if k not in new}
    patch.update(new)
    return patch


def _deployment_state(deploy: Mapping[str, Any] | None) -> dict[str, int]:
    if not deploy:
        return {"replicas": 0, "ready": 0, "updated": 0, "stale": 0}
    st = deploy.get("status") or {}
    gen = (deploy.get("metadata") or {}).get("generation") or 0
    return {
        "replicas": int(st.get("replicas") or 0),
        "ready": int(st.get("readyReplicas") or st.get("ready_replicas") or 0),
        "updated": int(st.get("updatedReplicas") or st.get("updated_replicas") or 0),
        "stale": int(int(st.get("observedGeneration") or st.get("observed_generation") or 0) < int(gen)),
    }


def _event_if_new(
    env: Env, policy_meta: dict[str, Any], old: list[dict[str, Any]], cond: dict[str, Any], reason: str
) -> None:
    """One Warning per refusal: posted when the condition is new, not on every drift pass or restart."""
    prev = next((c for c in old if c.get("type") == cond["type"]), None)
    if prev and (prev.get("status"), prev.get("reason"), prev.get("message")) == (
        cond["status"],
        cond["reason"],
        cond["message"],
    ):
        return
    env.metrics.reconcile_errors.labels(reason).inc()
    _post_event(
        env,
        policy_meta["namespace"],
        policy_meta["name"],
        policy_meta["uid"],
        "Warning",
        cond["reason"],
        cond["message"],
    )


def _post_event(env: Env, *args: str) -> None:
    """Events are best effort: a refused Event (e.g. namespace terminating) must not stop a reconcile."""
    try:
        env.kube.event(*args)
    except Exception as exc:
        log.warning("could not post Event %s: %s", args[4:5], api_message(exc))


def api_message(exc: Exception) -> str:
    """The API server's own message from an ApiException body, not the HTTP headers around it."""
    body = getattr(exc, "body", None)
    if body:
        try:
            return str(json.loads(body).get("message") or body)
        except (ValueError, AttributeError):
            return str(body)
    return str(exc)


def _not_ready(env: Env, policy: Policy, counts: str) -> dict[str, Any]:
    """The Ready=False condition, with what the policy's pods say about why (podstatus.diagnose)."""
    try:
        pods = env.kube.list_pods(policy.namespace, selector_string(policy))
    except Exception as exc:  # the reason is a courtesy: never let it fail the reconcile
        log.warning("%s/%s: could not list pods: %s", policy.namespace, policy.name, api_message(exc))
        pods = []
    problem = diagnose(pods)
    if problem is None:
        return _cond(READY, False, "ReplicasNotReady", counts)
    return _cond(READY, False, problem.reason, f"{counts}; {problem.message}")


def reconcile(
    body: Mapping[str, Any], env: Env, *, read_stats: bool = False, after_child_event: bool = False
) -> dict[str, Any]:
    """Drive the cluster towards ``body``'s spec and return the status it should now show.

    ``after_child_event``: called because a child Deployment changed; the children are applied only
    when :func:`_children_unchanged` cannot vouch that applying would be a no-op.
    """
    obj = _plain(body)
    meta = obj.get("metadata") or {}
    ident = {
        "namespace": meta.get("namespace") or "default",
        "name": meta.get("name"),
        "uid": meta.get("uid", ""),
    }
    generation = int(meta.get("generation") or 0)
    old_status: dict[str, Any] = obj.get("status") or {}
    old_conds: list[dict[str, Any]] = old_status.get("conditions") or []
    now = env.now()
    if meta.get("deletionTimestamp"):
        # Being deleted: the garbage collector removes the children; applying them again would
        # only race it (and fail in a terminating namespace).
        return old_status

    try:
        policy = parse_policy(obj)
    except SpecError as exc:
        msg = "; ".join(exc.problems)
        conds = [
            _cond(READY, False, "InvalidSpec", msg),
            _cond(CAPACITY_OK, None, "InvalidSpec", "not planned: the spec is invalid"),
            _cond(GENERATION_APPLIED, None, "InvalidSpec", "not applied: the spec is invalid"),
            _cond(PROGRESSING, False, "InvalidSpec", "nothing is rolled out while the spec is invalid"),
        ]
        _event_if_new(env, ident, old_conds, conds[0], "InvalidSpec")
        invalid = {
            **old_status,
            "observedGeneration": generation,
            "conditions": merge_conditions(old_conds, conds, generation, now),
        }
        return _finish(env, ident, old_status, invalid, 0)

    spec = policy.spec
    capacity = plan_capacity(spec)
    conds_by_type: dict[str, dict[str, Any]] = {}
    apply_error = ""
    apply_reason = "ApplyFailed"
    live_deploy: dict[str, Any] | None = None

    if capacity.fits:
        conds_by_type[CAPACITY_OK] = _cond(CAPACITY_OK, True, capacity.reason, capacity.message)
        try:
            manifests = render_all(policy, capacity, env.sidecar_image)
        except SpecError as exc:
            # e.g. a sidecar config the bundled sidecar would refuse at start: nothing is applied
            apply_error, apply_reason = "; ".join(exc.problems), "InvalidSpec"
        else:
            key = (policy.namespace, policy.name)
            digest = _digest(manifests)
            deploy_manifest = next(m for m in manifests if m["kind"] == "Deployment")
            if after_child_event:
                live_deploy = _children_unchanged(env, key, policy.uid, digest, deploy_manifest)
            if live_deploy is None:
                env.applied.pop(key, None)
                try:
                    for manifest in manifests:
                        out = env.kube.apply(manifest)
                        if manifest is deploy_manifest:
                            # The apply's answer is the Deployment as stored, status included: no
                            # second read is needed for the status below.
                            live_deploy = out
                    if not spec.autoscaling.enabled:
                        hpa = render_hpa(policy)
                        if env.kube.get(hpa["apiVersion"], hpa["kind"], policy.namespace, policy.name):
                            env.kube.delete(hpa["apiVersion"], hpa["kind"], policy.namespace, policy.name)
                except Exception as exc:  # the API server's answer is the message the user needs
                    apply_error = f"applying the rendered objects failed: {api_message(exc)}"
                    log.warning("%s/%s: %s", policy.namespace, policy.name, apply_error)
                    live_deploy = None
                else:
                    dmeta = (live_deploy or {}).get("metadata") or {}
                    env.applied[key] = _Applied(
                        policy.uid, digest, str(dmeta.get("uid") or ""), int(dmeta.get("generation") or 0)
                    )
    else:
        # Nothing is deployed for a policy that cannot fit; an existing Deployment is left as it is.
        conds_by_type[CAPACITY_OK] = _cond(CAPACITY_OK, False, capacity.reason, capacity.message)
        _event_if_new(env, ident, old_conds, conds_by_type[CAPACITY_OK], "CapacityExceeded")

    if live_deploy is None:
        live_deploy = env.kube.get("apps/v1", "Deployment", policy.namespace, policy.name)
    dep = _deployment_state(live_deploy)
    want = spec.replicas
    if apply_error:
        ready = _cond(READY, False, apply_reason, apply_error)
        _event_if_new(env, ident, old_conds, ready, apply_reason)
    elif not capacity.fits:
        ready = _cond(
            READY, False, "CapacityExceeded", "no Deployment is created for a policy that cannot fit"
        )
    elif want == 0:
        ready = _cond(READY, False, "ScaledToZero", "spec.replicas is 0")
    elif dep["ready"] >= want and dep["updated"] >= want and not dep["stale"]:
        ready = _cond(READY, True, "ReplicasReady", f"{dep['ready']}/{want} replicas ready")
    else:
        ready = _not_ready(env, policy, f"{dep['ready']}/{want} replicas ready")
    conds_by_type[READY] = ready
    rolling = capacity.fits and not apply_error and want > 0 and ready["status"] != "True"
    conds_by_type[PROGRESSING] = (
        _cond(
            PROGRESSING, True, "RollingOut", f"{dep['updated']}/{want} replicas updated, {dep['ready']} ready"
        )
        if rolling
        else _cond(PROGRESSING, False, "Stable", "no rollout in progress")
    )

    gen_status, gen_cond = _reconcile_generation(policy, env, old_status, now, read_stats)
    conds_by_type[GENERATION_APPLIED] = gen_cond
    if gen_cond["status"] == "False" and gen_cond["reason"] in _REDIS_REFUSALS:
        _event_if_new(env, ident, old_conds, gen_cond, gen_cond["reason"])

    conds = [conds_by_type[t] for t in (READY, CAPACITY_OK, GENERATION_APPLIED, PROGRESSING)]
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "conditions": merge_conditions(old_conds, conds, generation, now),
        "replicas": dep["replicas"],
        "readyReplicas": dep["ready"],
        "selector": selector_string(policy),
        "capacity": capacity.status(),
        **gen_status,
    }
    return _finish(env, ident, old_status, status, gpus_requested(policy, capacity))


def _reconcile_generation(
    policy: Policy, env: Env, old_status: dict[str, Any], now: str, read_stats: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Publish the generation record when ``spec.cacheVersion`` moved; read the stats on the drift pass.

    Returns the status keys it owns (cacheVersion, cacheVersionSwitchedAt, semanticCache) and the
    CacheGenerationApplied condition. Never touches the pod template.
    """
    sc = policy.spec.semanticCache
    want = policy.spec.cacheVersion
    applied = old_status.get("cacheVersion") or ""
    switched_at = old_status.get("cacheVersionSwitchedAt") or ""
    out: dict[str, Any] = {}
    if "semanticCache" in old_status:
        out["semanticCache"] = old_status["semanticCache"]

    if not sc.enabled or sc.redis is None:
        if applied != want:
            switched_at = now
        out.update(cacheVersion=want, cacheVersionSwitchedAt=switched_at)
        if not sc.enabled:
            return out, _cond(
                GENERATION_APPLIED, True, "SemanticCacheDisabled", f"generation {want}: no cache"
            )
        return out, _cond(
            GENERATION_APPLIED,
            False,
            "PodLocalCache",
            f"generation {want} recorded, but without spec.semanticCache.redis each pod's in-memory cache "
            f"keeps older entries until their TTL; set spec.semanticCache.redis.url to switch generations",
        )

    url = redis_url(policy) or ""
    client_url = url
    ref = sc.redis.passwordSecretRef
    if ref is not None:
        # The operator's own client reads the Secret; the sidecars get it mounted as a file.
        try:
            client_url = url_with_password(url, env.kube.secret_value(policy.namespace, ref.name, ref.key))
        except Exception as exc:
            out.update(cacheVersion=applied, cacheVersionSwitchedAt=switched_at)
            return out, _cond(
                GENERATION_APPLIED,
                False,
                "RedisPasswordUnavailable",
                f"generation {want} not published: cannot read the Redis password from "
                f"spec.semanticCache.redis.passwordSecretRef (Secret {policy.namespace}/{ref.name}, key "
                f"{ref.key!r}): {api_message(exc)}",
            )
    try:
        store = env.stores(client_url)
        if applied != want:
            record = generation_record(want, policy.uid, now)
            store.write_generation(policy.namespace, policy.name, record)
            if applied:
                env.metrics.generation_switches.labels(policy.namespace, policy.name).inc()
            _post_event(
                env, policy.namespace, policy.name, policy.uid, "Normal", "CacheGenerationSwitched",
                f"cache generation {applied or '(none)'} -> {want} published to {redact(url)}",
            )  # fmt: skip
            applied, switched_at = want, now
        elif read_stats:
            # Redis may have lost the record (restart without persistence): put it back as it was.
            current = store.read_generation(policy.namespace, policy.name)
            expected = generation_record(want, policy.uid, switched_at)
            if current != expected:
                store.write_generation(policy.namespace, policy.name, expected)
        if read_stats:
            out["semanticCache"] = summarize_stats(store.read_stats(policy.namespace, policy.name, want))
    except GenerationStoreError as exc:
        out.update(cacheVersion=applied, cacheVersionSwitchedAt=switched_at)
        return out, _cond(
            GENERATION_APPLIED, False, "RedisUnavailable", f"generation {want} not published: {exc}"
        )
    out.update(cacheVersion=applied, cacheVersionSwitchedAt=switched_at)
    return out, _cond(
        GENERATION_APPLIED, True, "GenerationPublished", f"generation {want} published at {switched_at}"
    )


def _finish(
    env: Env, ident: dict[str, Any], old: dict[str, Any], new: dict[str, Any], gpus: int
) -> dict[str, Any]:
    # Status keys nobody else writes are carried over (kopf or a human may add some); ours replace.
    merged = {**{k: v for k, v in old.items() if k not in _OWNED_STATUS_KEYS}, **new}
    patch = _status_patch(old, merged)
    if patch is not None:
        env.kube.patch_policy_status(ident["namespace"], ident["name"], patch)
    env.metrics.observe_policy(
        ident["namespace"],
        ident["name"],
        {c["type"]: c["status"] for c in merged.get("conditions", [])},
        gpus,
    )
    return merged


_OWNED_STATUS_KEYS = frozenset(
    {
        "observedGeneration",
        "conditions",
        "replicas",
        "readyReplicas",
        "selector",
        "capacity",
        "cacheVersion",
        "cacheVersionSwitchedAt",
        "semanticCache",
    }
)


def timed_reconcile(body: Mapping[str, Any], env: Env, trigger: str, *, read_stats: bool = False) -> None:
    start = time.perf_counter()
    try:
        reconcile(body, env, read_stats=read_stats, after_child_event=trigger == "deployment")
    except Exception:
        env.metrics.reconcile_errors.labels("Exception").inc()
        raise
    finally:
        env.metrics.reconcile_duration.labels(trigger).observe(time.perf_counter() - start)


def owner_policy(deployment: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """``(namespace, name, uid)`` of the policy that controls ``deployment``, or None when it is not ours."""
    meta = deployment.get("metadata") or {}
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == KIND and str(ref.get("apiVersion", "")).split("/")[0] == GROUP:
            return (meta.get("namespace") or "default", str(ref.get("name")), str(ref.get("uid") or ""))
    return None


def reconcile_owner(namespace: str, name: str, uid: str, env: Env) -> bool:
    """Reconcile the policy ``namespace/name`` as it is now in the API server; False when it is gone.

    Called after a child Deployment changed. The policy is read afresh rather than taken from the
    watch stream, so the status written is computed against the status actually stored (a status
    patch of our own may not have come back through the watch yet). A policy that was deleted, or
    recreated under the same name (another uid), is left alone: the garbage collector removes the
    old children and the new policy's own create handler applies its children.
    """
    body = env.kube.get(API_VERSION, KIND, namespace, name)
    if not body or ((body.get("metadata") or {}).get("uid") or "") != uid:
        return False
    timed_reconcile(body, env, "deployment")
    return True


Key = tuple[str, str, str]


class _QuietChildEvents(logging.Filter):
    """Drops kopf's per-event "Handler 'child-deployment' succeeded" line: one per Deployment status
    update would drown the log during a rollout. Failures of that handler are still logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno <= logging.INFO and "'child-deployment' succeeded" in record.getMessage())


class Debouncer:
    """Coalesces bursts of triggers per key into one call of ``action(key)``, ``delay`` seconds later.

    A rollout changes a Deployment's status many times within a second or two; one reconcile after
    the burst sees the final state. A trigger that arrives while the action runs gets one more run
    after it, so the last change is never missed. ``action`` is blocking; it runs in the default
    executor, one at a time per key.
    """

    def __init__(self, action: Callable[[Key], Any], delay: float) -> None:
        self._action, self._delay = action, delay
        self._dirty: set[Key] = set()
        self._tasks: dict[Key, Any] = {}

    def trigger(self, key: Key) -> None:
        import asyncio

        self._dirty.add(key)
        if key not in self._tasks:
            self._tasks[key] = asyncio.get_running_loop().create_task(self._run(key))

    async def _run(self, key: Key) -> None:
        import asyncio

        loop = asyncio.get_running_loop()
        try:
            while key in self._dirty:
                await asyncio.sleep(self._delay)
                self._dirty.discard(key)
                try:
                    await loop.run_in_executor(None, self._action, key)
                except Exception:
                    log.exception("%s/%s: reconcile after a Deployment change failed", key[0], key[1])
        finally:
            self._tasks.pop(key, None)

    async def idle(self) -> None:
        """Wait until no run is pending or running (tests and shutdown)."""
        import asyncio

        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    def cancel(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()


def register(
    env: Env, registry: Any, drift_interval: float, deployment_debounce: float = DEPLOYMENT_DEBOUNCE
) -> None:
    """Attach the handlers to a kopf registry. Kept out of import time so importing is side-effect free.

    Children are watched too: the operator follows the Deployments labelled
    ``app.kubernetes.io/managed-by=hermes-cache-operator`` (a server-side label selector, so the
    operator never streams other Deployments) and reconciles the owning policy
    ``deployment_debounce`` seconds after a burst of changes. Pods turning ready show up in the
    policy's status within seconds, and a Deployment someone edited or deleted is put back at once
    instead of at the next drift pass.

    The drift pass is our own loop over the policies seen in the watch stream, not a kopf timer:
    kopf puts a finalizer on every object with a timer, and a finalizer would make a policy
    undeletable whenever the operator is not running (uninstalled, crash-looping). Without it,
    deletion is left entirely to the garbage collector and the owner references. It remains for
    what no watched object announces: Redis losing the generation record, a Secret appearing, the
    semantic-cache stats.
    """
    import asyncio

    import kopf

    resource = (GROUP, VERSION, PLURAL)
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    # One reconcile of a policy at a time: kopf's change handlers, the Deployment trigger and the
    # drift pass run in different threads, and two overlapping passes would both write status.
    locks: dict[tuple[str, str], threading.Lock] = {}
    locks_guard = threading.Lock()

    def lock_for(namespace: str, name: str) -> threading.Lock:
        with locks_guard:
            return locks.setdefault((namespace, name), threading.Lock())

    def key_of(body: Mapping[str, Any]) -> tuple[str, str]:
        meta = body.get("metadata") or {}
        return (meta.get("namespace") or "default", meta.get("name") or "")

    @kopf.on.resume(*resource, registry=registry, id="reconcile")
    @kopf.on.create(*resource, registry=registry, id="reconcile")
    @kopf.on.update(*resource, registry=registry, id="reconcile")
    def on_change(body: Mapping[str, Any], **_: Any) -> None:
        with lock_for(*key_of(body)):
            timed_reconcile(body, env, "change")

    @kopf.on.event(*resource, registry=registry, id="track")
    def track(event: Mapping[str, Any], body: Mapping[str, Any], **_: Any) -> None:
        key = key_of(body)
        if event.get("type") == "DELETED":
            seen.pop(key, None)
            env.applied.pop(key, None)
            env.metrics.forget_policy(*key)
        else:
            seen[key] = _plain(body)

    def reconcile_after_deployment_change(key: Key) -> None:
        with lock_for(key[0], key[1]):
            reconcile_owner(*key, env)

    debouncer = Debouncer(reconcile_after_deployment_change, deployment_debounce)

    @kopf.on.event("apps", "v1", "deployments", registry=registry, id="child-deployment", labels=CHILD_LABELS)
    async def child_deployment(event: Mapping[str, Any], body: Mapping[str, Any], **_: Any) -> None:
        # kopf's initial listing (type None) is skipped: the resume handler reconciles every policy.
        if event.get("type") is None:
            return
        owner = owner_policy(body)
        if owner is not None:
            debouncer.trigger(owner)

    async def drift_loop() -> None:
        loop = asyncio.get_running_loop()

        def drift(key: tuple[str, str], body: dict[str, Any]) -> None:
            with lock_for(*key):
                timed_reconcile(body, env, "timer", read_stats=True)

        while True:
            await asyncio.sleep(drift_interval)
            for key, body in list(seen.items()):
                if seen.get(key) is not body:
                    continue  # changed or deleted meanwhile: the change handler has it
                try:
                    await loop.run_in_executor(None, drift, key, body)
                except Exception:
                    log.exception("%s/%s: drift reconcile failed", *key)

    tasks: list[asyncio.Task[None]] = []

    @kopf.on.startup(registry=registry, id="start-drift")
    async def start_drift(settings: kopf.OperatorSettings, **_: Any) -> None:
        # Server-side filter: the watch streams only our Deployments, not every one in the cluster.
        settings.watching.label_selectors["apps", "v1", "deployments"] = ",".join(
            f"{k}={v}" for k, v in CHILD_LABELS.items()
        )
        logging.getLogger("kopf.objects").addFilter(_QuietChildEvents())
        tasks.append(asyncio.get_running_loop().create_task(drift_loop()))

    @kopf.on.cleanup(registry=registry, id="stop-drift")
    async def stop_drift(**_: Any) -> None:
        for task in tasks:
            task.cancel()
        debouncer.cancel()
