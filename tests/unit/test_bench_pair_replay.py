"""bench/pair_replay.py: the decision replayed from recorded signals must be the live path's decision.

The live path is the sidecar's (``evaluate_pairs``) with the real default embedder, asking a rerank
server over HTTP whose scores the test chooses (a hash of the two texts, so every band of score
occurs); the replay must decide every pair the same way under each setting.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from bench import pair_replay
from bench.quality import SETS, Item, SidecarEmbedder, load
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fakes.openai_upstream import run_server
from hermes_sidecar import guard
from hermes_sidecar.config import VerifierConfig, parse_config
from hermes_sidecar.evaluate import evaluate_pairs
from hermes_sidecar.verify import RerankVerifier

# A few sets of different domains, plus pairs decided before any candidate is weighed.
SETS_USED = ("devops", "business", "travel")
EXTRA: list[Item] = [
    {
        "id": "x-exact",
        "a": "Where is my order?",
        "b": "Where  is my order?",
        "same_answer": True,
        "_file": "extra",
    },
    {
        "id": "x-bypass",
        "a": "What is the weather in Oslo today?",
        "b": "Oslo weather today?",
        "same_answer": True,
    },
    {
        "id": "x-typo",
        "a": "chnage the email adress",
        "b": "change the email address",
        "same_answer": True,
        "_file": "extra",
    },
    {
        "id": "x-neg",
        "a": "How do I enable 2FA?",
        "b": "How do I disable 2FA?",
        "same_answer": False,
        "_file": "extra",
    },
    {
        "id": "x-far",
        "a": "How do I bake rye bread?",
        "b": "What is the capital of Peru?",
        "same_answer": False,
        "_file": "extra",
    },
]
SETTINGS: list[pair_replay.Setting] = [
    None,
    {"minSimilarity": 0.85, "minScore": 0.5},
    {"minSimilarity": 0.6, "minScore": 0.3},
    {"minSimilarity": 0.7, "minScore": 0.5, "overrule": ["negation", "scope"], "overruleMinScore": 0.9},
    {"minSimilarity": 0.65, "minScore": 0.7, "overrule": list(guard.RULES)},
    {"minSimilarity": 0.7, "minScore": 0.5, "scope": "uncertain", "overrule": ["edit"]},
]


def _score(query: str, doc: str) -> float:
    return int.from_bytes(hashlib.sha256(f"{query}\0{doc}".encode()).digest()[:4], "big") / 2.0**32


async def _rerank(request: Request) -> Response:
    body = await request.json()
    results = [
        {"index": i, "relevance_score": _score(body["query"], d)} for i, d in enumerate(body["documents"])
    ]
    return JSONResponse({"id": "t", "model": body["model"], "results": results})


@pytest.fixture(scope="module")
def scorer() -> Iterator[str]:
    with run_server(Starlette(routes=[Route("/rerank", _rerank, methods=["POST"])])) as url:
        yield url


@pytest.fixture(scope="module")
def embedder() -> SidecarEmbedder:
    from bench.embedding import hermes_embedder

    return SidecarEmbedder(hermes_embedder())


@pytest.fixture(scope="module")
def rows() -> list[tuple[str, Item]]:
    out = [(n, p) for n in SETS_USED for p in load(SETS[n])]
    return out + [("extra", {**p, "_file": "extra"}) for p in EXTRA]


@pytest.fixture(scope="module")
def recorded(rows, embedder, scorer) -> pair_replay.Signals:
    verifier = RerankVerifier(VerifierConfig(url=scorer, model="t", timeoutSeconds=30))

    async def go() -> pair_replay.Signals:
        try:
            return await pair_replay.record(rows, parse_config({}), embedder, verifier, floor=0.6)
        finally:
            await verifier.aclose()

    return asyncio.run(go())


def _live(rows: list[tuple[str, Item]], embedder: SidecarEmbedder, url: str, setting: Any) -> dict[str, bool]:
    raw: dict[str, Any] = {}
    if setting is not None:
        raw = {"cache": {"guard": {"verifier": {"url": url, "model": "t", "timeoutSeconds": 30, **setting}}}}
    report = asyncio.run(
        evaluate_pairs([p for _, p in rows], parse_config(raw), embedder=embedder, details=True)
    )
    assert report.get("verifier", {}).get("errors", 0) == 0
    against = {str(r["id"]) for r in report["wrong"]}
    return {f"{n}:{p['id']}": bool(p["same_answer"]) != (str(p["id"]) in against) for n, p in rows}


def test_the_signals_cover_every_kind_of_pair(recorded: pair_replay.Signals) -> None:
    by_id = {i: k for k, i in enumerate(recorded.ids)}
    assert recorded.fixed[by_id["x-exact"]] == 1  # whitespace collapses into the same exact key
    assert recorded.fixed[by_id["x-bypass"]] == 0  # "today": never cached
    typo = by_id["x-typo"]
    assert recorded.fixed[typo] == -1 and recorded.near[typo]
    assert guard.RULES[recorded.rule[by_id["x-neg"]]] == "negation"
    open_ = recorded.fixed < 0
    asked = ~np.isnan(recorded.score)
    # the verifier was asked exactly about the open pairs a setting from cosine 0.6 could send it
    assert (asked == (open_ & ((recorded.sim >= 0.6) | recorded.near))).all()
    assert not asked[by_id["x-far"]] and open_[by_id["x-far"]]


@pytest.mark.parametrize("setting", SETTINGS, ids=str)
def test_the_replay_decides_every_pair_as_the_live_path(rows, embedder, recorded, setting) -> None:
    with run_server(pair_replay.memo_app(recorded)) as url:
        live = _live(rows, embedder, url, setting)
    assert pair_replay.disagreements(recorded, setting, live) == []
    # and the setting matters: not everything, not nothing
    served = pair_replay.served(recorded, setting)
    assert 0 < served.sum() < len(served)


def test_the_memo_server_refuses_a_pair_it_has_no_score_for(rows, embedder, recorded) -> None:
    # below the recorded floor of 0.6, every rule overruled: the far pair reaches the verifier
    setting = {"minSimilarity": 0.05, "minScore": 0.5, "overrule": list(guard.RULES)}
    with run_server(pair_replay.memo_app(recorded)) as url:
        raw = {"cache": {"guard": {"verifier": {"url": url, "model": "t", "onError": "miss", **setting}}}}
        report = asyncio.run(evaluate_pairs([p for _, p in rows], parse_config(raw), embedder=embedder))
    assert report["verifier"]["errors"] > 0
    with pytest.raises(ValueError, match=r"no verifier score recorded for \d+ candidates, e\.g\. \w+:"):
        pair_replay.served(recorded, setting)


def _signals(rows: list[tuple[str, bool, bool, float, str | None, float]]) -> pair_replay.Signals:
    """(set, same, tune, sim, rule, score) rows, none fixed, none near."""
    n = len(rows)
    return pair_replay.Signals(
        ids=[str(k) for k in range(n)],
        sets=[r[0] for r in rows],
        same=np.array([r[1] for r in rows]),
        tune=np.array([r[2] for r in rows]),
        scope=np.zeros(n, dtype=bool),
        fixed=np.full(n, -1, dtype=np.int8),
        sim=np.array([r[3] for r in rows]),
        near=np.zeros(n, dtype=bool),
        rule=np.array([-1 if r[4] is None else guard.RULES.index(r[4]) for r in rows], dtype=np.int16),
        score=np.array([r[5] for r in rows]),
        texts=[("q", "d")] * n,
    )


# Set s: a paraphrase at cosine 0.75 scored 0.8, one a scope rule refuses scored 0.95, a trap at 0.9
# scored 0.6; set t: one trap scored 0.99 that the scope rule refuses.
TOY = _signals(
    [
        ("s", True, True, 0.75, None, 0.8),
        ("s", True, True, 0.9, "scope", 0.95),
        ("s", False, True, 0.9, None, 0.6),
        ("t", True, True, 0.9, None, 0.9),
        ("t", False, True, 0.9, "scope", 0.99),
    ]
)


def test_choose_breaks_a_tie_in_served_by_fewer_wrong_and_counts_sets_over_two_percent() -> None:
    loose = {"minSimilarity": 0.7, "minScore": 0.5}  # serves 2 paraphrases and the trap scored 0.6
    strict = {"minSimilarity": 0.7, "minScore": 0.7}  # the same 2 paraphrases, no trap
    overturn = {"minSimilarity": 0.7, "minScore": 0.7, "overrule": ["scope"], "overruleMinScore": 0.9}
    got = pair_replay.choose(TOY, ["s", "t"], [loose, strict], max_wrong=0.5, max_sets_over=2)
    assert got is not None and got[0] == strict
    # overturning serves 3 for 1 trap, in set t (1 of 1): refused when no set may pass 2%
    got = pair_replay.choose(TOY, ["s", "t"], [overturn, strict], max_wrong=0.5, max_sets_over=0)
    assert got is not None and got[0] == strict and got[1].sets_over == ()
    loosest = pair_replay.Tallies(TOY, ["s", "t"], "tune").figures(pair_replay.served(TOY, overturn))
    assert loosest.sets_over == ("t",) and (loosest.hit, loosest.wrong) == (3, 1)


def test_choose_respects_the_bound_and_says_when_nothing_qualifies() -> None:
    loose = {"minSimilarity": 0.7, "minScore": 0.5}
    strict = {"minSimilarity": 0.7, "minScore": 0.7}
    overturn = {"minSimilarity": 0.7, "minScore": 0.7, "overrule": ["scope"], "overruleMinScore": 0.9}
    got = pair_replay.choose(TOY, ["s", "t"], [loose, strict, overturn], max_wrong=0.0, max_sets_over=0)
    assert got is not None and got[0] == strict and (got[1].hit, got[1].wrong) == (2, 0)
    # with one trap in two allowed, overturning serves all three paraphrases
    got = pair_replay.choose(TOY, ["s", "t"], [loose, strict, overturn], max_wrong=0.5, max_sets_over=2)
    assert got is not None and got[0] == overturn and (got[1].hit, got[1].wrong) == (3, 1)
    assert pair_replay.choose(TOY, ["s", "t"], [loose], max_wrong=0.0, max_sets_over=0) is None


def test_each_set_gets_the_setting_its_own_tune_half_prefers() -> None:
    strict = {"minSimilarity": 0.7, "minScore": 0.7}
    overturn = {"minSimilarity": 0.7, "minScore": 0.7, "overrule": ["scope"], "overruleMinScore": 0.9}
    own = pair_replay.choose_per_set(TOY, ["s", "t"], [strict, overturn], max_wrong=0.0)
    # s gains its scope-refused paraphrase at no cost; t would serve its 0.99 trap
    assert own == {"s": overturn, "t": strict}


def test_the_grid_holds_only_valid_settings_and_the_benchs_chosen_one() -> None:
    settings = list(pair_replay.grid())
    for s in settings[:: max(1, len(settings) // 500)]:
        VerifierConfig(url="http://x", model="m", **s)  # raises on an invalid setting
    assert {
        "minSimilarity": 0.7,
        "minScore": 0.5,
        "overrule": ["negation", "number", "date", "scope"],
        "overruleMinScore": 0.998,
    } in settings
    no_overrule = [s for s in settings if not s["overrule"]]
    assert len(no_overrule) == len(pair_replay.GRID_MIN_SIMILARITY) * len(pair_replay.GRID_MIN_SCORE)
