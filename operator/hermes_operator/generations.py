"""Cache generations: the record the operator writes and the per-generation stats the sidecars keep.

A generation is ``(policy uid, spec.cacheVersion)``. Contracts with the sidecar (ARCHITECTURE.md):

* ``hermes:{namespace}/{policy}:generation`` holds the JSON record ``{"version", "uid",
  "switchedAt"}``; the operator SETs it and PUBLISHes the same JSON on the channel of the same name.
  Sidecars read the key at start-up and follow the channel, so every pod switches at once and no pod
  restarts.
* ``hermes:{namespace}/{policy}:stats:{version}`` is a hash of integer counters the sidecars HINCRBY:
  ``hit_exact``, ``hit_semantic``, ``miss``, ``bypass``, ``error`` and ``entries``. The operator
  reads it on its drift pass into ``status.semanticCache``.
"""

from __future__ import annotations

import json
from typing import Protocol
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import redis

from .spec import redact

__all__ = [
    "STAT_FIELDS",
    "GenerationStore",
    "GenerationStoreError",
    "RedisGenerationStore",
    "generation_key",
    "generation_record",
    "redact",
    "stats_key",
    "summarize_stats",
    "url_with_password",
]

STAT_FIELDS = ("hit_exact", "hit_semantic", "miss", "bypass", "error", "entries")


def generation_key(namespace: str, policy: str) -> str:
    return f"hermes:{namespace}/{policy}:generation"


def stats_key(namespace: str, policy: str, version: str) -> str:
    return f"hermes:{namespace}/{policy}:stats:{version}"


def generation_record(version: str, uid: str, switched_at: str) -> str:
    return json.dumps({"version": version, "uid": uid, "switchedAt": switched_at}, separators=(",", ":"))


class GenerationStoreError(RuntimeError):
    """The shared store could not be reached or answered nonsense; the message says which."""


class GenerationStore(Protocol):
    """Where generation records and per-generation stats live (Redis in production)."""

    def read_generation(self, namespace: str, policy: str) -> str | None: ...

    def write_generation(self, namespace: str, policy: str, record: str) -> None: ...

    def read_stats(self, namespace: str, policy: str, version: str) -> dict[str, int]: ...


class RedisGenerationStore:
    """:class:`GenerationStore` on one Redis (single server, Sentinel primary or managed)."""

    def __init__(self, url: str, timeout: float = 3.0) -> None:
        self.url = url
        self._client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)

    def _fail(self, what: str, exc: Exception) -> GenerationStoreError:
        return GenerationStoreError(f"redis {redact(self.url)}: {what} failed: {exc}")

    def read_generation(self, namespace: str, policy: str) -> str | None:
        try:
            value = self._client.get(generation_key(namespace, policy))
        except redis.RedisError as exc:
            raise self._fail("GET generation", exc) from None
        return value.decode() if isinstance(value, bytes) else None

    def write_generation(self, namespace: str, policy: str, record: str) -> None:
        key = generation_key(namespace, policy)
        try:
            # One MULTI: a sidecar that starts between the two commands still reads the new key.
            pipe = self._client.pipeline(transaction=True)
            pipe.set(key, record)
            pipe.publish(key, record)
            pipe.execute()
        except redis.RedisError as exc:
            raise self._fail("SET+PUBLISH generation", exc) from None

    def read_stats(self, namespace: str, policy: str, version: str) -> dict[str, int]:
        try:
            raw = self._client.hgetall(stats_key(namespace, policy, version))
        except redis.RedisError as exc:
            raise self._fail("HGETALL stats", exc) from None
        out: dict[str, int] = {}
        for k, v in raw.items():
            name = k.decode() if isinstance(k, bytes) else str(k)
            if name in STAT_FIELDS:
                try:
                    out[name] = int(v)
                except ValueError:
                    continue  # a counter the sidecar never wrote as an integer is not ours to trust
        return out

    def close(self) -> None:
        self._client.close()


def url_with_password(url: str, password: str) -> str:
    """``url`` with ``password`` added, for the operator's own client (the policy keeps it in a Secret).

    redis:// and rediss:// take it in the authority (percent-encoded; a user name already there is
    kept, for Redis ACL users), unix:// as the ``password`` query parameter, as redis-py reads them.
    """
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"{url}{'&' if parts.query else '?'}{urlencode({'password': password})}"
    user = parts.netloc.rpartition("@")[0].split(":", 1)[0] if "@" in parts.netloc else ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{host}"))


def summarize_stats(stats: dict[str, int]) -> dict[str, object]:
    """``status.semanticCache``: hit rate over cache lookups (hits / (hits + misses)), as a string.

    Bypassed requests (not cacheable: streaming errors, uncacheable sampling...) and errors count in
    ``requests`` but not in the hit rate, which is the quantity a threshold change moves.
    """
    hits = stats.get("hit_exact", 0) + stats.get("hit_semantic", 0)
    lookups = hits + stats.get("miss", 0)
    requests = lookups + stats.get("bypass", 0) + stats.get("error", 0)
    return {
        "hitRate": f"{hits / lookups:.3f}" if lookups else "",
        "requests": requests,
        "entries": stats.get("entries", 0),
    }
