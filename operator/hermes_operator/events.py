"""Events on a policy, posted once per refusal rather than on every drift pass or restart."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from .env import Env
from .status import Cond, find

log = logging.getLogger("hermes_operator")


class Subject(NamedTuple):
    """A policy by identity: what an Event is about, and what owns a child Deployment."""

    namespace: str
    name: str
    uid: str


def post(env: Env, subject: Subject, type_: str, reason: str, message: str) -> None:
    """Events are best effort: a refused Event (e.g. namespace terminating) must not stop a reconcile."""
    try:
        env.kube.event(subject.namespace, subject.name, subject.uid, type_, reason, message)
    except Exception as exc:
        log.warning("could not post Event %s: %s", reason, exc)


def warn_if_new(
    env: Env, subject: Subject, old: Sequence[Mapping[str, Any]], cond: Cond, error_reason: str
) -> None:
    """One Warning per refusal: posted (and counted as ``error_reason``) when ``cond`` is new."""
    if cond.same_as(find(old, cond.type)):
        return
    env.metrics.reconcile_errors.labels(error_reason).inc()
    post(env, subject, "Warning", cond.reason, cond.message)
