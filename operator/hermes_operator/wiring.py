"""The kopf side: handler registration, the child-Deployment debouncer, the drift loop.

Every reconcile, whichever path asks for it (kopf's change handlers, a child Deployment's event, the
drift pass), runs on one thread pool of ``--workers`` threads, and one at a time per policy.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

from .env import Env
from .kube import KubeError
from .reconcile import _plain, owner_policy, reconcile_owner, timed_reconcile
from .render import FIELD_MANAGER
from .spec import GROUP, PLURAL, VERSION

log = logging.getLogger("hermes_operator")

# Seconds from the last of a burst of changes to a child Deployment to the reconcile of its policy.
DEPLOYMENT_DEBOUNCE = 1.0
LWS_GROUP, LWS_VERSION, LWS_PLURAL = "leaderworkerset.x-k8s.io", "v1", "leaderworkersets"
# The label every child carries (render.labels) that selects the Deployments the operator watches.
CHILD_LABELS = {"app.kubernetes.io/managed-by": FIELD_MANAGER}

Key = tuple[str, str, str]
PolicyKey = tuple[str, str]


class _QuietChildEvents(logging.Filter):
    """Drops kopf's per-event "Handler 'child-deployment' succeeded" line (and the LeaderWorkerSet
    one's): one per status update would drown the log during a rollout. Failures are still logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (
            record.levelno <= logging.INFO
            and ("'child-deployment' succeeded" in message or "'child-leaderworkerset' succeeded" in message)
        )


