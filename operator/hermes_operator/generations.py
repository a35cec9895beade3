"""The generation store: the operator's side of the Redis contract in :mod:`hermes_sidecar.contract`.

The operator SETs and PUBLISHes a policy's generation record and reads the per-generation stats the
sidecars keep; :class:`GenerationStore` is that I/O (Redis in production, a dict in unit tests), and
:mod:`hermes_operator.cachegen` decides when to use it. Key names and the record's format come from
the sidecar's contract module, so the two sides cannot drift apart.
"""

from __future__ import annotations

from typing import Protocol
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import redis
from hermes_sidecar.contract import STAT_FIELDS, encode_record, policy_scope, record_key
from hermes_sidecar.contract import stats_key as scope_stats_key
from hermes_sidecar.errors import DependencyError

from .spec import redact

__all__ = [
    "STAT_FIELDS",
    "GenerationStore",
    "GenerationStoreError",
    "RedisGenerationStore",
    "generation_key",
    "generation_record",
    "stats_key",
    "url_with_password",
]

# The record as the operator writes it (the name bench/sidecar_path.py and the tests know it by).
generation_record = encode_record


def generation_key(namespace: str, policy: str) -> str:
    return record_key(policy_scope(namespace, policy))


def stats_key(namespace: str, policy: str, version: str) -> str:
    return scope_stats_key(policy_scope(namespace, policy), version)


class GenerationStoreError(DependencyError):
    """The shared store could not be reached or answered nonsense; the message says which."""


class GenerationStore(Protocol):
    """Where generation records and per-generation stats live (Redis in production)."""

    def read_generation(self, namespace: str, policy: str) -> str | None: ...

    def write_generation(self, namespace: str, policy: str, record: str) -> None: ...

    def read_stats(self, namespace: str, policy: str, version: str) -> dict[str, int]: ...


# What "this policy's Redis cannot be used" looks like from redis-py: its own errors, the socket's,
# and a URL whose host name cannot even be encoded (UnicodeError, a ValueError).
_UNREACHABLE = (redis.RedisError, OSError, ValueError)


class RedisGenerationStore:
    """:class:`GenerationStore` on one Redis (single server, Sentinel primary or managed)."""

    def __init__(self, url: str, timeout: float = 3.0) -> None:
        self.url = url
        self._bad_url: ValueError | None = None
        try:
            self._client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        except ValueError as exc:  # e.g. a port that is not a number: reported on use, like a dead host
            self._client, self._bad_url = redis.Redis(), exc

    def _fail(self, what: str, exc: Exception) -> GenerationStoreError:
        # ValueError too: a host name no resolver takes (a label over 63 characters) fails in the
        # idna codec with UnicodeError before any socket opens, and a policy's URL is user input.
        return GenerationStoreError(f"redis {redact(self.url)}: {what} failed: {exc}")

    def _check_url(self) -> None:
        if self._bad_url is not None:
            raise self._bad_url

    def read_generation(self, namespace: str, policy: str) -> str | None:
        try:
            self._check_url()
            value = self._client.get(generation_key(namespace, policy))
        except _UNREACHABLE as exc:
            raise self._fail("GET generation", exc) from None
        return value.decode() if isinstance(value, bytes) else None

    def write_generation(self, namespace: str, policy: str, record: str) -> None:
        key = generation_key(namespace, policy)
        try:
            # One MULTI: a sidecar that starts between the two commands still reads the new key.
            self._check_url()
            pipe = self._client.pipeline(transaction=True)
            pipe.set(key, record)
            pipe.publish(key, record)
            pipe.execute()
        except _UNREACHABLE as exc:
            raise self._fail("SET+PUBLISH generation", exc) from None

    def read_stats(self, namespace: str, policy: str, version: str) -> dict[str, int]:
        try:
            self._check_url()
            raw = self._client.hgetall(stats_key(namespace, policy, version))
        except _UNREACHABLE as exc:
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
