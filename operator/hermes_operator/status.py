"""What a policy's status says, computed from what reconcile found (pure: no client, no clock).

Four conditions, always written as the whole list in this order (a JSON merge patch replaces lists):

``Ready``
    the Deployment has ``spec.replicas`` updated and ready replicas; otherwise why not, in the words
    of the pods (:func:`~hermes_operator.podstatus.diagnose`), of the API server or of the spec.
``CapacityOK``
    one replica holds at least one ``maxModelLen`` sequence (:func:`~hermes_operator.capacity.plan_capacity`).
``CacheGenerationApplied``
    ``spec.cacheVersion`` is published to the sidecars (:mod:`hermes_operator.cachegen`).
``Progressing``
    a rollout is under way.

:func:`merge_conditions` stamps ``observedGeneration`` and keeps ``lastTransitionTime`` unless the
status flips; :func:`status_patch` decides whether anything needs writing at all. The shapes are the
CRD's, checked by ``tests/unit/test_crd.py`` against :class:`~hermes_operator.spec.PolicyStatus`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .capacity import Capacity
from .podstatus import PodProblem
from .spec import CapacityStatus, Condition, PolicyStatus, SemanticCacheStatus

READY = "Ready"
CAPACITY_OK = "CapacityOK"
GENERATION_APPLIED = "CacheGenerationApplied"
PROGRESSING = "Progressing"
# The order conditions are written in (and the metric's label values).
CONDITION_TYPES = (READY, CAPACITY_OK, GENERATION_APPLIED, PROGRESSING)
CONDITION_STATUSES = ("True", "False", "Unknown")
# Status keys the operator writes; any other key (kopf's, a human's) is carried over untouched.
OWNED_STATUS_KEYS = frozenset(PolicyStatus.model_fields)

Status = dict[str, Any]


@dataclass(frozen=True)
class Cond:
    """A condition as reconcile decides it, before :func:`merge_conditions` stamps it."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str

    @classmethod
    def of(cls, ctype: str, ok: bool | None, reason: str, message: str) -> Cond:
        return cls(ctype, "Unknown" if ok is None else ("True" if ok else "False"), reason, message)

    def same_as(self, stored: Mapping[str, Any] | None) -> bool:
        """``stored`` (a condition read back from the status) says the same thing."""
        return stored is not None and (stored.get("status"), stored.get("reason"), stored.get("message")) == (
            self.status,
            self.reason,
            self.message,
        )


def find(conditions: Sequence[Mapping[str, Any]], ctype: str) -> Mapping[str, Any] | None:
    return next((c for c in conditions if c.get("type") == ctype), None)


def merge_conditions(
    old: Sequence[Mapping[str, Any]], new: Sequence[Cond], generation: int, now: str
) -> list[Condition]:
    """Stamp ``observedGeneration``; keep ``lastTransitionTime`` unless the status flips."""
    out = []
    for c in new:
        prev = find(old, c.type)
        kept = prev.get("lastTransitionTime") if prev is not None and prev.get("status") == c.status else None
        out.append(
            Condition(
                type=c.type,
                status=c.status,
                reason=c.reason,
                message=c.message,
                observedGeneration=generation,
                lastTransitionTime=kept or now,
            )
        )
    return out


def status_patch(old: Status, new: Status) -> Status | None:
    """The merge patch turning ``old`` into ``new`` at the top level, or None when they are equal."""
    if old == new:
        return None
    patch: Status = {k: None for k in old if k not in new}
    patch.update(new)
    return patch


def with_foreign_keys(old: Status, new: Status) -> Status:
    """``new`` plus the keys of ``old`` that the operator does not own (kopf or a human may add some)."""
    return {**{k: v for k, v in old.items() if k not in OWNED_STATUS_KEYS}, **new}


def invalid_status(old: Status, generation: int, conditions: Sequence[Cond], now: str) -> Status:
    """A refused spec changes only the conditions: the rest still describes what runs."""
    merged = merge_conditions(old.get("conditions") or [], conditions, generation, now)
    return {**old, "observedGeneration": generation, "conditions": [c.model_dump() for c in merged]}


