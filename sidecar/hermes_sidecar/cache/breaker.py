"""Circuit breakers for the cache's dependencies, and the one probe that closes them again.

A dependency that fails (store, embedder, verifier) is marked down at once, so that further requests
do not each wait on its timeout; while any is down, one background task probes the down ones every
``retry_seconds`` and marks each up again as soon as it answers, so caching resumes without a
restart. ``hermes_cache_degraded{component}`` shows the state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from hermes_sidecar.errors import DependencyError
from hermes_sidecar.metrics import Metrics

log = logging.getLogger("hermes_sidecar.cache")

__all__ = ["COMPONENTS", "Breakers", "Probe"]

COMPONENTS = ("store", "embedder", "verifier")
# What a component's failure does to requests, and the line logged when it answers again.
_ON_FAILURE = {"verifier": "deciding as cache.guard.verifier.onError says"}
_BACK = {"store": "cache store is back", "embedder": "embedder is back", "verifier": "verifier is back"}

# A call that raises DependencyError while the component is still down (None: nothing to probe).
Probe = Callable[[], Awaitable[object]] | None


class _Breaker:
    """Circuit breaker state of one component."""

    def __init__(self) -> None:
        self.down_since: float | None = None
        self.last_error = ""

    @property
    def up(self) -> bool:
        return self.down_since is None


class Breakers:
    def __init__(self, metrics: Metrics, probes: dict[str, Probe], retry_seconds: float = 1.0) -> None:
        self.metrics = metrics
        self.retry = retry_seconds
        self._probes = probes
        self._state = {name: _Breaker() for name in COMPONENTS}
        self._task: asyncio.Task[None] | None = None

    def up(self, component: str) -> bool:
        return self._state[component].up

    def all_up(self) -> bool:
        return all(b.up for b in self._state.values())

    def degraded(self) -> dict[str, str]:
        """The components that are down, with their last error."""
        return {name: b.last_error for name, b in self._state.items() if not b.up}

    def failed(self, component: str, err: Exception) -> None:
        """``component`` failed: open its breaker (logged once) and start probing it."""
        b = self._state[component]
        if b.up:
            log.warning(
                "cache %s failed, %s: %s",
                component,
                _ON_FAILURE.get(component, "passing requests through"),
                err,
            )
            b.down_since = time.monotonic()
        b.last_error = str(err) or type(err).__name__
        self._changed(component)

    def recovered(self, component: str) -> None:
        b = self._state[component]
        b.down_since = None
        b.last_error = ""
        self._changed(component)

    def _changed(self, component: str) -> None:
        up = self._state[component].up
        self.metrics.degraded.labels(component).set(0 if up else 1)
        if not up and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._probe_loop())

    async def _probe_loop(self) -> None:
        while not self.all_up():
            await asyncio.sleep(self.retry)
            for name, b in self._state.items():
                probe = self._probes.get(name)
                if b.up or probe is None:
                    continue
                try:
                    await probe()
                except DependencyError as exc:
                    b.last_error = str(exc)
                else:
                    self.recovered(name)
                    log.info(_BACK[name])

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
