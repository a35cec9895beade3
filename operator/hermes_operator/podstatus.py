"""Why a policy's pods are not ready, in the words ``kubectl describe`` would use (pure).

``Ready=False`` with "0/2 replicas ready" sends the user to ``kubectl describe pod``. The operator
reads the pods of a policy that is not ready (and of one whose containers restarted) and puts the
cause into the ``Ready`` condition: the scheduler's message for an unschedulable pod, the image and
the runtime's message for a pull failure, the last termination of a crash-looping container. The
first problem found, in the order below, is the one reported; the message counts the pods it
affects.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# Waiting reasons of a container that cannot start, by what the user has to fix.
IMAGE_REASONS = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull", "RegistryUnavailable"}
)
CONFIG_REASONS = frozenset({"CreateContainerConfigError", "CreateContainerError", "RunContainerError"})
MESSAGE_LIMIT = 600  # a condition message stays readable in `kubectl get -o wide` and events
LAST_WORDS = 240  # of a crashed container's termination message (the end of its log)


@dataclass(frozen=True)
class PodProblem:
    reason: str  # CamelCase, used as the Ready condition's reason
    message: str


def _short(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 3] + "..."


def _containers(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    st = pod.get("status") or {}
    return [*(st.get("initContainerStatuses") or []), *(st.get("containerStatuses") or [])]


def _name(pod: Mapping[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("name") or "?")


def _termination(cs: Mapping[str, Any]) -> str:
    """``Error (exit code 137)``, with the container's own last words when it left any."""
    term = (cs.get("lastState") or {}).get("terminated") or {}
    if not term:
        return "no termination recorded"
    text = f"{term.get('reason') or 'Terminated'} (exit code {term.get('exitCode')})"
    if term.get("finishedAt"):
        text += f" at {term['finishedAt']}"
    if term.get("message"):
        text += f": {_last_words(str(term['message']))}"
    return text


def _last_words(message: str) -> str:
    """The end of a termination message: with FallbackToLogsOnError it is the log's tail, whose last
    lines carry the error (a traceback ends with it)."""
    lines = [ln.strip() for ln in message.strip().splitlines() if ln.strip()]
    tail = " | ".join(lines[-2:])
    return tail if len(tail) <= LAST_WORDS else "..." + tail[-(LAST_WORDS - 3) :]


def _unschedulable(pod: Mapping[str, Any]) -> str | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            return str(cond.get("message") or cond.get("reason") or "not scheduled")
    return None


def _first(found: list[tuple[str, str]], reason: str, what: str) -> PodProblem | None:
    if not found:
        return None
    pod, text = found[0]
    more = f" (and {len(found) - 1} more pod(s))" if len(found) > 1 else ""
    return PodProblem(reason, _short(f"pod {pod}{more}: {what}{text}"))


def diagnose(pods: Iterable[Mapping[str, Any]]) -> PodProblem | None:
    """The most actionable problem among ``pods``, or None when nothing explains a missing replica."""
    pods = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
    unschedulable, image, config, crash, restarted, starting = [], [], [], [], [], []
    for pod in pods:
        name = _name(pod)
        why = _unschedulable(pod)
        if why is not None:
            unschedulable.append((name, why))
            continue
        for cs in _containers(pod):
            cname = cs.get("name")
            waiting = (cs.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason") or ""
            message = waiting.get("message") or ""
            if reason in IMAGE_REASONS:
                image.append((name, f"container {cname} image {cs.get('image')}: {reason}: {message}"))
            elif reason in CONFIG_REASONS:
                config.append((name, f"container {cname}: {reason}: {message}"))
            elif reason == "CrashLoopBackOff":
                crash.append(
                    (name, f"container {cname} restarted {cs.get('restartCount', 0)} times; "
                           f"last termination: {_termination(cs)}")
                )  # fmt: skip
            elif int(cs.get("restartCount") or 0) > 0 and not cs.get("ready"):
                restarted.append(
                    (name, f"container {cname} restarted ({cs.get('restartCount')} restarts) and is not "
                           f"ready yet; last termination: {_termination(cs)}")
                )  # fmt: skip
            elif not cs.get("ready") and (cs.get("state") or {}).get("running") is not None:
                starting.append((name, f"container {cname} is running, not ready yet (probes)"))
    return (
        _first(unschedulable, "Unschedulable", "")
        or _first(image, "ImagePullFailed", "")
        or _first(config, "ContainerConfigError", "")
        or _first(crash, "CrashLoopBackOff", "")
        or _first(restarted, "ContainerRestarted", "")
        or _first(starting, "Starting", "")
    )


# Labels the LeaderWorkerSet controller puts on every pod of a group (sigs.k8s.io/lws api/leaderworkerset/v1).
GROUP_INDEX_LABEL = "leaderworkerset.sigs.k8s.io/group-index"
WORKER_INDEX_LABEL = "leaderworkerset.sigs.k8s.io/worker-index"


def _ready(pod: Mapping[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def diagnose_groups(pods: Iterable[Mapping[str, Any]], size: int) -> PodProblem | None:
    """The first LeaderWorkerSet group (by index) that is not whole and ready, named with its pods.

    A group is ``size`` pods (leader + workers); it serves only when all of them are ready, so the
    condition names the group, how many of its pods are ready, and why the others are not.
    """
    groups: dict[int, list[Mapping[str, Any]]] = {}
    for pod in pods:
        meta = pod.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            continue
        index = (meta.get("labels") or {}).get(GROUP_INDEX_LABEL)
        if index is not None and str(index).isdigit():
            groups.setdefault(int(index), []).append(pod)
    for index in sorted(groups):
        members = groups[index]
        ready = sum(_ready(p) for p in members)
        if ready >= size:
            continue
        names = ", ".join(sorted(_name(p) for p in members))
        what = f"group {index} ({names}): {ready}/{size} pods ready"
        problem = diagnose(members)
        if problem is None:
            missing = f"; {size - len(members)} pod(s) not created yet" if len(members) < size else ""
            return PodProblem("GroupNotReady", _short(what + missing))
        return PodProblem(problem.reason, _short(f"{what}; {problem.message}"))
    return None


def restarts(pods: Iterable[Mapping[str, Any]]) -> str:
    """``vllm restarted 1 time(s) in pod x, last: Error (exit code 137)``, or '' when none did."""
    seen = []
    for pod in pods:
        for cs in _containers(pod):
            n = int(cs.get("restartCount") or 0)
            if n:
                seen.append(
                    f"{cs.get('name')} restarted {n} time(s) in pod {_name(pod)}, last: {_termination(cs)}"
                )
    return _short("; ".join(seen))
