"""The soak benchmark's pure parts: error kinds, window statistics, the RSS spread after warm-up."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx
import pytest

# bench/ is not an installed package: import it from the repository root, as `python -m bench.run` does.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench import soak
from bench.soak import Done, after_warmup, error_kind, spread, summarise, window_stats


def test_error_kinds() -> None:
    assert error_kind(200) == ""
    assert error_kind(502) == "5xx (502)"
    assert error_kind(404) == "unexpected status 404"
    assert error_kind(0, httpx.ConnectError("refused")) == "connection: ConnectError"


def test_window_stats_per_decision_and_errors() -> None:
    done = [Done(1.0, "exact", "hit-exact", s / 1000, 200) for s in range(1, 101)]
    done += [Done(1.0, "fresh", "miss", 0.5, 200), Done(1.0, "abandon", "miss", 0.01, 200)]
    done += [
        Done(1.0, "fresh", "", 0.1, 0, "connection: ReadError"),
        Done(1.0, "exact", "", 0.1, 503, "5xx (503)"),
    ]
    w = window_stats(done)
    assert w["requests"] == 104
    assert w["abandoned"] == 1  # counted, but no latency: it ended at the first chunk
    assert w["errors"] == {"connection: ReadError": 1, "5xx (503)": 1}
    exact = w["decisions"]["hit-exact"]
    assert (exact["n"], exact["p50_ms"], exact["p99_ms"]) == (100, pytest.approx(50.0), pytest.approx(99.0))
    assert w["decisions"]["miss"] == {"n": 1, "p50_ms": 500.0, "p99_ms": 500.0}


def test_empty_window() -> None:
    assert window_stats([]) == {"requests": 0, "abandoned": 0, "decisions": {}, "errors": {}}


def test_spread_and_warmup() -> None:
    assert spread([100.0, 105.0, 110.0]) == {"min": 100.0, "max": 110.0, "spread_pct": pytest.approx(10.0)}
    samples = [{"t": t, "rss_kib": 1} for t in (5, 10, 20, 30, 40)]
    assert [s["t"] for s in after_warmup(samples, 50)] == [10, 20, 30, 40]
    assert after_warmup(samples[:1], 100) == samples[:1]  # nothing after warm-up: keep what there is


def test_summarise_excludes_warmup_from_the_rss_spread() -> None:
    # 100 s run: a climb during warm-up (first 20 s), then flat within 2%
    samples = [
        {"t": float(t), "rss_kib": kib, "fds": fds, "decisions": {}, "errors": {}}
        for t, kib, fds in (
            (10, 50 * 1024, 20),
            (20, 100 * 1024, 30),
            (60, 101 * 1024, 31),
            (100, 102 * 1024, 29),
        )
    ]
    done = [Done(5.0, "exact", "hit-exact", 0.002, 200), Done(6.0, "stream", "miss", 0.2, 200)]
    res = summarise(done, samples, 100.0, 10.0, 8, 0.05, {"model": "m", "switch_at_s": 50.0})
    assert res["rss_after_warmup_mib"] == {"min": 100.0, "max": 102.0, "spread_pct": pytest.approx(2.0)}
    assert res["fds"] == {"min": 20, "max": 31}
    assert res["errors"] == 0
    assert set(res["latency"]) == {"hit-exact", "miss"}
    assert res["samples"] == samples


def test_proc_readers_on_this_process() -> None:
    assert soak.read_rss_kib(os.getpid()) > 0
    assert soak.count_fds(os.getpid()) >= 3
    assert soak.cpu_seconds(os.getpid()) > 0
