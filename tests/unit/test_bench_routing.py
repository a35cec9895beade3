"""The routing benchmark's pure parts: the interleaved schedule, round-robin, the per-arm summary and
the report section."""

from __future__ import annotations

import math
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

# bench/ is not an installed package: import it from the repository root, as `python -m bench.run` does.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench import routing
from bench.routing import ARMS, EPP, ROUND_ROBIN, RoundRobin, paired_difference_ms, schedule, summarise


def test_schedule_sends_every_turn_once_per_arm_and_alternates_who_goes_first() -> None:
    steps = schedule(tenants=4, conversations=3, turns=4)
    assert len(steps) == 4 * 3 * 4 * len(ARMS)
    per_arm = Counter((s.arm, s.tenant, s.conversation, s.turn) for s in steps)
    assert set(per_arm.values()) == {1}
    assert {s.arm for s in steps} == set(ARMS)
    # the two arms' requests for one step are adjacent, and the first arm alternates
    pairs = [steps[i : i + 2] for i in range(0, len(steps), 2)]
    assert all((a.tenant, a.conversation, a.turn) == (b.tenant, b.conversation, b.turn) for a, b in pairs)
    firsts = Counter(a.arm for a, _ in pairs)
    assert firsts[ROUND_ROBIN] == firsts[EPP] == len(pairs) // 2


def test_schedule_keeps_a_conversations_turns_in_order() -> None:
    steps = schedule(tenants=2, conversations=2, turns=3)
    for arm in ARMS:
        turns = [s.turn for s in steps if s.arm == arm and s.tenant == 1 and s.conversation == 0]
        assert turns == [0, 1, 2]


def test_schedule_shuffles_arrivals_so_round_robin_is_not_sticky() -> None:
    """In tenant-major order 12 conversations per turn would put each one on the same of two pods
    every turn; shuffled, round-robin moves most conversations between pods."""

    def homes(steps: list[routing.Step]) -> Counter[int]:
        rr = RoundRobin(["a", "b"])
        seen: dict[tuple[int, int], set[str]] = {}
        for s in steps:
            if s.arm == ROUND_ROBIN:
                seen.setdefault((s.tenant, s.conversation), set()).add(rr.pick())
        return Counter(len(v) for v in seen.values())

    assert homes(schedule(4, 3, 4, seed=None)) == {1: 12}
    assert homes(schedule(4, 3, 4))[2] >= 6
    assert schedule(4, 3, 4) == schedule(4, 3, 4)  # the same order on every run


def test_round_robin_takes_the_pods_in_turn() -> None:
    rr = RoundRobin(["10.0.0.1:8080", "10.0.0.2:8080"])
    picks = [rr.pick() for _ in range(5)]
    assert picks == ["10.0.0.1:8080", "10.0.0.2:8080"] * 2 + ["10.0.0.1:8080"]


def test_round_robin_without_endpoints_names_the_problem() -> None:
    with pytest.raises(ValueError, match="at least one endpoint"):
        RoundRobin([])


def _sample(arm: str, pod: str, ttft: float, hits: int, queries: int, turn: int = 0, tenant: int = 0) -> Any:
    return {"arm": arm, "pod": pod, "ttft_s": ttft, "hits": hits, "queries": queries, "turn": turn,
            "tenant": tenant, "conversation": 0}  # fmt: skip


SAMPLES = [
    _sample(ROUND_ROBIN, "a", 0.30, 0, 500, turn=0),
    _sample(ROUND_ROBIN, "b", 0.20, 0, 600, turn=1),
    _sample(EPP, "a", 0.25, 0, 500, turn=0),
    _sample(EPP, "a", 0.10, 480, 600, turn=1),
]


def test_summarise_gives_hit_rate_from_token_counters_overall_and_per_pod() -> None:
    rr, epp = summarise(SAMPLES)
    assert (rr["arm"], epp["arm"]) == (ROUND_ROBIN, EPP)
    assert (rr["hits"], rr["queries"], rr["hit_rate"]) == (0, 1100, 0.0)
    assert (epp["hits"], epp["queries"]) == (480, 1100)
    assert epp["hit_rate"] == pytest.approx(480 / 1100)
    assert [(p["pod"], p["requests"]) for p in rr["pods"]] == [("a", 1), ("b", 1)]
    assert [(p["pod"], p["requests"], p["hit_rate"]) for p in epp["pods"]] == [("a", 2, 480 / 1100)]
    assert epp["ttft"]["n"] == 2 and epp["ttft_later_turns"]["p50_ms"] == pytest.approx(100)


def test_summarise_with_one_turn_has_no_later_turn_latency() -> None:
    rows = summarise([s for s in SAMPLES if s["turn"] == 0])
    assert rows[0]["ttft_later_turns"]["n"] == 0 and math.isnan(rows[0]["ttft_later_turns"]["p50_ms"])


def test_paired_difference_pairs_the_arms_step_by_step() -> None:
    # step turn 0: 300 - 250 = 50 ms; turn 1: 200 - 100 = 100 ms
    assert paired_difference_ms(SAMPLES) == pytest.approx(75)
    assert math.isnan(paired_difference_ms([SAMPLES[0]]))


RESULT = {"rows": summarise(SAMPLES), "setup": "Setup.", "paired_rr_minus_epp_ms_p50": 75.0}


def test_section_shows_both_arms_and_links_the_plot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routing, "plot", lambda res: "bench/routing.png")  # drawing: the test below
    text = "\n".join(routing.section({"result": RESULT}))
    assert "| round-robin | 2 |" in text and "| EPP (prefix-aware) | 2 |" in text
    assert "480 / 1,100 | 44% |" in text
    assert "Prefix-cache hit rate 0% with round-robin, 44% with the EPP's choices" in text
    assert "prefilled 1,100 prompt tokens for round-robin against 620 for the EPP (44% less prefill)" in text
    assert "![prefix-cache hit rate and TTFT per routing arm](bench/routing.png)" in text


def test_the_plot_is_drawn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("matplotlib", reason="matplotlib comes with the bench extra (make bench)")
    from bench.report import plots

    monkeypatch.setattr(plots, "PLOTS", tmp_path)
    assert routing.plot(RESULT) == "bench/routing.png"
    assert (tmp_path / "routing.png").stat().st_size > 0
