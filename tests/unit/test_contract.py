"""The generation record: what the operator writes is what a sidecar reads (hermes_sidecar.contract).

The operator publishes through its GenerationStore and renders the sidecar's ``cache.scope``; the
sidecar derives its keys from that scope and parses the record. Both sides must meet in one Redis.
"""

from __future__ import annotations

from typing import Any

import pytest
from _policies import policy_doc
from test_handlers import Clock, RecordingKube, RecordingStore

from hermes_operator.capacity import plan_capacity
from hermes_operator.env import Env
from hermes_operator.generations import STAT_FIELDS, generation_key, stats_key
from hermes_operator.metrics import OperatorMetrics
from hermes_operator.reconcile import reconcile
from hermes_operator.render import sidecar_config
from hermes_operator.spec import parse_policy
from hermes_sidecar import generations as sidecar
from hermes_sidecar.config import parse_config
from hermes_sidecar.contract import encode_record, parse_record
from hermes_sidecar.metrics import RESULTS

REDIS = {"semanticCache": {"redis": {"url": "redis://r:6379"}}}


def _doc(**spec: Any) -> dict[str, Any]:
    doc = policy_doc(**REDIS, **spec)
    doc["metadata"].update(uid="uid-7", generation=1)
    return doc


def _sidecar_scope(doc: dict[str, Any]) -> str:
    """The scope a sidecar of this policy runs with: from the config the operator renders for it."""
    policy = parse_policy(doc)
    assert plan_capacity(policy.spec).fits
    return parse_config(sidecar_config(policy)).cache.scope


def test_a_record_the_operator_publishes_is_the_one_a_sidecar_reads() -> None:
    store = RecordingStore()
    env = Env(kube=RecordingKube(), stores=lambda url: store, metrics=OperatorMetrics(), now=Clock())
    doc = _doc(cacheVersion="v3")
    reconcile(doc, env)

    scope = _sidecar_scope(doc)
    ns, name = doc["metadata"]["namespace"], doc["metadata"]["name"]
    [(channel, record)] = store.published
    # the sidecar reads the key at start-up and subscribes to the channel of the same name
    assert channel == generation_key(ns, name) == sidecar.record_key(scope)
    assert store.keys[sidecar.record_key(scope)] == record
    gen = sidecar.Generation.parse(record)
    assert (gen.version, gen.uid, gen.switched_at) == ("v3", "uid-7", "2026-01-01T00:00:01Z")
    assert sidecar.Generation.parse(record.encode()).id == gen.id  # Redis hands out bytes


def test_the_stats_the_sidecars_count_are_the_ones_the_operator_reads() -> None:
    doc = _doc()
    scope = _sidecar_scope(doc)
    ns, name = doc["metadata"]["namespace"], doc["metadata"]["name"]
    assert stats_key(ns, name, "v2") == sidecar.stats_key(scope, "v2")
    # every request result a sidecar counts, plus its entry count, reaches status.semanticCache
    assert (*RESULTS, "entries") == STAT_FIELDS


def test_the_record_round_trips_and_refuses_what_is_not_one() -> None:
    record = parse_record(encode_record("v1", "u", "2026-01-01T00:00:00Z"))
    assert (record.version, record.uid, record.switched_at) == ("v1", "u", "2026-01-01T00:00:00Z")
    assert parse_record('{"version": "v1"}') == parse_record(b'{"version":"v1"}')
    for bad in ('"v1"', "[]", '{"uid": "u"}', "not json"):
        with pytest.raises(ValueError):
            parse_record(bad)
