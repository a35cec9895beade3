"""bench/guard_cost.py: what it clears, what it counts, and that it measures the guard's real path."""

from __future__ import annotations

import sys
from pathlib import Path

from hermes_sidecar.guard import features

# bench/ is not an installed package: import it from the repository root, as `python -m bench.run` does.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench import guard_cost, quality


def test_clearing_empties_the_feature_cache_so_a_cold_round_is_cold() -> None:
    features("How do I rotate the tyres on a bike?")
    module = sys.modules["hermes_sidecar.guard.features"]
    assert module.features.cache_info().currsize > 0
    assert guard_cost.clear_caches([module]) >= 3  # features, key, time_word at least
    assert module.features.cache_info().currsize == 0


def test_measure_counts_each_text_once_and_times_every_stage() -> None:
    pairs = [("Is lavender safe for dogs?", "Is lavender toxic to dogs?")] * 3 + [
        ("Is lavender safe for dogs?", "Can dogs eat lavender safely?")
    ]
    cost = guard_cost.measure(pairs, repeat=1)
    assert (cost.texts, cost.pairs) == (3, 4)
    assert cost.features_us > 0 and cost.compare_cold_us > 0 and cost.compare_warm_us > 0


def test_the_bench_reads_every_bench_data_set_and_no_fow_cache_pair() -> None:
    expected = sum(len(quality.load(s)) for s in quality.SETS.values() if not s.fow_cache)
    pairs = guard_cost.bench_pairs()
    assert len(pairs) == expected > 1800
    assert all(isinstance(a, str) and isinstance(b, str) for a, b in pairs)
