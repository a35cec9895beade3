"""One level-based reconcile: from a policy object to its children, its generation and its status.

:func:`reconcile` reads nothing but the policy object it is given, the Deployment it owns and (for a
generation switch or the stats) the policy's Redis; it computes everything from the current spec,
so create, update, resume, a change to a child Deployment and the drift pass all call it and it never
depends on having seen an earlier event. Its I/O goes through :class:`~hermes_operator.env.Env`,
which is how unit tests call it as a plain function.

Writes are made only when something changed: children are server-side applied (and even that is
skipped after a child's own event when nothing can have moved, see :mod:`~hermes_operator.children`),
status is patched only when it differs from the status read, and an Event is posted only when a
refusal is new. A restarted operator therefore writes nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from .cachegen import reconcile_generation
from .capacity import plan_capacity, replica_group
from .children import ensure_children
from .env import Env
from .events import Subject, post, warn_if_new
from .podstatus import PodProblem, diagnose, diagnose_groups
from .render import gpus_requested, pods_selector_string, selector_string, workload_ref
from .routing import ROUTING, routing_condition
from .spec import API_VERSION, GROUP, KIND, Policy, SpecError, parse_policy
from .status import (
    Replicas,
    Status,
    capacity_condition,
    find,
    invalid_spec_conditions,
    invalid_status,
    observed_status,
    progressing_condition,
    ready_condition,
    status_patch,
    with_foreign_keys,
)

log = logging.getLogger("hermes_operator")


def reconcile(
    body: Mapping[str, Any], env: Env, *, read_stats: bool = False, after_child_event: bool = False
) -> Status:
    """Drive the cluster towards ``body``'s spec and return the status it should now show.

    ``read_stats``: the drift pass, which also reads the cache stats and repairs the generation
    record. ``after_child_event``: a child Deployment changed; unchanged children are not applied.
    """
    obj = _plain(body)
    meta = obj.get("metadata") or {}
    subject = Subject(meta.get("namespace") or "default", meta.get("name") or "", meta.get("uid", ""))
    generation = int(meta.get("generation") or 0)
    old: Status = obj.get("status") or {}
    old_conds = old.get("conditions") or []
    now = env.now()
    if meta.get("deletionTimestamp"):
        # Being deleted: the garbage collector removes the children; applying them again would
        # only race it (and fail in a terminating namespace).
        return old
    try:
        policy = parse_policy(obj)
    except SpecError as exc:
        refused = invalid_spec_conditions("; ".join(exc.problems))
        warn_if_new(env, subject, old_conds, refused[0], "InvalidSpec")
        return _finish(env, subject, old, invalid_status(old, generation, refused, now), 0)

    capacity = plan_capacity(policy.spec)
    group = replica_group(policy.spec)
    was_group = int((old.get("capacity") or {}).get("nodesPerReplica") or 1) > 1
    live_deploy, refusal = None, None
    if capacity.fits:
        live_deploy, refusal = ensure_children(
            env.kube,
            env.applied,
            policy,
            capacity,
            env.sidecar_image,
            after_child_event=after_child_event,
            was_group=was_group,
            was_routed=find(old_conds, ROUTING) is not None,
        )
    else:
        # Nothing is deployed for a policy that cannot fit; an existing Deployment is left as it is.
        warn_if_new(env, subject, old_conds, capacity_condition(capacity), "CapacityExceeded")
    if live_deploy is None:
        live_deploy = _get_workload(env, policy)
    dep = Replicas.of(live_deploy)
    want = policy.spec.replicas
    unit = "groups" if group.multi_node else "replicas"
    ready = ready_condition(capacity, refusal, want, dep, lambda: _pod_problem(env, policy), unit=unit)
    if refusal is not None:
        warn_if_new(env, subject, old_conds, ready, refusal.reason)
    cache = reconcile_generation(policy, env, old, now, read_stats)

    progressing = progressing_condition(capacity, refusal, want, dep, ready, unit=unit)
    conds = [ready, capacity_condition(capacity), cache.condition, progressing]  # as CONDITION_TYPES
    routed = routing_condition(policy)
    if routed is not None:  # spec.routing on: a warning when there is never a second pod to pick
        conds.append(routed)
        if routed.status == "False" and not routed.same_as(find(old_conds, ROUTING)):
            post(env, subject, "Warning", routed.reason, routed.message)
    status = observed_status(old, generation, conds, now, dep, selector_string(policy), capacity, cache)
    return _finish(env, subject, old, status, gpus_requested(policy, capacity))


def _get_workload(env: Env, policy: Policy) -> dict[str, Any] | None:
    """The live Deployment or LeaderWorkerSet (None when absent, or when the LWS API is not installed)."""
    api_version, kind, name = workload_ref(policy)
    try:
        return env.kube.get(api_version, kind, policy.namespace, name)
    except Exception as exc:
        if kind == "Deployment":
            raise
        log.warning("%s/%s: could not read the %s: %s", policy.namespace, policy.name, kind, exc)
        return None


def _pod_problem(env: Env, policy: Policy) -> PodProblem | None:
    """What the policy's pods say about why replicas (or groups) are missing (podstatus.diagnose)."""
    group = replica_group(policy.spec)
    try:
        pods = env.kube.list_pods(
            policy.namespace, pods_selector_string(policy) if group.multi_node else selector_string(policy)
        )
    except Exception as exc:  # the reason is a courtesy: never let it fail the reconcile
        log.warning("%s/%s: could not list pods: %s", policy.namespace, policy.name, exc)
        pods = []
    if group.multi_node:
        return diagnose_groups(pods, group.nodes)
    return diagnose(pods)


def _finish(env: Env, subject: Subject, old: Status, new: Status, gpus: int) -> Status:
    """Patch the status when it changed; report the conditions and GPUs to the metrics."""
    merged = with_foreign_keys(old, new)
    patch = status_patch(old, merged)
    if patch is not None:
        env.kube.patch_policy_status(subject.namespace, subject.name, patch)
    conditions = {c["type"]: c["status"] for c in merged.get("conditions", [])}
    env.metrics.observe_policy(subject.namespace, subject.name, conditions, gpus)
    return merged


def _plain(obj: Any) -> Any:
    """kopf hands out mapping views; reconcile works on plain data."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def timed_reconcile(body: Mapping[str, Any], env: Env, trigger: str, *, read_stats: bool = False) -> None:
    start = time.perf_counter()
    try:
        reconcile(body, env, read_stats=read_stats, after_child_event=trigger == "deployment")
    except Exception:
        env.metrics.reconcile_errors.labels("Exception").inc()
        raise
    finally:
        env.metrics.reconcile_duration.labels(trigger).observe(time.perf_counter() - start)


def owner_policy(deployment: Mapping[str, Any]) -> Subject | None:
    """``(namespace, name, uid)`` of the policy that controls ``deployment``, or None when it is not ours."""
    meta = deployment.get("metadata") or {}
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == KIND and str(ref.get("apiVersion", "")).split("/")[0] == GROUP:
            return Subject(
                meta.get("namespace") or "default", str(ref.get("name")), str(ref.get("uid") or "")
            )
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
