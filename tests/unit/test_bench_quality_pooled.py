"""The quality report's pooled figures: the clean bench/data holdout halves summed, with 95% Wilson
intervals, and how many sets' own interval settles the 2% wrong limit either way."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

# bench/ is not an installed package: import it from the repository root, as `python -m bench.run` does.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from _quality_data import dataset
from bench.report import sections


def test_wilson_matches_the_textbook_values() -> None:
    low, high = sections.wilson(5, 100)
    assert (round(low, 4), round(high, 4)) == (0.0215, 0.1118)
    # no success in 60: the interval starts at 0 and still reaches z^2 / (n + z^2), about 6%
    assert sections.wilson(0, 60) == (0.0, pytest.approx(3.8415 / 63.8415, abs=1e-4))
    assert sections.wilson(60, 60)[1] == 1.0
    with pytest.raises(ValueError, match="n must be > 0, got 0"):
        sections.wilson(0, 0)


def _set(should_hit: int, traps: int, served: int, wrong: int, fow: bool = False) -> dict[str, Any]:
    ds = dataset("t", fow)
    ds.update(should_hit=should_hit, traps=traps)
    ds["hermes"]["default"] = {
        "served": round(served / should_hit, 4),
        "wrong": round(wrong / traps, 4),
        "threshold": 0.85,
    }
    ds["redisvl"]["default"] = {"served": 1.0, "wrong": round(0.5, 4), "distance_threshold": 0.1}
    return ds


def test_pooled_rows_sum_the_clean_sets_only() -> None:
    res = {
        "datasets": {
            "questions": _set(100, 100, 90, 50, fow=True),  # fow-cache's own: not summed
            "devops": _set(40, 40, 40, 40),  # its holdout was read: not summed
            "clean": _set(50, 60, 25, 0),
            "leaky": _set(50, 40, 30, 8),
        }
    }
    names, rows = sections.pooled_rows(res)
    assert names == ["clean", "leaky"]
    hermes, redisvl = rows  # GPTCache did not run (dataset() records an error): no row
    assert hermes[0] == "Hermes Cache" and hermes[1] == "2 (100 / 100)"
    low, high = sections.wilson(8, 100)
    assert hermes[2].startswith("55.0% (") and hermes[3] == f"8.0% ({low:.1%} to {high:.1%})"
    # clean: 0 of 60 reaches 6%, not surely <= 2%; leaky: 8 of 40 is surely above
    assert hermes[4] == "0 / 1"
    assert redisvl[0] == "RedisVL" and redisvl[4] == "0 / 2"


def test_a_set_large_enough_can_be_surely_within_the_limit() -> None:
    res = {"datasets": {"big": _set(400, 400, 300, 1)}}
    _, (hermes, *_) = sections.pooled_rows(res)
    assert sections.wilson(1, 400)[1] < 0.02 and hermes[4] == "1 / 0"


def test_the_quality_section_prints_the_pooled_table(monkeypatch: pytest.MonkeyPatch) -> None:
    # the plots need matplotlib, a bench extra the test tiers do not install; the table does not
    monkeypatch.setattr(sections.plots, "quality", lambda name, ds: f"bench/quality-{name}.png")
    res = {"split": "holdout", "max_wrong": 0.02, "embedder": "e", "dims": 3, "fow_dir_command": "FOW=x"}
    res["datasets"] = {"clean": _set(50, 60, 25, 0), "leaky": _set(50, 40, 30, 8)}
    text = "\n".join(sections.quality({"result": res, "machine": {}, "command": "c"}))
    assert "### The 2 bench/data holdout halves nobody read, pooled" in text
    assert "| Hermes Cache | 2 (100 / 100) | 55.0% (" in text


def _with_curve(ds: dict[str, Any], points: dict[float, tuple[int, int]]) -> dict[str, Any]:
    """``points``: threshold -> (should-hit pairs served, traps served) on this set's holdout half."""
    ds["hermes"]["curve"] = [
        {"threshold": t, "served": round(s / ds["should_hit"], 4), "wrong": round(w / ds["traps"], 4)}
        for t, (s, w) in points.items()
    ]
    return ds


def test_the_pooled_sweep_sums_the_curves_and_finds_the_lowest_threshold_within_the_limit() -> None:
    a = _with_curve(_set(50, 50, 40, 3), {0.8: (45, 4), 0.85: (40, 3), 0.88: (30, 1), 0.9: (20, 0)})
    b = _with_curve(
        _set(50, 50, 30, 1), {0.8: (35, 2), 0.85: (30, 1), 0.88: (25, 1), 0.9: (10, 0), 0.95: (5, 0)}
    )
    rows = sections.pooled_curve({"datasets": {"a": a, "b": b}}, ["a", "b"])
    # 0.95 is left out: set a did not sweep it
    assert [r[0] for r in rows] == ["similarity 0.8", "similarity 0.85", "similarity 0.88", "similarity 0.9"]
    by = {r[0]: r for r in rows}
    assert by["similarity 0.8"][1].startswith("80.0% (") and by["similarity 0.8"][2].startswith("6.0% (")
    assert by["similarity 0.85"][2].startswith("4.0% (") and by["similarity 0.85"][3] == "the default"
    # 0.88 is the first at <= 2% (2 of 100), though not in POOLED_THRESHOLDS
    assert by["similarity 0.88"][2].startswith("2.0% (")
    assert by["similarity 0.88"][3] == "the lowest within 2.0% wrong"
    assert by["similarity 0.9"][3] == ""


def test_no_pooled_sweep_when_a_set_has_no_curve() -> None:
    a = _with_curve(_set(50, 50, 40, 3), {0.85: (40, 3)})
    b = _set(50, 50, 30, 1)
    b["hermes"].pop("curve", None)
    assert sections.pooled_curve({"datasets": {"a": a, "b": b}}, ["a", "b"]) == []


def test_the_targets_table_has_a_pooled_quality_row() -> None:
    from bench.report import targets
    from bench.report.targets import Measured

    a = _with_curve(_set(50, 50, 40, 3), {0.8: (45, 4), 0.85: (40, 3), 0.88: (30, 1), 0.9: (20, 0)})
    b = _with_curve(_set(50, 50, 30, 1), {0.8: (35, 2), 0.85: (30, 1), 0.88: (25, 1), 0.9: (10, 0)})
    r = {"result": {"split": "holdout", "max_wrong": 0.02, "datasets": {"a": a, "b": b}}}
    rows = targets.assess(Measured({"quality": sections.quality_facts(r)}, {"quality": r}))
    (row,) = [row for row in rows if "pooled" in row[0]]
    name, measured, ok, why = row
    assert name == "The 2 clean bench/data holdout halves, pooled: ≥ 85% served, ≤ 2% wrong"
    low, high = sections.wilson(4, 100)
    assert measured == f"served 70.0%, wrong 4.0% (95% interval {low:.1%} to {high:.1%})" and ok is False
    assert "At 0.8, the lowest threshold swept, the pool is 80.0% served with 6.0% of the traps" in why
    assert "the most any threshold serves within 2.0% wrong is 55.0% (similarity 0.88)" in why


def test_no_pooled_quality_row_without_the_result() -> None:
    from bench.report import targets
    from bench.report.targets import Measured

    r = {"result": {"split": "holdout", "max_wrong": 0.02, "datasets": {"a": _set(50, 50, 40, 3)}}}
    rows = targets.assess(Measured({"quality": sections.quality_facts(r)}, {}))
    assert not [row for row in rows if "pooled" in row[0]]
