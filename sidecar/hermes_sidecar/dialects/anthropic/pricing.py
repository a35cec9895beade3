"""Anthropic price table and minimum cacheable prefix lengths, with a family fallback.

Prices are USD per million tokens, one column per billed token class, taken as published on
platform.claude.com (pricing page and model pages) and checked on :data:`PRICE_TABLE_VERSION`.
Cache multipliers are no longer one rule for every model (Fable 5.1 reads at 0.025x input, Sonnet
5.5 at 0.05x since 2026-10-07, Haiku 5.5 has a long-prompt band), so every model carries its own
five rates instead of a base price and multipliers.

A model id not in the table is resolved by family (opus, sonnet, haiku, fable, mythos) to that
family's current model and reported as ``known=False``, so a cost computed for it is never silently
presented as exact. Operators override or add rows with ``promptCache.prices`` in the config.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

PRICE_TABLE_VERSION = "2026-11-27"


@dataclass(frozen=True)
class Rates:
    """USD per million tokens for each billed token class."""

    input: float
    output: float
    cache_write_5m: float
    cache_write_1h: float
    cache_read: float


@dataclass(frozen=True)
class ModelPrice:
    """Rates of one model; ``long_prompt`` applies to every token of a request whose prompt (input +
    cache writes + cache reads) exceeds ``long_prompt_threshold`` tokens (Haiku 5.5)."""

    rates: Rates
    long_prompt: Rates | None = None
    long_prompt_threshold: int | None = None

    def rates_for(self, prompt_tokens: int) -> Rates:
        threshold = self.long_prompt_threshold
        if self.long_prompt is not None and threshold is not None and prompt_tokens > threshold:
            return self.long_prompt
        return self.rates


def _r(inp: float, out: float, w5: float, w1h: float, read: float) -> Rates:
    return Rates(input=inp, output=out, cache_write_5m=w5, cache_write_1h=w1h, cache_read=read)


# Canonical model id -> price. Aliases and dated snapshots resolve to these through _canonical().
DEFAULT_PRICES: dict[str, ModelPrice] = {
    "claude-fable-5-2": ModelPrice(_r(8, 40, 10, 16, 0.20)),
    "claude-fable-5-1": ModelPrice(_r(10, 50, 12.50, 20, 0.25)),
    "claude-mythos-5-1": ModelPrice(_r(10, 50, 12.50, 20, 0.25)),
    "claude-fable-5": ModelPrice(_r(10, 50, 12.50, 20, 1.00)),
    "claude-mythos-5": ModelPrice(_r(10, 50, 12.50, 20, 1.00)),
    "claude-opus-5-5": ModelPrice(_r(4, 20, 5, 8, 0.20)),
    "claude-opus-5": ModelPrice(_r(5, 25, 6.25, 10, 0.50)),
    "claude-opus-4-8": ModelPrice(_r(5, 25, 6.25, 10, 0.50)),
    "claude-opus-4-7": ModelPrice(_r(5, 25, 6.25, 10, 0.50)),
    "claude-opus-4-6": ModelPrice(_r(5, 25, 6.25, 10, 0.50)),
    "claude-opus-4-5": ModelPrice(_r(5, 25, 6.25, 10, 0.50)),
    "claude-opus-4-1": ModelPrice(_r(15, 75, 18.75, 30, 1.50)),
    "claude-opus-4": ModelPrice(_r(15, 75, 18.75, 30, 1.50)),
    "claude-sonnet-5-5": ModelPrice(_r(2, 10, 2.50, 4, 0.10)),
    "claude-sonnet-5": ModelPrice(_r(2, 10, 2.50, 4, 0.20)),
    "claude-sonnet-4-6": ModelPrice(_r(3, 15, 3.75, 6, 0.30)),
    "claude-sonnet-4-5": ModelPrice(_r(3, 15, 3.75, 6, 0.30)),
    "claude-sonnet-4": ModelPrice(_r(3, 15, 3.75, 6, 0.30)),
    "claude-haiku-5-5": ModelPrice(
        _r(0.10, 0.50, 0.125, 0.20, 0.01),
        long_prompt=_r(0.50, 2.50, 0.625, 1.00, 0.05),
        long_prompt_threshold=100_000,
    ),
    "claude-haiku-4-5": ModelPrice(_r(1, 5, 1.25, 2, 0.10)),
}

# The family's current model: what an unknown id of that family is priced as (and flagged).
FAMILY_DEFAULT: dict[str, str] = {
    "fable": "claude-fable-5-2",
    "mythos": "claude-mythos-5-1",
    "opus": "claude-opus-5-5",
    "sonnet": "claude-sonnet-5-5",
    "haiku": "claude-haiku-5-5",
}
# An id that names no family at all is priced as this one (and flagged).
UNKNOWN_FAMILY_DEFAULT = "claude-sonnet-5-5"

# Minimum cacheable prefix in tokens, as published. Below it a breakpoint silently caches nothing.
DEFAULT_MIN_CACHEABLE: dict[str, int] = {
    "claude-fable-5-1": 512,
    "claude-mythos-5-1": 512,
    "claude-fable-5": 512,
    "claude-mythos-5": 512,
    "claude-opus-5": 512,
    "claude-opus-4-8": 1024,
    "claude-opus-4-7": 2048,
    "claude-opus-4-6": 4096,
    "claude-opus-4-5": 4096,
    "claude-opus-4-1": 1024,
    "claude-opus-4": 1024,
    "claude-sonnet-5": 1024,
    "claude-sonnet-4-6": 1024,
    "claude-sonnet-4-5": 1024,
    "claude-sonnet-4": 1024,
    "claude-haiku-4-5": 4096,
}
# Newest model of each family whose minimum is published; used for ids not listed above. A guess
# that is too high only skips a breakpoint, one that is too low only wastes a breakpoint slot.
FAMILY_MIN_CACHEABLE: dict[str, int] = {
    "fable": 512,
    "mythos": 512,
    "opus": 512,
    "sonnet": 1024,
    "haiku": 4096,
}
UNKNOWN_MIN_CACHEABLE = 4096

_FAMILY_RE = re.compile(r"(fable|mythos|opus|sonnet|haiku)")
_DATE_SUFFIX_RE = re.compile(r"-\d{8}$")


def canonical_model(model: str) -> str:
    """``claude-haiku-4-5-20251001``, ``anthropic.claude-opus-4-8-v1:0``, ``claude-opus-4-8@20260101``,
    ``claude-sonnet-5[1m]`` -> the table id (``claude-haiku-4-5`` ...)."""
    m = model.strip().lower()
    m = m.split("/")[-1]  # gateway prefixes such as "anthropic/"
    m = m.split("[")[0]  # context-window variants such as "[1m]" are priced alike
    m = m.split("@")[0]  # Vertex snapshot suffix
    if m.startswith("anthropic."):  # Bedrock: anthropic.claude-...-v1:0
        m = m[len("anthropic.") :]
        m = re.sub(r"-v\d+(:\d+)?$", "", m)
    for region in ("us.", "eu.", "apac.", "global."):
        if m.startswith(region + "anthropic."):
            m = re.sub(r"-v\d+(:\d+)?$", "", m[len(region) + len("anthropic.") :])
    return _DATE_SUFFIX_RE.sub("", m)


def model_family(model: str) -> str:
    found = _FAMILY_RE.search(canonical_model(model))
    return found.group(1) if found else "unknown"


@dataclass(frozen=True)
class PriceLookup:
    model: str  # the canonical id the price was taken from
    price: ModelPrice
    known: bool  # False: priced by family fallback; the cost is an estimate
    family: str


class PriceTable:
    """Versioned prices and minimum cacheable lengths; ``overrides`` replace or add rows."""

    def __init__(
        self,
        prices: Mapping[str, ModelPrice] | None = None,
        min_cacheable: Mapping[str, int] | None = None,
        version: str = PRICE_TABLE_VERSION,
    ) -> None:
        self.version = version
        self._prices: dict[str, ModelPrice] = dict(DEFAULT_PRICES)
        for model, price in (prices or {}).items():
            self._prices[canonical_model(model)] = price
        self._min: dict[str, int] = dict(DEFAULT_MIN_CACHEABLE)
        for model, tokens in (min_cacheable or {}).items():
            self._min[canonical_model(model)] = tokens

    def lookup(self, model: str) -> PriceLookup:
        canon = canonical_model(model)
        family = model_family(canon)
        if canon in self._prices:
            return PriceLookup(canon, self._prices[canon], True, family)
        fallback = FAMILY_DEFAULT.get(family, UNKNOWN_FAMILY_DEFAULT)
        return PriceLookup(fallback, self._prices[fallback], False, family)

    def min_cacheable_tokens(self, model: str) -> tuple[int, bool]:
        """The minimum cacheable prefix for ``model`` and whether it is published (not a fallback)."""
        canon = canonical_model(model)
        if canon in self._min:
            return self._min[canon], True
        return FAMILY_MIN_CACHEABLE.get(model_family(canon), UNKNOWN_MIN_CACHEABLE), False
