"""A quality report's data set (bench/report input), shared by the report's unit tests."""

from __future__ import annotations

from typing import Any


def dataset(title: str, fow: bool, hermes: dict[str, Any] | None = None) -> dict[str, Any]:
    point = {"served": 0.5, "wrong": 0.25, "threshold": 0.9}
    return {
        "title": title,
        "questions": True,
        "fow_cache": fow,
        "command": "hermes-sidecar evaluate --pairs f --split holdout",
        "split": "holdout",
        "stride": 1,
        "n": 6,
        "should_hit": 2,
        "traps": 4,
        "categories": {"paraphrase": {"should_hit": 2, "traps": 0}, "scope": {"should_hit": 0, "traps": 4}},
        "hermes": hermes
        or {
            "default": {"served": 0.9, "wrong": 0.015, "threshold": 0.85},
            "pairs": 6,
            "by_category": {
                "paraphrase": {"should_hit": 2, "traps": 0, "served": 0.9, "wrong": None},
                "scope": {"should_hit": 0, "traps": 4, "served": None, "wrong": 0.0},
            },
            "fitted": None,
            "unserved_should_hit_by_reason": {},
            "served_traps_by_category": {"number_date": 1},
        },
        "redisvl": {
            "default": {**point, "distance_threshold": 0.1},
            "fitted": None,
            "by_category": {"scope": {"should_hit": 0, "traps": 4, "served": None, "wrong": 0.75}},
        },
        "gptcache": {"error": "ImportError: no faiss"},
    }
