"""The quality report's hindsight rows: the most any threshold serves on a holdout half within the wrong
limit, or, where none keeps wrong that low, what is still served at the highest threshold."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# bench/ is not an installed package: import it from the repository root, as `python -m bench.run` does.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from _quality_data import dataset
from bench.report import sections, targets
from bench.report.targets import Measured


def _curve(*points: tuple[float, float, float]) -> list[dict[str, float]]:
    return [{"threshold": t, "served": s, "wrong": w} for t, s, w in points]


REACHABLE = _curve((0.8, 0.9, 0.10), (0.85, 0.7, 0.02), (0.9, 0.7, 0.0), (0.95, 0.4, 0.0))
UNREACHABLE = _curve((0.8, 0.9, 0.10), (0.9, 0.6, 0.068), (0.99, 0.2, 0.045))


def test_hindsight_serves_most_within_the_limit_and_prefers_the_higher_threshold_on_a_tie() -> None:
    assert sections.hindsight(REACHABLE) == {"threshold": 0.9, "served": 0.7, "wrong": 0.0}
    assert sections.hindsight(REACHABLE, max_wrong=0.0) == {"threshold": 0.9, "served": 0.7, "wrong": 0.0}
    assert sections.hindsight(REACHABLE, max_wrong=0.1)["threshold"] == 0.8  # type: ignore[index]
    assert sections.hindsight(UNREACHABLE) is None
    assert sections.hindsight(_curve((0.99, 0.0, 0.0))) is None  # serving nothing is no answer


def _dataset(curve: list[dict[str, float]]) -> dict[str, Any]:
    """A set whose defaults miss the 2% target (6.8% wrong), with ``curve`` as its threshold sweep."""
    hermes = {
        "default": {"served": 0.79, "wrong": 0.068, "threshold": 0.85},
        "by_category": {"scope": {"should_hit": 0, "traps": 4, "served": None, "wrong": 0.25}},
        "fitted": None,
        "curve": curve,
        "unserved_should_hit_by_reason": {},
        "served_traps_by_category": {"units": 1},
    }
    return dataset("other", False, hermes)


def _result(curve: list[dict[str, float]]) -> dict[str, Any]:
    return {"result": {"split": "holdout", "max_wrong": 0.02, "datasets": {"other": _dataset(curve)}}}


def test_the_set_table_has_a_hindsight_row() -> None:
    rows = sections._quality_rows(_dataset(REACHABLE))
    assert ["Hermes Cache", sections.HINDSIGHT, "similarity 0.9", "70.0%", "0.0%"] in rows
    rows = sections._quality_rows(_dataset(UNREACHABLE))
    (row,) = [r for r in rows if r[1] == sections.HINDSIGHT]
    assert row[2] == "none from 0.8 to 0.99 keeps wrong ≤ 2%" and row[4] == "4.5%"


def test_a_missed_target_says_whether_any_threshold_could_have_met_it() -> None:
    for curve, said in (
        (
            REACHABLE,
            "In hindsight, the best threshold on this holdout half serves 70.0% at 0.0% wrong (0.9).",
        ),
        (UNREACHABLE, "No threshold keeps wrong ≤ 2% on this holdout half, even in hindsight: at 0.99 4.5%"),
    ):
        facts = {"quality": sections.quality_facts(_result(curve))}
        (row,) = [row for row in targets.assess(Measured(facts, {})) if "holdout half" in row[0]]
        assert row[2] is False and said in row[3]
