"""The generation record and stats contracts shared with the sidecar."""

from __future__ import annotations

import json

import pytest

from hermes_operator.cachegen import summarize_stats
from hermes_operator.generations import (
    GenerationStoreError,
    RedisGenerationStore,
    generation_key,
    generation_record,
    stats_key,
    url_with_password,
)
from hermes_operator.metrics import METRIC_NAMES, OperatorMetrics
from hermes_operator.spec import redact


def test_keys_follow_the_architecture_contract() -> None:
    assert generation_key("ml", "chat") == "hermes:ml/chat:generation"
    assert stats_key("ml", "chat", "v2") == "hermes:ml/chat:stats:v2"


def test_record_is_json_with_version_uid_switched_at() -> None:
    rec = json.loads(generation_record("v2", "uid-9", "2026-01-01T00:00:00Z"))
    assert rec == {"version": "v2", "uid": "uid-9", "switchedAt": "2026-01-01T00:00:00Z"}


def test_hit_rate_counts_lookups_only() -> None:
    s = summarize_stats(
        {"hit_exact": 1, "hit_semantic": 2, "miss": 1, "bypass": 10, "error": 2, "entries": 3}
    )
    assert s == {"hitRate": "0.750", "requests": 16, "entries": 3}
    assert summarize_stats({})["hitRate"] == ""


def test_redis_password_is_redacted() -> None:
    assert redact("redis://default:s3cret@redis:6379/0") == "redis://default:***@redis:6379/0"
    assert redact("redis://redis:6379") == "redis://redis:6379"
    assert redact("unix:///run/r.sock?db=1&password=s3cret") == "unix:///run/r.sock?db=1&password=***"


def test_password_from_a_secret_goes_where_redis_py_reads_it() -> None:
    import redis

    secret = "p@ss:/w?rd&x"
    for url, user in (("redis://r:6379/0", None), ("redis://alice@r:6379/0", "alice"), ("rediss://r", None)):
        opts = redis.connection.parse_url(url_with_password(url, secret))
        assert (opts["password"], opts.get("username")) == (secret, user)
    opts = redis.connection.parse_url(url_with_password("unix:///run/r.sock?db=2", secret))
    assert (opts["password"], opts["db"], opts["path"]) == (secret, 2, "/run/r.sock")
    assert secret not in redact(url_with_password("redis://r:6379/0", secret))


def test_metric_names_are_exported_and_registered() -> None:
    m = OperatorMetrics()
    families = {f.name: f.type for f in m.registry.collect()}
    for name in METRIC_NAMES:
        assert name.startswith("hermes_operator_")
        family = name.removesuffix("_total")
        assert family in families, name
        assert name.endswith("_total") == (families[family] == "counter"), name


@pytest.mark.parametrize(
    "url",
    [
        "redis://" + "r" * 400 + ":6379/0",  # a label no resolver takes: UnicodeError in the idna codec
        "redis://redis:notaport/0",
        "redis://[::1:6379/0",
    ],
)
def test_a_redis_url_that_cannot_work_is_a_store_error_not_a_crash(url: str) -> None:
    store = RedisGenerationStore(url, timeout=0.5)
    with pytest.raises(GenerationStoreError) as err:
        store.read_generation("ns", "p")
    assert "GET generation failed" in str(err.value)
    with pytest.raises(GenerationStoreError):
        store.write_generation("ns", "p", "{}")
