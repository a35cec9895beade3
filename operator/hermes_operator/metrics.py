"""Prometheus metrics of the operator, served by ``hermes-cache run --metrics-port``.

Names (all prefixed ``hermes_operator_``; :data:`METRIC_NAMES` lists them for other tools' tests):

``hermes_operator_policies{condition, status}``
    gauge: policies whose condition ``condition`` (Ready, CapacityOK, CacheGenerationApplied,
    Progressing) currently has ``status`` (True, False, Unknown).
``hermes_operator_reconcile_duration_seconds{trigger}``
    histogram: one reconcile, from reading the spec to the status write (trigger: change, deployment, timer).
``hermes_operator_reconcile_errors_total{reason}``
    counter: reconciles that could not do their job (reason: InvalidSpec, CapacityExceeded,
    ApplyFailed, RedisUnavailable, RedisPasswordUnavailable, Exception).
``hermes_operator_generation_switches_total{namespace, policy}``
    counter: cache-generation switches published (a ``spec.cacheVersion`` change applied); present
    at 0 from a policy's first reconcile, so ``increase()`` sees its first switch.
``hermes_operator_gpus_requested{namespace, policy}``
    gauge: GPUs the policy's Deployment asks for (replicas x tensorParallelSize; 0 when it does not fit).
"""

from __future__ import annotations

import contextlib
import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .status import CONDITION_STATUSES, CONDITION_TYPES

METRIC_NAMES = (
    "hermes_operator_policies",
    "hermes_operator_reconcile_duration_seconds",
    "hermes_operator_reconcile_errors_total",
    "hermes_operator_generation_switches_total",
    "hermes_operator_gpus_requested",
)


class OperatorMetrics:
    """The operator's metrics on their own registry (tests make one each; ``run`` serves one)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.policies = Gauge(
            "hermes_operator_policies",
            "Policies by condition and status",
            ["condition", "status"],
            registry=self.registry,
        )
        self.reconcile_duration = Histogram(
            "hermes_operator_reconcile_duration_seconds",
            "Duration of one reconcile",
            ["trigger"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.reconcile_errors = Counter(
            "hermes_operator_reconcile_errors",
            "Reconciles that could not do their job",
            ["reason"],
            registry=self.registry,
        )
        self.generation_switches = Counter(
            "hermes_operator_generation_switches",
            "Cache-generation switches published",
            ["namespace", "policy"],
            registry=self.registry,
        )
        self.gpus_requested = Gauge(
            "hermes_operator_gpus_requested",
            "GPUs requested by a policy's Deployment",
            ["namespace", "policy"],
            registry=self.registry,
        )
        self._conditions: dict[tuple[str, str], dict[str, str]] = {}
        # kopf runs sync handlers in a thread pool: reconciles of different policies update this at
        # once, and iterating it while another thread inserts raised "dictionary changed size".
        self._lock = threading.Lock()
        for ctype in CONDITION_TYPES:
            for status in CONDITION_STATUSES:
                self.policies.labels(ctype, status).set(0)

    def observe_policy(self, namespace: str, name: str, conditions: dict[str, str], gpus: int) -> None:
        with self._lock:
            self._conditions[(namespace, name)] = dict(conditions)
            self._recount()
        self.gpus_requested.labels(namespace, name).set(gpus)
        # The switch counter exists at 0 from the policy's first reconcile: increase() and rate() need
        # a sample before the first switch, or the first switch of every policy is invisible to them.
        self.generation_switches.labels(namespace, name)

    def forget_policy(self, namespace: str, name: str) -> None:
        with self._lock:
            self._conditions.pop((namespace, name), None)
            self._recount()
        for metric in (self.gpus_requested, self.generation_switches):
            with contextlib.suppress(KeyError):
                metric.remove(namespace, name)

    def _recount(self) -> None:  # with self._lock held
        counts = {(c, s): 0 for c in CONDITION_TYPES for s in CONDITION_STATUSES}
        for conds in self._conditions.values():
            for ctype, status in conds.items():
                if (ctype, status) in counts:
                    counts[(ctype, status)] += 1
        for (ctype, status), n in counts.items():
            self.policies.labels(ctype, status).set(n)
