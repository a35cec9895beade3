"""Apply a policy's children, and skip the apply when the last one provably left nothing to do.

Children are server-side applied under one field manager, which is a no-op for the API server when
nothing moved. After a child Deployment's event (mostly its status moving during a rollout) even
the no-op applies are skipped when the live Deployment is provably the one the last apply produced:
at 200 policies they were three quarters of the operator's requests, and they queue behind the same
API server. The change handlers and the drift pass always apply, which repairs drift of the
ConfigMap, Service and PDB (not watched).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .capacity import Capacity
from .kube import Kube
from .render import LWS_API_VERSION, LWS_KIND, WORKLOAD_KINDS, Manifest, lws_name, render_all, render_hpa
from .routing import HTTPROUTE_API_VERSION, POOL_KIND, ROUTING_KINDS, epp_name, pool_name
from .spec import Policy, SpecError
from .status import Refusal

log = logging.getLogger("hermes_operator")


@dataclass(frozen=True)
class Applied:
    """One policy's last successful apply: the rendered objects' digest and the Deployment it produced."""

    policy_uid: str
    digest: str
    deployment_uid: str
    deployment_generation: int


# (namespace, name) -> the last successful apply of that policy by this process.
AppliedMemo = dict[tuple[str, str], Applied]


def _digest(manifests: list[Manifest]) -> str:
    return hashlib.sha256(json.dumps(manifests, sort_keys=True).encode()).hexdigest()


def _contains(live: Any, want: Any) -> bool:
    """Every key/value of ``want`` is present in ``live`` (a subset test on mappings, equality below)."""
    if isinstance(want, Mapping):
        return isinstance(live, Mapping) and all(k in live and _contains(live[k], v) for k, v in want.items())
    return bool(live == want)


def _children_unchanged(
    kube: Kube, memo: Applied | None, key: tuple[str, str], uid: str, digest: str, rendered_deploy: Manifest
) -> Manifest | None:
    """The live Deployment when applying would change nothing, else None.

    True when this process last applied exactly these rendered objects for this policy, and the live
    Deployment is the one that apply produced with its spec untouched since (same uid and
    ``metadata.generation``: the API server bumps the generation on every spec change, by anyone)
    and its labels, annotations and owner references still include ours (metadata edits do not bump
    the generation).
    """
    if memo is None or memo.policy_uid != uid or memo.digest != digest:
        return None
    live = kube.get(
        rendered_deploy["apiVersion"], rendered_deploy["kind"], key[0], rendered_deploy["metadata"]["name"]
    )
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


def _remove_other_workload(kube: Kube, policy: Policy, workload: Manifest, was_group: bool) -> None:
    """A policy that moved between one node and several (pipelineParallelSize or gpu.perNode changed)
    leaves the other kind of workload behind: delete it, so its pods free their GPUs. A Deployment is
    looked for whenever a LeaderWorkerSet is applied; a LeaderWorkerSet only when the last status said
    the replicas were groups (no request for the LWS API, which may not be installed, otherwise)."""
    ns, name = policy.namespace, policy.name
    if workload["kind"] == LWS_KIND:
        if kube.get("apps/v1", "Deployment", ns, name):
            kube.delete("apps/v1", "Deployment", ns, name)
    elif was_group:
        try:
            kube.delete(LWS_API_VERSION, LWS_KIND, ns, lws_name(policy))
        except Exception as exc:  # the LWS API gone with its controller: nothing to delete
            log.warning("%s/%s: could not delete the LeaderWorkerSet: %s", ns, name, exc)


def _apply(
    kube: Kube,
    policy: Policy,
    manifests: list[Manifest],
    deploy_manifest: Manifest,
    was_group: bool = False,
    was_routed: bool = False,
) -> Manifest | None:
    """Apply every child (and remove an HPA autoscaling no longer asks for); the workload as stored."""
    _remove_other_workload(kube, policy, deploy_manifest, was_group)
    live = None
    for manifest in manifests:
        out = kube.apply(manifest)
        if manifest is deploy_manifest:
            # The apply's answer is the Deployment as stored, status included: no second read is
            # needed for the status.
            live = out
    if not policy.spec.autoscaling.enabled:
        hpa = render_hpa(policy)
        if kube.get(hpa["apiVersion"], hpa["kind"], policy.namespace, policy.name):
            kube.delete(hpa["apiVersion"], hpa["kind"], policy.namespace, policy.name)
    if was_routed and not policy.spec.routing.enabled:
        _remove_routing(kube, policy)
    elif policy.spec.routing.enabled and policy.spec.routing.gateway is None and was_routed:
        _remove_kind(kube, policy, HTTPROUTE_API_VERSION, "HTTPRoute", pool_name(policy))
    return live


def _remove_kind(kube: Kube, policy: Policy, api_version: str, kind: str, name: str) -> None:
    try:
        if kube.get(api_version, kind, policy.namespace, name):
            kube.delete(api_version, kind, policy.namespace, name)
    except Exception as exc:  # the GIE or Gateway API CRDs gone: nothing of that kind to delete
        log.warning("%s/%s: could not delete %s %s: %s", policy.namespace, policy.name, kind, name, exc)


def _remove_routing(kube: Kube, policy: Policy) -> None:
    """spec.routing turned off: delete the pool, the route and the endpoint picker (looked for only
    when the last status carried the Routing condition, so unrouted policies cost no request)."""
    for api_version, kind in reversed(ROUTING_KINDS):
        name = pool_name(policy) if kind in (POOL_KIND, "HTTPRoute") else epp_name(policy)
        _remove_kind(kube, policy, api_version, kind, name)


def ensure_children(
    kube: Kube,
    applied: AppliedMemo,
    policy: Policy,
    capacity: Capacity,
    sidecar_image: str,
    *,
    after_child_event: bool,
    was_group: bool = False,
    was_routed: bool = False,
) -> tuple[Manifest | None, Refusal | None]:
    """Render and apply ``policy``'s children: the live Deployment when known, or why nothing was applied.

    ``after_child_event``: called because a child Deployment changed; the children are applied only
    when :func:`_children_unchanged` cannot vouch that applying would be a no-op. ``was_group``: the
    last status planned groups (a LeaderWorkerSet), which a Deployment now replaces. ``was_routed``:
    the last status carried the Routing condition, so routing objects may be left to delete.
    """
    try:
        manifests = render_all(policy, capacity, sidecar_image)
    except SpecError as exc:
        # e.g. a sidecar config the bundled sidecar would refuse at start: nothing is applied
        return None, Refusal("InvalidSpec", "; ".join(exc.problems))
    key = (policy.namespace, policy.name)
    digest = _digest(manifests)
    deploy_manifest = next(m for m in manifests if m["kind"] in WORKLOAD_KINDS)
    if after_child_event:
        live = _children_unchanged(kube, applied.get(key), key, policy.uid, digest, deploy_manifest)
        if live is not None:
            return live, None
    applied.pop(key, None)
    try:
        live = _apply(kube, policy, manifests, deploy_manifest, was_group, was_routed)
    except Exception as exc:  # the API server's answer (KubeError) is the message the user needs
        message = f"applying the rendered objects failed: {exc}"
        if deploy_manifest["kind"] == LWS_KIND:
            message += (
                " (a replica spanning nodes is a LeaderWorkerSet group: the cluster needs the LWS "
                "controller and its CRD, kubernetes-sigs/lws)"
            )
        log.warning("%s/%s: %s", policy.namespace, policy.name, message)
        return None, Refusal("ApplyFailed", message)
    dmeta = (live or {}).get("metadata") or {}
    applied[key] = Applied(policy.uid, digest, str(dmeta.get("uid") or ""), int(dmeta.get("generation") or 0))
    return live, None
