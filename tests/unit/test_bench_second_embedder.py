"""bench/second_embedder.py's arithmetic: a pair is served only if the sidecar served it and the
setting keeps it; tune and holdout halves are counted apart."""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ is not an installed package: import it from the repository root, as `python -m bench.run` does.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.second_embedder import Pair, curves, served_and_wrong

PAIRS = [
    Pair(same_answer=True, tune=True, served=True, cosine=0.95, second=0.9),
    Pair(same_answer=True, tune=True, served=True, cosine=0.86, second=0.5),
    Pair(same_answer=True, tune=True, served=False, cosine=0.99, second=0.99),  # a rule refused it
    Pair(same_answer=False, tune=True, served=True, cosine=0.9, second=0.62),  # a trap the guard passed
    Pair(same_answer=False, tune=True, served=False, cosine=0.9, second=0.9),
    Pair(same_answer=True, tune=False, served=True, cosine=0.88, second=0.81),
    Pair(same_answer=False, tune=False, served=True, cosine=0.91, second=0.7),
    Pair(same_answer=True, tune=False, served=True, cosine=0.8, second=0.7),  # served by the typo path
]


def test_a_pair_counts_as_served_only_if_the_sidecar_served_it_and_the_setting_keeps_it() -> None:
    tune = PAIRS[:5]
    assert served_and_wrong(tune, [True] * 5) == (2, 3, 1, 2)
    assert served_and_wrong(tune, [False, True, True, False, True]) == (1, 3, 0, 2)


def test_curves_count_each_half_apart() -> None:
    rows = {name: (tune, holdout) for name, tune, holdout in curves(PAIRS)}
    assert rows["threshold 0.85"] == ((2, 3, 1, 2), (2, 2, 1, 1))
    # 0.9 drops the 0.86 paraphrase and the 0.88 one, keeps both traps (cosine 0.9 and 0.91) and the
    # pair the typo path served below any threshold
    assert rows["threshold 0.9"] == ((1, 3, 1, 2), (1, 2, 1, 1))
    # the second model at 0.65 refuses the tune trap (0.62) and the 0.5 paraphrase, keeps the holdout pairs
    assert rows["threshold 0.85, second model >= 0.65"] == ((1, 3, 0, 2), (2, 2, 1, 1))
    assert rows["threshold 0.85, second model >= 0.75"] == ((1, 3, 0, 2), (1, 2, 0, 1))
