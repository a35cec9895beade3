"""The ``hermes_prompt_cache_*`` metrics: what Anthropic calls cost, and what the caches saved.

Two callers feed it: :class:`~hermes_sidecar.dialects.anthropic.transport.AnthropicTransport` with
every billed upstream call (miss, bypass, error, on every route), and the dialect with every
semantic-cache hit, accounted as a whole avoided call: zero cost, zero billed tokens, and the full
uncached price of the stored call as saved.

Savings and counters. ``hermes_prompt_cache_saved_usd_total`` is the saving against the same traffic
without caching, with write premiums subtracted. A call that only writes has a negative saving
(the 25% or 100% premium), which a Prometheus counter cannot record, so the premium is held as
``hermes_prompt_cache_unrecovered_premium_usd`` (a gauge) and taken out of the next savings before
they are counted. At every moment ``saved_usd_total - unrecovered_premium_usd`` is exactly the net
saving of all traffic seen; the counter never shows a saving that the premiums have not yet
paid for.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

from hermes_sidecar.config import ModelPriceConfig, PromptCacheConfig
from hermes_sidecar.dialects.anthropic.pricing import PRICE_TABLE_VERSION, ModelPrice, PriceTable, Rates
from hermes_sidecar.dialects.anthropic.usage import Usage, bill

__all__ = ["PromptCacheAccounting", "price_table_from_config"]

log = logging.getLogger("hermes_sidecar.anthropic")


def price_table_from_config(cfg: PromptCacheConfig) -> PriceTable:
    def rates(p: ModelPriceConfig) -> Rates:
        return Rates(p.input, p.output, p.cacheWrite5m, p.cacheWrite1h, p.cacheRead)

    prices = {
        model: ModelPrice(
            rates(p),
            long_prompt=rates(p.longPrompt) if p.longPrompt else None,
            long_prompt_threshold=p.longPromptThresholdTokens,
        )
        for model, p in cfg.prices.items()
    }
    return PriceTable(prices, cfg.minCacheableTokens, cfg.priceTableVersion or PRICE_TABLE_VERSION)


class PromptCacheAccounting:
    """The ``hermes_prompt_cache_*`` metrics, labelled by tenant. One instance per registry; thread-safe."""

    def __init__(
        self,
        prices: PriceTable,
        registry: CollectorRegistry | None = None,
        *,
        tenant_label: Callable[[str], str] | None = None,
    ) -> None:
        registry = registry if registry is not None else REGISTRY
        self.prices = prices
        # tenant id -> label value; the sidecar passes its capped, credential-safe mapping
        self._tenant_label = tenant_label or (lambda tenant: tenant)
        self._lock = threading.Lock()
        self._warned: set[str] = set()
        self._debt: dict[str, float] = {}

        def counter(name: str, doc: str, labels: tuple[str, ...] = ("tenant",)) -> Counter:
            return Counter(name, doc, list(labels), registry=registry)

        self.tokens = counter(
            "hermes_prompt_cache_tokens",
            "Anthropic tokens billed, by class: input (uncached, after the last breakpoint), output, "
            "cache_write_5m, cache_write_1h, cache_read. Classes are disjoint.",
            ("class", "tenant"),
        )
        self.cost = counter(
            "hermes_prompt_cache_cost_usd", "USD billed for Anthropic calls, from usage and the price table"
        )
        self.uncached = counter(
            "hermes_prompt_cache_uncached_cost_usd",
            "USD the same calls would have cost without prompt caching (semantic-cache hits included)",
        )
        self.saved = counter(
            "hermes_prompt_cache_saved_usd",
            "USD saved against the same traffic without caching, write premiums subtracted; premiums "
            "not yet earned back are held in hermes_prompt_cache_unrecovered_premium_usd",
        )
        self.unrecovered = Gauge(
            "hermes_prompt_cache_unrecovered_premium_usd",
            "Cache-write premiums not yet earned back by savings; net saving = saved_usd_total minus this",
            ["tenant"],
            registry=registry,
        )
        self.premium = counter(
            "hermes_prompt_cache_write_premium_usd",
            "USD paid above the base input price for prompt-cache writes",
        )
        self.semantic_saved = counter(
            "hermes_prompt_cache_semantic_hit_saved_usd",
            "Part of hermes_prompt_cache_saved_usd_total from semantic-cache hits (whole calls avoided)",
        )
        self.unpriced = counter(
            "hermes_prompt_cache_unpriced_calls",
            "Calls to a model missing from the price table, priced as the current model of its family",
            ("family",),
        )
        self.placed = counter(
            "hermes_prompt_cache_breakpoints_placed",
            "Breakpoints the sidecar added, by place and TTL",
            ("place", "ttl"),
        )
        self.skipped = counter(
            "hermes_prompt_cache_breakpoints_skipped",
            "Configured breakpoints not placed, by place and reason",
            ("place", "reason"),
        )
        info = Gauge(
            "hermes_prompt_cache_price_table_info",
            "Version of the price table in use",
            ["version"],
            registry=registry,
        )
        info.labels(version=prices.version).set(1)

    def _price(self, model: str) -> ModelPrice:
        found = self.prices.lookup(model)
        if not found.known:
            self.unpriced.labels(family=found.family).inc()
            if model not in self._warned and len(self._warned) < 1000:
                self._warned.add(model)
                log.warning(
                    "model %r is not in price table %s; priced as %s (family %s) until promptCache.prices "
                    "lists it",
                    model,
                    self.prices.version,
                    found.model,
                    found.family,
                )
        return found.price

    def _count_saving(self, tenant: str, saving: float) -> None:
        with self._lock:
            debt = self._debt.get(tenant, 0.0)
            if saving < 0:
                debt -= saving
            else:
                repaid = min(saving, debt)
                debt -= repaid
                if saving > repaid:
                    self.saved.labels(tenant=tenant).inc(saving - repaid)
            self._debt[tenant] = debt
            self.unrecovered.labels(tenant=tenant).set(debt)

    def record_call(self, model: str, usage: Usage, *, tenant: str = "") -> None:
        tenant = self._tenant_label(tenant)
        """An upstream call that was billed: count its tokens, cost and saving once."""
        for name, value in usage.by_class().items():
            if value:
                self.tokens.labels(**{"class": name, "tenant": tenant}).inc(value)
        b = bill(usage, self._price(model))
        self.cost.labels(tenant=tenant).inc(b.cost)
        self.uncached.labels(tenant=tenant).inc(b.uncached_cost)
        if b.write_premium:
            self.premium.labels(tenant=tenant).inc(b.write_premium)
        self._count_saving(tenant, b.saved)

    def record_avoided_call(self, model: str, usage: Usage, *, tenant: str = "") -> None:
        tenant = self._tenant_label(tenant)
        """A semantic-cache hit: nothing billed, the whole call at its uncached price saved."""
        b = bill(usage, self._price(model))
        self.cost.labels(tenant=tenant).inc(0)
        self.uncached.labels(tenant=tenant).inc(b.uncached_cost)
        self.semantic_saved.labels(tenant=tenant).inc(b.uncached_cost)
        self._count_saving(tenant, b.uncached_cost)

    def record_placement(self, placed: list[tuple[str, str]], skipped: list[tuple[str, str]]) -> None:
        for place, ttl in placed:
            self.placed.labels(place=place, ttl=ttl).inc()
        for place, reason in skipped:
            self.skipped.labels(place=place, reason=reason).inc()
