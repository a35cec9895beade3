"""Similarity decay: the similarity an entry needs rises with its age (``cache.decay``).

An entry starts at ``cache.similarityThreshold`` and climbs towards ``decay.ceiling`` along its
*progress* ``p(age)`` in [0, 1]:

- ``halfLife``: ``p = 1 - 2 ** (-age / halfLifeSeconds)``: after one half-life the required
  similarity is halfway to the ceiling, after two three quarters;
- ``linear``: ``p = min(1, age / rampSeconds)``: the ceiling is reached after ``rampSeconds``.

``required(age) = threshold + (ceiling - threshold) * p``. Old answers are then served only to ever
closer questions; the miss that a too-distant question gets stores a fresh answer, so refreshes come
one neighbourhood at a time instead of all at the TTL.

Exact repeats have similarity 1 and no ramp that stops below 1 would ever refuse them. With
``decay.exact`` each entry gets a fixed point ``u`` in [0, 1) drawn from its key (uniform over keys),
and an exact repeat is refused once ``p(age) > u``: after one half-life half of the entries are
refreshed by their next exact repeat, and the refreshes are spread over the ramp.
"""

from __future__ import annotations

import hashlib
import math

from hermes_sidecar.config import DecayConfig

__all__ = ["DECAYED", "DECAYED_EXACT", "Decay"]

# Decision reasons of a miss that decay caused (hermes_cache_decay_refreshes_total{kind} on store).
DECAYED, DECAYED_EXACT = "decay", "decay-exact"


class Decay:
    def __init__(self, cfg: DecayConfig, threshold: float) -> None:
        self.cfg = cfg
        self.threshold = threshold
        self.enabled = cfg.mode != "off"

    def progress(self, age: float) -> float:
        """How far along the ramp an entry of ``age`` seconds is, 0 (fresh) to 1 (at the ceiling)."""
        age = max(0.0, age)
        if self.cfg.mode == "halfLife" and self.cfg.halfLifeSeconds is not None:
            return 1.0 - math.pow(2.0, -age / self.cfg.halfLifeSeconds)
        if self.cfg.mode == "linear" and self.cfg.rampSeconds is not None:
            return min(1.0, age / self.cfg.rampSeconds)
        return 0.0

    def required(self, age: float) -> float:
        """The cosine similarity a question needs to be served an entry of ``age`` seconds."""
        if not self.enabled:
            return self.threshold
        return self.threshold + (self.cfg.ceiling - self.threshold) * self.progress(age)

    def shift(self, age: float) -> float:
        """How much higher than the threshold the entry's bar is (also raises the verifier's gate)."""
        return self.required(age) - self.threshold

    @staticmethod
    def point(key: str) -> float:
        """The entry's fixed point on the ramp for exact repeats, uniform in [0, 1) over keys."""
        return int.from_bytes(hashlib.sha256(b"hermes-decay\0" + key.encode()).digest()[:8], "big") / 2.0**64

    def exact_refused(self, key: str, age: float) -> bool:
        """``decay.exact``: the exact repeat of the entry ``key``, ``age`` seconds old, is refused."""
        return self.enabled and self.cfg.exact and self.progress(age) > self.point(key)
