"""Many verifier settings from one scoring pass: record each pair's signals, replay the decision.

Measuring a setting through the live decision path asks the verifier about every candidate again
(about 900 a minute on 2 cores for section 1d's model), so a grid of settings cannot be run that
way. For a pair of single questions, everything the decision reads is fixed by the pair, not by the
verifier's setting:

- whether the pair is decided before any candidate is weighed (``fixed``): an exact repeat is
  served; a bypassed question, or a text refused semantic reuse, never is;
- the cosine of the two texts, as the store computes it;
- whether they are near duplicates (``guard.near_duplicate``);
- the first guard rule that refuses (``guard.compare``, in registry order);
- the verifier's score for the pair, asked once through the sidecar's own rerank client.

:func:`record` takes them once, through the sidecar's own functions. :func:`served` replays
``CacheService._lookup`` for the one candidate from them, under any ``cache.guard.verifier``
setting, in about a millisecond for every pair at once.

The replay is a second copy of the decision, so it is checked. The bench measures its settings
through the live path (``evaluate_pairs``) against :func:`memo_app`, a server that answers the
recorded scores on the rerank wire format and refuses a pair it has no score for. Then
:func:`disagreements` compares every pair's two decisions; the bench fails on any difference.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bench.quality import Item, category
from hermes_sidecar import guard
from hermes_sidecar.cache import CacheService
from hermes_sidecar.config import SidecarConfig, VerifierConfig
from hermes_sidecar.dialects.openai import CHAT, OpenAIDialect
from hermes_sidecar.embed import Embedder
from hermes_sidecar.evaluate import in_split
from hermes_sidecar.generations import LOCAL
from hermes_sidecar.keys import keys_for
from hermes_sidecar.metrics import Metrics
from hermes_sidecar.store.memory import MemoryStore
from hermes_sidecar.verify import Verifier

Setting = Mapping[str, Any] | None  # a cache.guard.verifier block, or None for no verifier

# What a grid searches, strictest first (choose() breaks ties toward the earlier setting). Every
# subset of the guard's rules may be overruled; overruleMinScore None means minScore (the default).
GRID_MIN_SIMILARITY = (0.85, 0.8, 0.75, 0.7, 0.65, 0.6)
GRID_MIN_SCORE = (0.9, 0.7, 0.5, 0.3)
GRID_OVERRULE_MIN_SCORE = (0.999, 0.998, 0.995, 0.99, 0.97, 0.95, 0.9, None)


@dataclass
class Signals:
    """One row per pair; ``texts`` are (query, document) as the verifier is sent them."""

    ids: list[str]
    sets: list[str]
    same: npt.NDArray[np.bool_]
    tune: npt.NDArray[np.bool_]
    scope: npt.NDArray[np.bool_]  # the pair is in the scope category
    fixed: npt.NDArray[np.int8]  # 1 served whatever the setting, 0 never, -1 the candidate decides
    sim: npt.NDArray[np.float64]
    near: npt.NDArray[np.bool_]
    rule: npt.NDArray[np.int16]  # index in guard.RULES of the first rule that refuses, -1 none
    score: npt.NDArray[np.float64]  # NaN where not asked
    texts: list[tuple[str, str]]


def _request(text: str) -> Any:
    return OpenAIDialect().parse_request(
        CHAT, {"model": "eval-model", "messages": [{"role": "user", "content": text}]}
    )


async def record(
    items: Sequence[tuple[str, Item]],
    cfg: SidecarConfig,
    embedder: Embedder,
    verifier: Verifier | None,
    floor: float,
    concurrency: int = 32,
) -> Signals:
    """Each pair's signals, ``items`` as (set name, pair) of single questions, decided as
    ``evaluate_pairs`` decides them under ``cfg`` (its own tenant per pair, ``a`` stored first, no
    age). The verifier is asked about every candidate a setting could send it: not fixed, and at or
    above ``floor`` or a near duplicate. ``embedder`` must memoise (as the bench's does), so that the
    live path is handed the vectors recorded here: a batch may differ from a lone text in the last
    bits."""
    cache = cfg.cache
    if cache.decay.mode != "off" or cache.toolPlans.enabled or not cache.guard.enabled:
        raise ValueError("the replay covers the guard on, decay off and toolPlans off only")
    svc = CacheService(cache, MemoryStore(1), embedder, Metrics(), generation=LOCAL)
    n = len(items)
    fixed = np.full(n, -1, dtype=np.int8)
    texts: list[tuple[str, str]] = [("", "")] * n
    for i, (_, p) in enumerate(items):
        a, b = p["a"], p["b"]
        if not isinstance(a, str) or not isinstance(b, str):
            raise ValueError(f"pair {p['id']}: the replay covers single questions, not conversations")
        ra, rb = _request(a), _request(b)
        if svc.bypass_reason(ra, {}) or svc.bypass_reason(rb, {}):
            fixed[i] = 0  # a is not stored, or b is not looked up
            continue
        tenant = "eval:" + str(p["id"])
        ka = keys_for(ra, LOCAL.id, tenant, svc.limits, producer=svc.tenancy.producer)
        kb = keys_for(rb, LOCAL.id, tenant, svc.limits, producer=svc.tenancy.producer)
        if ka.exact == kb.exact:
            fixed[i] = 1
        elif ka.semantic_text is None or kb.semantic_text is None:
            fixed[i] = 0
        else:
            texts[i] = (kb.semantic_text, ka.semantic_text)
    open_ = np.flatnonzero(fixed < 0)
    sim = np.full(n, np.nan)
    near = np.zeros(n, dtype=bool)
    rule = np.full(n, -1, dtype=np.int16)
    score = np.full(n, np.nan)
    if len(open_):
        distinct = sorted({t for i in open_ for t in texts[i]})
        vectors = dict(zip(distinct, await embedder.embed(distinct), strict=True))
        for k in open_:
            q, d = texts[k]
            sim[k] = float((np.stack([vectors[d]]) @ vectors[q])[0])  # as MemoryStore.search computes it
            near[k] = guard.near_duplicate(q, d)
            fired = guard.compare(guard.features(q), guard.features(d))
            rule[k] = -1 if fired is None else guard.RULES.index(fired)
    if verifier is not None:
        asked = [int(i) for i in open_ if sim[i] >= floor or near[i]]
        gate = asyncio.Semaphore(concurrency)

        async def judge(i: int) -> None:
            async with gate:
                q, d = texts[i]
                score[i] = (await verifier.judge(q, [d])).scores[0]

        await asyncio.gather(*(judge(i) for i in asked))
    return Signals(
        ids=[str(p["id"]) for _, p in items],
        sets=[name for name, _ in items],
        same=np.array([bool(p["same_answer"]) for _, p in items]),
        tune=np.array([in_split(str(p["id"]), "tune") for _, p in items]),
        scope=np.array([category(p) == "scope" for _, p in items]),
        fixed=fixed,
        sim=sim,
        near=near,
        rule=rule,
        score=score,
        texts=texts,
    )


def served(sig: Signals, setting: Setting, threshold: float = 0.85) -> npt.NDArray[np.bool_]:
    """Which pairs ``CacheService._lookup`` serves under ``setting`` (a ``cache.guard.verifier``
    block with its defaults, or None), replayed from ``sig``. A verifier score that was not recorded
    for a candidate the setting asks about is an error, as the live path's would be."""
    out = sig.fixed == 1
    open_ = sig.fixed < 0
    if setting is None:
        cosine: npt.NDArray[np.bool_] = out | (open_ & (sig.rule < 0) & ((sig.sim >= threshold) | sig.near))
        return cosine
    v = VerifierConfig.model_validate({"url": "http://replay", "model": "replay", **setting})
    overrule = [guard.RULES.index(r) for r in v.overrule]
    candidate = open_ & ((sig.sim >= min(v.minSimilarity, threshold)) | sig.near)
    passed = candidate & (sig.rule < 0)
    overruled = candidate & np.isin(sig.rule, overrule)
    asked = overruled | passed
    if v.scope == "uncertain":
        alone = passed & ((sig.sim >= threshold) | sig.near)
        asked = asked & ~alone
        out = out | alone
    missing = asked & np.isnan(sig.score)
    if missing.any():
        raise ValueError(
            f"no verifier score recorded for {int(missing.sum())} candidates, e.g. {_first(sig, missing)}"
        )
    with np.errstate(invalid="ignore"):
        judged: npt.NDArray[np.bool_] = (
            out
            | (passed & asked & (sig.score >= v.min_score(False)))
            | (overruled & (sig.score >= v.min_score(True)))
        )
    return judged


def _first(sig: Signals, mask: npt.NDArray[np.bool_]) -> str:
    i = int(np.flatnonzero(mask)[0])
    return f"{sig.sets[i]}:{sig.ids[i]}"


def disagreements(
    sig: Signals, setting: Setting, live: Mapping[str, bool], threshold: float = 0.85
) -> list[str]:
    """The pairs (set:id) the replay decides otherwise than the live path did (``live``: served, by
    set:id)."""
    replayed = served(sig, setting, threshold)
    return [
        f"{s}:{i}" for s, i, r in zip(sig.sets, sig.ids, replayed, strict=True) if live[f"{s}:{i}"] != bool(r)
    ]


def memo_app(sig: Signals) -> Starlette:
    """``POST /rerank`` answering the recorded scores; a pair with none is a 404, which the sidecar
    counts as a verifier error."""
    scores = {t: float(s) for t, s in zip(sig.texts, sig.score, strict=True) if not np.isnan(s)}

    async def rerank(request: Request) -> Response:
        body = await request.json()
        results = []
        for i, doc in enumerate(body["documents"]):
            s = scores.get((body["query"], doc))
            if s is None:
                return JSONResponse({"error": f"no recorded score for {body['query']!r} / {doc!r}"}, 404)
            results.append({"index": i, "relevance_score": s})
        return JSONResponse({"id": "replay", "model": body["model"], "results": results})

    return Starlette(routes=[Route("/rerank", rerank, methods=["POST"])])


def grid() -> Iterator[dict[str, Any]]:
    """Every setting a grid search tries, strictest first: each minSimilarity, minScore, subset of
    rules to overrule (fewest first) and, when one is, overruleMinScore at or above minScore."""
    subsets = [list(c) for k in range(len(guard.RULES) + 1) for c in itertools.combinations(guard.RULES, k)]
    for min_sim in GRID_MIN_SIMILARITY:
        for min_score in GRID_MIN_SCORE:
            for overrule in subsets:
                bars = (
                    [b for b in GRID_OVERRULE_MIN_SCORE if b is None or b >= min_score]
                    if overrule
                    else [None]
                )
                for bar in bars:
                    s: dict[str, Any] = {
                        "minSimilarity": min_sim,
                        "minScore": min_score,
                        "overrule": overrule,
                    }
                    if bar is not None:
                        s["overruleMinScore"] = bar
                    yield s


@dataclass(frozen=True)
class Figures:
    """Counts for one setting on one half of some sets."""

    hit: int
    should: int
    wrong: int
    traps: int
    sets_over: tuple[str, ...]  # the sets above 2% wrong
    scope_wrong: int
    scope_traps: int


class Tallies:
    """Per-set counts of a served vector, for the pairs of ``chosen`` sets on one half."""

    def __init__(self, sig: Signals, chosen: Sequence[str], half: str) -> None:
        names = sorted(set(chosen))
        index = {n: k for k, n in enumerate(names)}
        self.names = names
        self._set = np.array([index.get(s, -1) for s in sig.sets])
        keep = (self._set >= 0) & (sig.tune if half == "tune" else ~sig.tune)
        self._should = keep & sig.same
        self._trap = keep & ~sig.same
        self._scope_trap = self._trap & sig.scope
        k = len(names)
        self.traps_per_set = np.bincount(self._set[self._trap], minlength=k)
        self.should_per_set = np.bincount(self._set[self._should], minlength=k)

    def per_set(self, s: npt.NDArray[np.bool_]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """(served should-hit pairs, served traps) per set, in ``names`` order."""
        k = len(self.names)
        return (
            np.bincount(self._set[self._should & s], minlength=k),
            np.bincount(self._set[self._trap & s], minlength=k),
        )

    def figures(self, s: npt.NDArray[np.bool_]) -> Figures:
        hit, wrong = self.per_set(s)
        with np.errstate(invalid="ignore", divide="ignore"):
            over = (self.traps_per_set > 0) & (wrong / self.traps_per_set > 0.02)
        return Figures(
            hit=int(hit.sum()),
            should=int(self.should_per_set.sum()),
            wrong=int(wrong.sum()),
            traps=int(self.traps_per_set.sum()),
            sets_over=tuple(n for n, o in zip(self.names, over, strict=True) if o),
            scope_wrong=int((self._scope_trap & s).sum()),
            scope_traps=int(self._scope_trap.sum()),
        )


def choose(
    sig: Signals, sets: Sequence[str], settings: Sequence[Setting], max_wrong: float, max_sets_over: int
) -> tuple[Setting, Figures] | None:
    """The setting that serves most of ``sets``' tune halves with pooled wrong at most ``max_wrong``
    and at most ``max_sets_over`` sets above 2%; ties go to fewer wrong, then to the earlier setting.
    None when no setting qualifies."""
    tally = Tallies(sig, sets, "tune")
    best: tuple[tuple[int, int, int], Setting, Figures] | None = None
    for k, setting in enumerate(settings):
        f = tally.figures(served(sig, setting))
        if f.wrong > max_wrong * f.traps or len(f.sets_over) > max_sets_over:
            continue
        rank = (-f.hit, f.wrong, k)
        if best is None or rank < best[0]:
            best = (rank, setting, f)
    return None if best is None else (best[1], best[2])


def choose_per_set(
    sig: Signals, sets: Sequence[str], settings: Sequence[Setting], max_wrong: float = 0.02
) -> dict[str, Setting]:
    """For each set, the setting a deployment with only that set's tune half would pick: the most
    served there at wrong <= ``max_wrong``, ties to fewer wrong, then the earlier setting; every
    set has the first setting when none qualifies."""
    tally = Tallies(sig, sets, "tune")
    best: dict[str, tuple[tuple[int, int, int], Setting]] = {}
    for k, setting in enumerate(settings):
        hit, wrong = tally.per_set(served(sig, setting))
        for j, name in enumerate(tally.names):
            if wrong[j] > max_wrong * tally.traps_per_set[j]:
                continue
            rank = (-int(hit[j]), int(wrong[j]), k)
            if name not in best or rank < best[name][0]:
                best[name] = (rank, setting)
    return {n: best[n][1] if n in best else settings[0] for n in tally.names}
