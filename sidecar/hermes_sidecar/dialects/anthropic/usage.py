"""Token usage of one Messages call and what it cost and saved.

Billing classes (disjoint, so nothing is counted twice): ``input`` is the uncached input after the
last cache breakpoint, ``cache_write_5m``/``cache_write_1h`` the prefix tokens written to the prompt
cache, ``cache_read`` the prefix tokens read from it, ``output`` the generated tokens. Anthropic's
``usage`` gives exactly these: ``input_tokens`` excludes the cache counters, and the total prompt
is their sum.

When streaming, ``message_start`` carries the input-side counters and ``message_delta`` carries
*cumulative* counts (``output_tokens`` always; the input-side fields too on newer API versions).
:class:`StreamUsage` therefore lets later values replace earlier ones and never adds them up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hermes_sidecar.dialects.anthropic.pricing import ModelPrice, Rates

TOKEN_CLASSES = ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")


@dataclass(frozen=True)
class Usage:
    input: int = 0
    output: int = 0
    cache_write_5m: int = 0
    cache_write_1h: int = 0
    cache_read: int = 0

    @property
    def prompt_tokens(self) -> int:
        return self.input + self.cache_write_5m + self.cache_write_1h + self.cache_read

    def by_class(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in TOKEN_CLASSES}


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return max(0, int(value))


def usage_from_json(usage: Mapping[str, Any] | None) -> Usage:
    """Read Anthropic's ``usage`` object. When ``cache_creation`` (the TTL split) is missing but
    ``cache_creation_input_tokens`` is not, the writes are taken as 5-minute ones: the default TTL,
    and the cheaper reading, so cost is never overstated by a guess."""
    if not usage:
        return Usage()
    written = _int(usage.get("cache_creation_input_tokens")) or 0
    split = usage.get("cache_creation")
    w5 = w1h = None
    if isinstance(split, Mapping):
        w5 = _int(split.get("ephemeral_5m_input_tokens"))
        w1h = _int(split.get("ephemeral_1h_input_tokens"))
    if w5 is None and w1h is None:
        w5, w1h = written, 0
    return Usage(
        input=_int(usage.get("input_tokens")) or 0,
        output=_int(usage.get("output_tokens")) or 0,
        cache_write_5m=w5 or 0,
        cache_write_1h=w1h or 0,
        cache_read=_int(usage.get("cache_read_input_tokens")) or 0,
    )


class StreamUsage:
    """Collects usage from a Messages event stream: ``message_start`` then ``message_delta``s."""

    _FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")

    def __init__(self) -> None:
        self._raw: dict[str, Any] = {}
        self.seen_start = False

    def observe(self, event: Mapping[str, Any]) -> None:
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message")
            usage = message.get("usage") if isinstance(message, Mapping) else None
            if isinstance(usage, Mapping):
                self._merge(usage)
            self.seen_start = True
        elif kind == "message_delta":
            usage = event.get("usage")
            if isinstance(usage, Mapping):
                self._merge(usage)

    def _merge(self, usage: Mapping[str, Any]) -> None:
        # Cumulative counts: a later non-null value replaces the earlier one.
        for key in self._FIELDS:
            if usage.get(key) is not None:
                self._raw[key] = usage[key]
        if isinstance(usage.get("cache_creation"), Mapping):
            self._raw["cache_creation"] = usage["cache_creation"]

    def usage(self) -> Usage:
        return usage_from_json(self._raw)

    def raw(self) -> dict[str, Any]:
        return dict(self._raw)


@dataclass(frozen=True)
class Bill:
    """USD for one call. ``cost`` is what was billed; ``uncached_cost`` what the same call would have
    cost without prompt caching; ``saved`` is their difference (negative on a call that only wrote);
    ``write_premium`` is the part of ``cost`` paid above base input price for cache writes."""

    cost: float
    uncached_cost: float
    write_premium: float
    read_discount: float

    @property
    def saved(self) -> float:
        return self.uncached_cost - self.cost


def _usd(tokens: int, per_mtok: float) -> float:
    return tokens * per_mtok / 1_000_000


def bill(usage: Usage, price: ModelPrice) -> Bill:
    # The long-prompt band depends on the whole prompt, which is the same with or without caching,
    # so the uncached comparison uses the same band.
    r: Rates = price.rates_for(usage.prompt_tokens)
    cost = (
        _usd(usage.input, r.input)
        + _usd(usage.output, r.output)
        + _usd(usage.cache_write_5m, r.cache_write_5m)
        + _usd(usage.cache_write_1h, r.cache_write_1h)
        + _usd(usage.cache_read, r.cache_read)
    )
    uncached = _usd(usage.prompt_tokens, r.input) + _usd(usage.output, r.output)
    premium = _usd(usage.cache_write_5m, r.cache_write_5m - r.input) + _usd(
        usage.cache_write_1h, r.cache_write_1h - r.input
    )
    discount = _usd(usage.cache_read, r.input - r.cache_read)
    return Bill(cost=cost, uncached_cost=uncached, write_premium=premium, read_discount=discount)
