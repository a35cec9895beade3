"""Prometheus metrics of the sidecar. Contract names: ``hermes_cache_requests_total{result}``
(also labelled ``tenant``), ``hermes_cache_lookup_seconds``, ``hermes_cache_entries``; the rest are
``hermes_cache_*`` extras.

Each app gets its own registry (tests run several apps in one process); ``/metrics`` serves it.

Tenant labels: the tenant id the cache partitions by (``keys.tenant_of``: ``h:<header value>``,
``c:<credential hash>``, both, or ``anonymous``). Clients choose how many distinct values arrive, so
only the first ``max_tenants`` get their own series; later ones are counted as ``other`` (a value no
tenant id can take, as every id has a prefix). Values are bounded in length, and a tenant header that
carries a credential is hashed, so no label ever holds a secret.
"""

from __future__ import annotations

import hashlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

RESULTS = ("hit_exact", "hit_semantic", "miss", "bypass", "error")
OTHER_TENANT = "other"
# Headers whose value is a credential: a tenant header of that name must not appear in a label.
_CREDENTIAL_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "proxy-authorization", "cookie"})
_MAX_LABEL_CHARS = 64


def _digest(text: str, n: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


class Metrics:
    def __init__(self, *, max_tenants: int = 100, tenant_header: str = "x-tenant-id") -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.max_tenants = max_tenants
        self._hash_header = tenant_header.lower() in _CREDENTIAL_HEADERS
        self._tenant_labels: dict[str, str] = {}  # admitted tenant id -> its label value
        self._series: set[tuple[str, str]] = set()  # (tenant label, variant) with every result created
        self.requests = Counter(
            "hermes_cache_requests",
            "Cacheable requests by cache result, tenant (beyond metrics.maxTenants tenants: 'other') and "
            "experiment variant ('default' without one, 'unknown' for a value outside experiment.variants)",
            ["result", "tenant", "variant"],
            registry=r,
        )
        self.tenant_overflow = Counter(
            "hermes_cache_tenant_label_overflow",
            "Requests counted under tenant='other' because metrics.maxTenants tenants had their own label",
            registry=r,
        )
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
            "Cache failures that made a request pass through (verifier: decided without it)",
            ["component"],
            registry=r,
        )
        self.guard_rejections = Counter(
            "hermes_cache_guard_rejections",
            "Semantic candidates refused by the guard, by rule",
            ["rule"],
            registry=r,
        )
        self.verifier_seconds = Histogram(
            "hermes_cache_verifier_seconds",
            "Time of one call to the verifier (all candidates of a lookup in one call)",
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=r,
        )
        self.verifier_scores = Histogram(
            "hermes_cache_verifier_score",
            "Scores the verifier gave semantic candidates (served at or above guard.verifier.minScore)",
            buckets=(0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95),
            registry=r,
        )
        # What the verifier costs (cache.guard.verifier.kind: rerank | served-model).
        self.verifier_calls = Counter(
            "hermes_cache_verifier_calls",
            "Lookups that asked the verifier, by kind and outcome (ok; error: decided by onError)",
            ["kind", "outcome"],
            registry=r,
        )
        self.verifier_request_seconds = Histogram(
            "hermes_cache_verifier_request_seconds",
            "One HTTP request to the verifier (served-model: one per candidate, sent together; rerank: "
            "one per lookup)",
            ["kind"],
            buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        self.verifier_tokens = Counter(
            "hermes_cache_verifier_tokens",
            "Tokens the verifier's answers report in usage, by kind and type (prompt, completion; "
            "cached: prompt tokens vLLM took from its prefix cache, when it reports them)",
            ["kind", "type"],
            registry=r,
        )
        self.verifier_unjudged = Counter(
            "hermes_cache_verifier_unjudged",
            "served-model answers whose top logprobs held neither yes nor no (scored 0: not served)",
            registry=r,
        )
        self.verifier_skipped = Counter(
            "hermes_cache_verifier_skipped",
            "Semantic hits served without asking the verifier (scope uncertain: cosine and the rules "
            "alone serve them)",
            registry=r,
        )
        # Similarity decay (cache.decay) and tool plans (cache.toolPlans).
        self.served_age = Histogram(
            "hermes_cache_served_age_seconds",
            "Age of the entries served (exact and semantic hits): how old the answers users get are",
            buckets=(1, 10, 60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400, 259200, 604800),
            registry=r,
        )
        self.decay_refreshes = Counter(
            "hermes_cache_decay_refreshes",
            "Fresh answers stored after a miss that similarity decay caused (kind semantic: a candidate "
            "too old for the question's similarity; exact: an exact repeat refused by cache.decay.exact)",
            ["kind"],
            registry=r,
        )
        self.tool_plan_requests = Counter(
            "hermes_cache_tool_plan_requests",
            "Live-data questions of tool-using agents decided by cache.toolPlans instead of passed "
            "through, by stage (plan: ends with the question; results: ends with tool results) and result",
            ["stage", "result"],
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

    # -- tenant label ------------------------------------------------------------------------------

    def _label_value(self, tenant: str) -> str:
        if self._hash_header and tenant.startswith("h:"):
            # tenantHeader names a credential header: its raw value is a secret
            return "h:sha256:" + _digest(tenant, 24)
        if len(tenant) > _MAX_LABEL_CHARS:
            # keep it readable and distinct, but bounded: a header can be kilobytes long
            return tenant[: _MAX_LABEL_CHARS - 17] + "~" + _digest(tenant, 16)
        return tenant

    def tenant_label(self, tenant: str) -> str:
        """The ``tenant`` label value for a tenant id: its own while fewer than ``max_tenants`` have
        one, else ``other``. The first tenants seen keep their series for the life of the process."""
        label = self._tenant_labels.get(tenant)
        if label is not None:
            return label
        label = OTHER_TENANT if len(self._tenant_labels) >= self.max_tenants else self._label_value(tenant)
        if label != OTHER_TENANT:
            self._tenant_labels[tenant] = label
        return label

    def count_request(self, result: str, tenant: str, variant: str = "default") -> None:
        """One cacheable request answered with ``result`` (one of RESULTS) for ``tenant`` in the
        experiment ``variant`` (a label value from a bounded set: the configured names, ``default``,
        ``unknown``)."""
        label = self.tenant_label(tenant)
        if label == OTHER_TENANT:
            self.tenant_overflow.inc()
        if (label, variant) not in self._series:
            self._series.add((label, variant))
            # every result at 0 from the first request on, so a hit ratio is 0 rather than absent
            for r in RESULTS:
                self.requests.labels(r, label, variant)
        self.requests.labels(result, label, variant).inc()

    # -- generation --------------------------------------------------------------------------------

    def serve_generation(self, version: str, uid: str) -> None:
        """``hermes_cache_generation_info{version,uid}`` = 1 for the generation served, and no other
        label set: the collapse alert counts distinct versions per policy."""
        # No await between the two: a scrape never sees zero or two generations.
        self.generation.clear()
        self.generation.labels(version, uid).set(1)
