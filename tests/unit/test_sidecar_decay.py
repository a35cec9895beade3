"""Similarity decay (cache.decay): the similarity an entry needs rises with its age.

A fake clock drives the live decision path (CacheService.decide / store_answer, the real default
embedder, the guard, the in-memory store) and ``hermes-sidecar evaluate --age``. The questions'
similarities below are the default embedder's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hermes_sidecar.cache import HIT_EXACT, HIT_SEMANTIC, MISS, CacheService, Decision
from hermes_sidecar.cache.decay import DECAYED, DECAYED_EXACT, Decay
from hermes_sidecar.cli import main
from hermes_sidecar.config import ConfigError, DecayConfig, parse_config
from hermes_sidecar.dialects.base import CachedAnswer
from hermes_sidecar.dialects.openai import CHAT, OpenAIDialect
from hermes_sidecar.embed import LocalEmbedder
from hermes_sidecar.generations import LOCAL
from hermes_sidecar.metrics import Metrics
from hermes_sidecar.store.memory import MemoryStore

STORED = "How do I reset my account password?"
FAR = "What are the steps to reset my account password?"  # cosine 0.975 with STORED
NEAR = "How do I reset the password of my account?"  # cosine 0.986 with STORED
HOUR = 3600.0
T0 = 1_800_000_000.0


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    return LocalEmbedder()


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def _answer(text: str) -> CachedAnswer:
    message = {"role": "assistant", "content": "answer to " + text}
    return CachedAnswer(
        "openai",
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": "m",
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9},
        },
    )


class Harness:
    def __init__(self, embedder: LocalEmbedder, **decay: Any) -> None:
        cfg = parse_config({"cache": {"ttlSeconds": 7 * 86400, "decay": decay}})
        self.clock = Clock()
        self.metrics = Metrics()
        self.cache = CacheService(
            cfg.cache, MemoryStore(100), embedder, self.metrics, generation=LOCAL, clock=self.clock
        )
        self.dialect = OpenAIDialect()

    async def ask(self, text: str, *, store: bool = True) -> Decision:
        req = self.dialect.parse_request(
            CHAT, {"model": "m", "messages": [{"role": "user", "content": text}]}
        )
        decision = await self.cache.decide(req, {}, "tenant-a")
        if store and decision.result == MISS:
            assert await self.cache.store_answer(decision, _answer(text))
        return decision

    def sample(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0


async def test_off_by_default_an_old_entry_serves_at_the_threshold(embedder: LocalEmbedder) -> None:
    h = Harness(embedder)
    await h.ask(STORED)
    h.clock.now += 6 * 86400
    assert (await h.ask(FAR, store=False)).result == HIT_SEMANTIC
    assert h.sample("hermes_cache_decay_refreshes_total", kind="semantic") == 0


async def test_half_life_serves_old_entries_only_to_ever_closer_questions(embedder: LocalEmbedder) -> None:
    h = Harness(embedder, mode="halfLife", halfLifeSeconds=HOUR, ceiling=0.98)
    first = await h.ask(STORED)
    assert first.result == MISS
    # required similarity: 0.85 fresh, 0.9719 after 4 half-lives, 0.9759 after 5
    h.clock.now = T0 + 4 * HOUR
    served = await h.ask(FAR, store=False)
    assert served.result == HIT_SEMANTIC and 0.9719 < (served.similarity or 0) < 0.9759
    h.clock.now = T0 + 5 * HOUR
    refused = await h.ask(FAR, store=False)
    assert refused.result == MISS and refused.reason == DECAYED
    closer = await h.ask(NEAR, store=False)
    assert closer.result == HIT_SEMANTIC and (closer.similarity or 0) > 0.9759
    # exact repeats are not affected unless asked: even at six days
    h.clock.now = T0 + 6 * 86400
    assert (await h.ask(STORED)).result == HIT_EXACT
    # ages of what was served: 4 h, 5 h, 6 days
    assert h.sample("hermes_cache_served_age_seconds_count") == 3
    assert h.sample("hermes_cache_served_age_seconds_sum") == pytest.approx(9 * HOUR + 6 * 86400)
    assert h.sample("hermes_cache_served_age_seconds_bucket", le="14400.0") == 1


async def test_the_miss_decay_caused_stores_a_fresh_answer_and_is_counted(embedder: LocalEmbedder) -> None:
    h = Harness(embedder, mode="halfLife", halfLifeSeconds=HOUR)
    await h.ask(STORED)
    h.clock.now = T0 + 5 * HOUR
    miss = await h.ask(FAR)  # stored: the refresh
    assert miss.reason == DECAYED
    assert h.sample("hermes_cache_decay_refreshes_total", kind="semantic") == 1
    again = await h.ask(FAR, store=False)
    assert again.result == HIT_EXACT and again.entry is not None and again.entry.created == T0 + 5 * HOUR
    # a miss for another reason (nothing near) is no refresh
    await h.ask("Which regions does the service run in?")
    assert h.sample("hermes_cache_decay_refreshes_total", kind="semantic") == 1


async def test_linear_ramp_reaches_the_ceiling_and_stays_there(embedder: LocalEmbedder) -> None:
    h = Harness(embedder, mode="linear", rampSeconds=10 * HOUR, ceiling=0.96)
    await h.ask(STORED)
    assert h.cache.decay.required(5 * HOUR) == pytest.approx(0.905)
    assert h.cache.decay.required(10 * HOUR) == pytest.approx(0.96)
    h.clock.now = T0 + 3 * 86400  # far past the ramp: the ceiling, 0.96, below FAR's 0.975
    assert (await h.ask(FAR, store=False)).result == HIT_SEMANTIC
    h2 = Harness(embedder, mode="linear", rampSeconds=10 * HOUR, ceiling=0.98)
    await h2.ask(STORED)
    h2.clock.now = T0 + 9 * HOUR  # 0.85 + 0.13 * 0.9 = 0.967: still served
    assert (await h2.ask(FAR, store=False)).result == HIT_SEMANTIC
    h2.clock.now = T0 + 10 * HOUR  # 0.98: refused
    assert (await h2.ask(FAR, store=False)).reason == DECAYED


async def test_exact_decay_refreshes_an_entry_once_its_progress_passes_its_point(
    embedder: LocalEmbedder,
) -> None:
    h = Harness(embedder, mode="linear", rampSeconds=10 * HOUR, exact=True)
    first = await h.ask(STORED)
    assert first.keys is not None
    point = Decay.point(first.keys.exact)
    before, after = (point - 0.01) * 10 * HOUR, (point + 0.01) * 10 * HOUR
    h.clock.now = T0 + before
    assert (await h.ask(STORED, store=False)).result == HIT_EXACT
    h.clock.now = T0 + after
    refreshed = await h.ask(STORED)  # not served as a semantic hit of itself either
    assert refreshed.result == MISS and refreshed.reason == DECAYED_EXACT
    assert h.sample("hermes_cache_decay_refreshes_total", kind="exact") == 1
    fresh = await h.ask(STORED, store=False)
    assert fresh.result == HIT_EXACT and fresh.entry is not None and fresh.entry.created == T0 + after


def test_exact_decay_spreads_refreshes_over_the_ramp() -> None:
    decay = Decay(DecayConfig(mode="halfLife", halfLifeSeconds=HOUR, exact=True), 0.85)
    keys = [f"key-{i}" for i in range(2000)]
    refused = [sum(decay.exact_refused(k, n * HOUR) for k in keys) / len(keys) for n in (0, 1, 2)]
    # progress 0, 1/2, 3/4: that share of entries is refreshed at its next exact repeat
    assert refused[0] == 0
    assert refused[1] == pytest.approx(0.5, abs=0.04)
    assert refused[2] == pytest.approx(0.75, abs=0.04)


@pytest.mark.parametrize(
    ("decay", "words"),
    [
        ({"mode": "halfLife"}, ["cache.decay.mode 'halfLife' needs cache.decay.halfLifeSeconds"]),
        ({"mode": "linear"}, ["cache.decay.mode 'linear' needs cache.decay.rampSeconds"]),
        ({"mode": "linear", "rampSeconds": 60, "halfLifeSeconds": 60}, ["cache.decay.halfLifeSeconds (60)"]),
        ({"mode": "halfLife", "halfLifeSeconds": 60, "ceiling": 0.85}, ["cache.decay.ceiling 0.85", "above"]),
        ({"mode": "weekly"}, ["cache.decay.mode", "'weekly'"]),
        ({"mode": "halfLife", "halfLifeSeconds": 0}, ["cache.decay.halfLifeSeconds", "greater than 0"]),
    ],
)
def test_a_bad_decay_setting_names_the_field_and_what_works(decay: dict[str, Any], words: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"cache": {"decay": decay}})
    for w in words:
        assert w in str(err.value)


def test_evaluate_age_moves_the_clock_between_store_and_decision(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        "\n".join(
            json.dumps(p)
            for p in (
                {"id": "far", "a": STORED, "b": FAR, "same_answer": True},
                {"id": "repeat", "a": STORED, "b": STORED, "same_answer": True},
            )
        )
    )
    config = tmp_path / "decay.yaml"
    config.write_text(
        json.dumps({"cache": {"ttlSeconds": 86400, "decay": {"mode": "halfLife", "halfLifeSeconds": HOUR}}})
    )
    reports = []
    for age in ("0", str(4 * HOUR), str(5 * HOUR), str(86400 * 2)):
        assert main(["evaluate", "--pairs", str(pairs), "--config", str(config), "--age", age]) == 0
        reports.append(json.loads(capsys.readouterr().out))
    assert [r["served_rate"] for r in reports] == [1.0, 1.0, 0.5, 0.0]
    assert reports[2]["refusals"] == {DECAYED: 1}
    assert reports[2]["decay"]["required_similarity"] == pytest.approx(0.9759, abs=1e-4)
    # two days is past the TTL (one day): the exact repeat expired as well
    assert reports[3]["decisions"] == {MISS: 2}
    assert main(["evaluate", "--pairs", str(pairs), "--age", "-1"]) == 2
    assert "--age -1 must be >= 0" in capsys.readouterr().err
