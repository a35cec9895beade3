"""Prometheus metrics of the sidecar. Contract names: ``hermes_cache_requests_total{result}``,
``hermes_cache_lookup_seconds``, ``hermes_cache_entries``; the rest are ``hermes_cache_*`` extras.

Each app gets its own registry (tests run several apps in one process); ``/metrics`` serves it.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

RESULTS = ("hit_exact", "hit_semantic", "miss", "bypass", "error")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "hermes_cache_requests", "Cacheable requests by cache result", ["result"], registry=r
        )
        for result in RESULTS:
            self.requests.labels(result)
        self.lookup_seconds = Histogram(
            "hermes_cache_lookup_seconds",
            "Time to decide hit or miss (exact lookup, embedding, vector search, guard)",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=r,
        )
        self.entries = Gauge("hermes_cache_entries", "Entries of the generation being served", registry=r)
        self.generation_entries = Gauge(
            "hermes_cache_generation_entries",
            "Entries per cache generation still in the store",
            ["generation"],
            registry=r,
        )
        self.hit_similarity = Histogram(
            "hermes_cache_hit_similarity",
            "Cosine similarity of served semantic hits",
            buckets=(0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.98, 1.0),
            registry=r,
        )
        self.generation = Gauge(
            "hermes_cache_generation_info",
            "The cache generation being served (value 1)",
            ["version", "uid"],
            registry=r,
        )
        self.generation_switches = Counter(
            "hermes_cache_generation_switches", "Generation switches applied", registry=r
        )
        self.bypass = Counter(
            "hermes_cache_bypass", "Requests passed through, by reason", ["reason"], registry=r
        )
        self.errors = Counter(
            "hermes_cache_errors",
            "Cache failures that made a request pass through",
            ["component"],
            registry=r,
        )
        self.guard_rejections = Counter(
            "hermes_cache_guard_rejections",
            "Semantic candidates refused by the guard, by rule",
            ["rule"],
            registry=r,
        )
        self.semantic_refusals = Counter(
            "hermes_cache_semantic_refusals",
            "Requests limited to exact reuse, by reason",
            ["reason"],
            registry=r,
        )
        self.stored = Counter("hermes_cache_stored", "Answers stored", registry=r)
        self.not_stored = Counter(
            "hermes_cache_not_stored", "Answers not stored, by reason", ["reason"], registry=r
        )
        self.deleted = Counter(
            "hermes_cache_deleted_entries",
            "Entries deleted by invalidation, by reason",
            ["reason"],
            registry=r,
        )
        self.prefix_resets = Counter(
            "hermes_cache_prefix_cache_resets",
            "vLLM /reset_prefix_cache calls after a generation switch, by outcome",
            ["outcome"],
            registry=r,
        )
        self.degraded = Gauge(
            "hermes_cache_degraded",
            "1 while a cache component is down (requests pass through)",
            ["component"],
            registry=r,
        )
        for comp in ("store", "embedder"):
            self.degraded.labels(comp).set(0)