def observed_status(
    old: Status,
    generation: int,
    conditions: Sequence[Cond],
    now: str,
    dep: Replicas,
    selector: str,
    capacity: Capacity,
    cache: CacheGeneration,
) -> Status:
    """Every key the operator owns, as the CRD's status schema has it."""
    stats = cache.semantic_cache
    return PolicyStatus(
        observedGeneration=generation,
        conditions=merge_conditions(old.get("conditions") or [], conditions, generation, now),
        replicas=dep.replicas,
        readyReplicas=dep.ready,
        selector=selector,
        capacity=CapacityStatus.model_validate(capacity.status()),
        cacheVersion=cache.version,
        cacheVersionSwitchedAt=cache.switched_at,
        semanticCache=None if stats is None else SemanticCacheStatus.model_validate(stats),
    ).model_dump(exclude_none=True)


# Spec refused: nothing is planned, applied or rolled out.
def invalid_spec_conditions(problems: str) -> list[Cond]:
    return [
        Cond.of(READY, False, "InvalidSpec", problems),
        Cond.of(CAPACITY_OK, None, "InvalidSpec", "not planned: the spec is invalid"),
        Cond.of(GENERATION_APPLIED, None, "InvalidSpec", "not applied: the spec is invalid"),
        Cond.of(PROGRESSING, False, "InvalidSpec", "nothing is rolled out while the spec is invalid"),
    ]


def capacity_condition(capacity: Capacity) -> Cond:
    return Cond.of(CAPACITY_OK, capacity.fits, capacity.reason, capacity.message)


@dataclass(frozen=True)
class Replicas:
    """What the live Deployment reports (all zero when there is none)."""

    replicas: int = 0
    ready: int = 0
    updated: int = 0
    stale: bool = False  # the Deployment controller has not seen its latest spec yet

    @classmethod
    def of(cls, deploy: Mapping[str, Any] | None) -> Replicas:
        if not deploy:
            return cls()
        st = deploy.get("status") or {}
        gen = (deploy.get("metadata") or {}).get("generation") or 0
        return cls(
            replicas=int(st.get("replicas") or 0),
            ready=int(st.get("readyReplicas") or st.get("ready_replicas") or 0),
            updated=int(st.get("updatedReplicas") or st.get("updated_replicas") or 0),
            stale=int(st.get("observedGeneration") or st.get("observed_generation") or 0) < int(gen),
        )


@dataclass(frozen=True)
class CacheGeneration:
    """The generation the status shows (``cacheVersion``, ``...SwitchedAt``, ``semanticCache``) and why."""

    version: str
    switched_at: str
    semantic_cache: Mapping[str, Any] | None
    condition: Cond


@dataclass(frozen=True)
class Refusal:
    """Why the children were not applied: the Ready condition's reason and message."""

    reason: str
    message: str


def ready_condition(
    capacity: Capacity,
    refusal: Refusal | None,
    want: int,
    dep: Replicas,
    pod_problem: Callable[[], PodProblem | None],
    unit: str = "replicas",
) -> Cond:
    """``Ready``; ``pod_problem`` (the pods' own explanation) is asked only when replicas are missing.

    ``unit`` is ``groups`` when each replica is a LeaderWorkerSet group: a group is ready when all its
    pods are (the LeaderWorkerSet's ``readyReplicas``), and the problem names the group that is not.
    """
    if refusal is not None:
        return Cond.of(READY, False, refusal.reason, refusal.message)
    if not capacity.fits:
        return Cond.of(
            READY, False, "CapacityExceeded", "no Deployment is created for a policy that cannot fit"
        )
    if want == 0:
        return Cond.of(READY, False, "ScaledToZero", "spec.replicas is 0")
    counts = f"{dep.ready}/{want} {unit} ready"
    if dep.ready >= want and dep.updated >= want and not dep.stale:
        return Cond.of(READY, True, "GroupsReady" if unit == "groups" else "ReplicasReady", counts)
    problem = pod_problem()
    if problem is None:
        return Cond.of(READY, False, "GroupsNotReady" if unit == "groups" else "ReplicasNotReady", counts)
    return Cond.of(READY, False, problem.reason, f"{counts}; {problem.message}")


def progressing_condition(
    capacity: Capacity, refusal: Refusal | None, want: int, dep: Replicas, ready: Cond, unit: str = "replicas"
) -> Cond:
    if capacity.fits and refusal is None and want > 0 and ready.status != "True":
        return Cond.of(
            PROGRESSING, True, "RollingOut", f"{dep.updated}/{want} {unit} updated, {dep.ready} ready"
        )
    return Cond.of(PROGRESSING, False, "Stable", "no rollout in progress")
