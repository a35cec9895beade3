"""bench/pair_signals.py: the pieces of the two model-free pairwise signals it measures."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt

# bench/ is not an installed package: import it from the repository root, as `python -m bench.run` does.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.pair_signals import fit_logistic, pair_vector, rates, unaligned

AXES = {"pod": 0, "pods": 0, "container": 1, "namespace": 2, "restart": 3, "reboot": 3}


def _vec(word: str) -> npt.NDArray[np.float32]:
    v = np.zeros(4, dtype=np.float32)
    v[AXES[word]] = 1.0
    return v


def test_a_word_the_other_side_lacks_is_unaligned_and_a_synonym_or_inflection_is_not() -> None:
    assert unaligned(["restart", "pods", "namespace"], ["reboot", "pod"], _vec, 0.8) == ["namespace"]
    assert unaligned(["reboot", "pod"], ["restart", "pods", "namespace"], _vec, 0.8) == []
    assert unaligned(["container"], [], _vec, 0.8) == ["container"]  # nothing to match against


def test_the_pair_vector_is_symmetric_and_ends_with_the_cosine() -> None:
    u, v = _vec("pod"), (_vec("pod") + _vec("container")) / np.sqrt(2)
    assert np.allclose(pair_vector(u, v), pair_vector(v, u))
    assert np.isclose(pair_vector(u, v)[-1], float(u @ v))


def test_the_head_learns_a_separable_rule_and_scores_unseen_points_by_it() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = (x[:, 0] > 0).astype(np.float64)  # the first feature decides
    predict = fit_logistic(x, y)
    unseen = np.array([[2.0, 0.0, 0.0], [-2.0, 0.0, 0.0], [0.0, 5.0, -5.0]])
    p = predict(unseen)
    assert p[0] > 0.9 and p[1] < 0.1 and 0.2 < p[2] < 0.8


def test_rates_are_hits_refused_and_traps_caught() -> None:
    labels = [True, True, True, True, False, False]
    flagged = [True, False, False, False, True, False]
    assert rates(labels, flagged) == (0.25, 0.5)
