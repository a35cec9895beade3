"""The cache decision and its dependencies' breakers::

decision  Decision and its results (hit-exact, hit-semantic, miss, bypass, error)
service   CacheService: bypass rules, exact and semantic lookup with the guard, storing answers
breaker   one circuit breaker per dependency (store, embedder, verifier) and the probe behind them
"""

from hermes_sidecar.cache.breaker import Breakers
from hermes_sidecar.cache.decision import BYPASS, ERROR, HIT_EXACT, HIT_SEMANTIC, MISS, Decision
from hermes_sidecar.cache.service import CacheService

__all__ = ["BYPASS", "ERROR", "HIT_EXACT", "HIT_SEMANTIC", "MISS", "Breakers", "CacheService", "Decision"]