class Debouncer:
    """Coalesces bursts of triggers per key into one call of ``action(key)``, ``delay`` seconds later.

    A rollout changes a Deployment's status many times within a second or two; one reconcile after
    the burst sees the final state. A trigger that arrives while the action runs gets one more run
    after it, so the last change is never missed. ``action`` is blocking; it runs in ``executor``
    (the loop's default one when None), one at a time per key.
    """

    def __init__(self, action: Callable[[Key], Any], delay: float, executor: Executor | None = None) -> None:
        self._action, self._delay, self._executor = action, delay, executor
        self._dirty: set[Key] = set()
        self._tasks: dict[Key, asyncio.Task[None]] = {}

    def trigger(self, key: Key) -> None:
        self._dirty.add(key)
        if key not in self._tasks:
            self._tasks[key] = asyncio.get_running_loop().create_task(self._run(key))

    async def _run(self, key: Key) -> None:
        loop = asyncio.get_running_loop()
        try:
            while key in self._dirty:
                await asyncio.sleep(self._delay)
                self._dirty.discard(key)
                try:
                    await loop.run_in_executor(self._executor, self._action, key)
                except Exception:
                    log.exception("%s/%s: reconcile after a Deployment change failed", key[0], key[1])
        finally:
            self._tasks.pop(key, None)

    async def idle(self) -> None:
        """Wait until no run is pending or running (tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    def cancel(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()


class PolicyLocks:
    """One lock per policy, so two passes over one policy never overlap; dropped when it is deleted.

    kopf's change handlers, the Deployment trigger and the drift pass run in different threads, and
    two overlapping passes would both write status.
    """

    def __init__(self) -> None:
        self._locks: dict[PolicyKey, threading.Lock] = {}
        self._guard = threading.Lock()

    def __call__(self, key: PolicyKey) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def forget(self, key: PolicyKey) -> None:
        with self._guard:
            self._locks.pop(key, None)

    def __len__(self) -> int:
        return len(self._locks)


def _key_of(body: Mapping[str, Any]) -> PolicyKey:
    meta = body.get("metadata") or {}
    return (meta.get("namespace") or "default", meta.get("name") or "")


class Handlers:
    """The operator's kopf handlers over one :class:`~hermes_operator.env.Env`.

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

    def __init__(self, env: Env, drift_interval: float, deployment_debounce: float, workers: int) -> None:
        self.env = env
        self.drift_interval = drift_interval
        # ``workers`` threads run every reconcile: kopf's synchronous handlers get the same pool.
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hermes-reconcile")
        self.workers = workers
        self.locks = PolicyLocks()
        self.seen: dict[PolicyKey, dict[str, Any]] = {}
        self.debouncer = Debouncer(self._after_deployment_change, deployment_debounce, self.executor)
        self._tasks: list[asyncio.Task[None]] = []

    def on_change(self, body: Mapping[str, Any], **_: Any) -> None:
        """Create, update and resume of a policy."""
        with self.locks(_key_of(body)):
            timed_reconcile(body, self.env, "change")

    def track(self, event: Mapping[str, Any], body: Mapping[str, Any], **_: Any) -> None:
        """Every policy event: what the drift pass walks over; a deletion forgets the policy."""
        key = _key_of(body)
        if event.get("type") == "DELETED":
            self.seen.pop(key, None)
            self.locks.forget(key)
            self.env.applied.pop(key, None)
            self.env.metrics.forget_policy(*key)
        else:
            self.seen[key] = _plain(body)

    async def child_deployment(self, event: Mapping[str, Any], body: Mapping[str, Any], **_: Any) -> None:
        # kopf's initial listing (type None) is skipped: the resume handler reconciles every policy.
        if event.get("type") is None:
            return
        owner = owner_policy(body)
        if owner is not None:
            self.debouncer.trigger(owner)

    def _after_deployment_change(self, key: Key) -> None:
        with self.locks((key[0], key[1])):
            reconcile_owner(*key, self.env)

    def _drift(self, key: PolicyKey, body: dict[str, Any]) -> None:
        with self.locks(key):
            timed_reconcile(body, self.env, "timer", read_stats=True)

    async def _drift_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.drift_interval)
            for key, body in list(self.seen.items()):
                if self.seen.get(key) is not body:
                    continue  # changed or deleted meanwhile: the change handler has it
                try:
                    await loop.run_in_executor(self.executor, self._drift, key, body)
                except KubeError as exc:
                    if exc.status != 404 or self.seen.get(key) is not body:
                        log.exception("%s/%s: drift reconcile failed", *key)
                        continue
                    # The policy is gone and its DELETED event never came (kopf stops watching a
                    # namespace that is deleted, sometimes before delivering the deletions in it).
                    log.info("%s/%s: the policy no longer exists; the drift pass forgets it", *key)
                    self.seen.pop(key, None)
                    self.locks.forget(key)
                    self.env.applied.pop(key, None)
                    self.env.metrics.forget_policy(*key)
                except Exception:
                    log.exception("%s/%s: drift reconcile failed", *key)

    async def start(self, settings: Any, **_: Any) -> None:
        """Startup: one pool for kopf too, a server-side filter on Deployments, the drift loop."""
        settings.execution.executor = self.executor
        settings.execution.max_workers = self.workers
        # Server-side filter: the watch streams only our Deployments, not every one in the cluster.
        selector = ",".join(f"{k}={v}" for k, v in CHILD_LABELS.items())
        settings.watching.label_selectors["apps", "v1", "deployments"] = selector
        settings.watching.label_selectors[LWS_GROUP, LWS_VERSION, LWS_PLURAL] = selector
        logging.getLogger("kopf.objects").addFilter(_QuietChildEvents())
        self._tasks.append(asyncio.get_running_loop().create_task(self._drift_loop()))

    async def stop(self, **_: Any) -> None:
        for task in self._tasks:
            task.cancel()
        self.debouncer.cancel()
        self.executor.shutdown(wait=False, cancel_futures=True)


def register(
    env: Env,
    registry: Any,
    drift_interval: float,
    deployment_debounce: float = DEPLOYMENT_DEBOUNCE,
    workers: int = 8,
) -> Handlers:
    """Attach the handlers to a kopf registry. Kept out of import time so importing is side-effect free."""
    import kopf

    handlers = Handlers(env, drift_interval, deployment_debounce, workers)
    policies = (GROUP, VERSION, PLURAL)
    for on in (kopf.on.resume, kopf.on.create, kopf.on.update):
        on(*policies, registry=registry, id="reconcile")(handlers.on_change)
    kopf.on.event(*policies, registry=registry, id="track")(handlers.track)
    kopf.on.event("apps", "v1", "deployments", registry=registry, id="child-deployment", labels=CHILD_LABELS)(
        handlers.child_deployment
    )
    # A replica spanning nodes is a LeaderWorkerSet group: watched the same way. kopf serves the
    # resource once its CRD exists (and warns, without failing, while it does not).
    kopf.on.event(
        LWS_GROUP, LWS_VERSION, LWS_PLURAL, registry=registry, id="child-leaderworkerset", labels=CHILD_LABELS
    )(handlers.child_deployment)
    kopf.on.startup(registry=registry, id="start-drift")(handlers.start)
    kopf.on.cleanup(registry=registry, id="stop-drift")(handlers.stop)
    return handlers
