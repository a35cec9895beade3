"""The generation record: written by the operator, read by every sidecar (one definition for both).

A policy's *scope* is ``{namespace}/{policy}`` (the operator renders it into the sidecar's
``cache.scope``). In the scope's Redis:

* ``hermes:{scope}:generation`` holds the JSON record ``{"version", "uid", "switchedAt"}``. The
  operator SETs it and PUBLISHes the same JSON on the channel of the same name (:func:`record_key`
  names both), in one MULTI; sidecars read the key at start-up and follow the channel.
* ``hermes:{scope}:stats:{version}`` is a hash of integer counters the sidecars HINCRBY
  (:data:`STAT_FIELDS`; the background deletion of an old generation adds ``removed``). The operator
  reads it on its drift pass into ``status.semanticCache``.

The operator imports this module; it imports nothing of either side, so neither pulls in the other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from hermes_sidecar.errors import HermesError

# The producer fingerprint (hermes_operator.fingerprint) in the sidecar container's environment: set
# per pod by the operator, read by the sidecar (tenants.Tenancy), winning over the config's `producer`.
PRODUCER_ENV = "HERMES_PRODUCER"


class RecordError(HermesError, ValueError):
    """Text that is not a generation record (a ValueError, as JSON's own errors are)."""


__all__ = [
    "PRODUCER_ENV",
    "STAT_FIELDS",
    "GenerationRecord",
    "encode_record",
    "parse_record",
    "policy_scope",
    "record_key",
    "stats_key",
]

# The counters of a stats hash the operator reports (request results plus the entry count).
STAT_FIELDS = ("hit_exact", "hit_semantic", "miss", "bypass", "error", "entries")


def policy_scope(namespace: str, policy: str) -> str:
    return f"{namespace}/{policy}"


def record_key(scope: str) -> str:
    """The key of the generation record, and the name of the channel it is published on."""
    return f"hermes:{scope}:generation"


def stats_key(scope: str, version: str) -> str:
    return f"hermes:{scope}:stats:{version}"


@dataclass(frozen=True)
class GenerationRecord:
    version: str
    uid: str = ""
    switched_at: str | None = None


def encode_record(version: str, uid: str, switched_at: str) -> str:
    """The record as the operator writes it: compact JSON, the same bytes for the same generation."""
    return json.dumps({"version": version, "uid": uid, "switchedAt": switched_at}, separators=(",", ":"))


def parse_record(raw: str | bytes) -> GenerationRecord:
    """The record as a sidecar reads it; :class:`RecordError` (a ValueError) when it is not one."""
    data = json.loads(raw)
    if not isinstance(data, dict) or "version" not in data:
        raise RecordError(f"generation record must be a JSON object with 'version': {raw!r}")
    return GenerationRecord(str(data["version"]), str(data.get("uid", "")), data.get("switchedAt"))
