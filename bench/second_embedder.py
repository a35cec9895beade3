"""Would a second embedding model, asked after the guard, refuse traps more cheaply than a higher threshold?

The guard's rules stop carrying to sets they were not fitted on (docs/sidecar.md): pooled, the clean
holdout halves are served at about 2.5% wrong at the default threshold (docs/benchmarks.md, section 1).
Two models trained differently might be fooled by different traps. This scores, on the clean bench/data
sets (not fow-cache's, not the four whose holdout halves were read), every pair through the sidecar's
live decision path at its defaults (``evaluate_pairs``), then, for the pairs it serves, two ways of
refusing more:

- **a higher threshold**: served only if the default embedder's cosine is >= t (a pair served below
  the default, by the typo path, stays served: the live path considers it at any threshold);
- **a second embedder**: served only if the other packaged local model's cosine is >= t2.

Each is a curve of (served, wrong), pooled over the sets, on the tune and the holdout halves side by
side; a useful second model would lie above the threshold's curve: fewer traps for the same served.

    python -m bench.second_embedder [--model all-MiniLM-L6-v2-int8]      a table on stdout (~10 min)
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bench.embedding import MemoEmbedder, hermes_embedder
from bench.quality import SETS, Item, SidecarEmbedder, load
from bench.report.sections import clean, interval
from hermes_sidecar.evaluate import in_split

DEFAULT = 0.85  # the sidecar's similarity threshold
THRESHOLDS = (0.85, 0.86, 0.87, 0.88, 0.89, 0.9, 0.92)
SECOND = (0.6, 0.65, 0.7, 0.75, 0.8, 0.85)


@dataclass(frozen=True)
class Pair:
    same_answer: bool
    tune: bool
    served: bool  # at the sidecar's defaults, guard on
    cosine: float  # the default embedder's
    second: float  # the second model's


def served_and_wrong(pairs: Sequence[Pair], keep: Sequence[bool]) -> tuple[int, int, int, int]:
    """(should-hit pairs served, should-hit pairs, traps served, traps) when a pair is served only if
    the sidecar served it and ``keep`` says so."""
    hit = sum(p.served and k for p, k in zip(pairs, keep, strict=True) if p.same_answer)
    wrong = sum(p.served and k for p, k in zip(pairs, keep, strict=True) if not p.same_answer)
    should = sum(p.same_answer for p in pairs)
    return hit, should, wrong, len(pairs) - should


Counts = tuple[int, int, int, int]


def curves(pairs: Sequence[Pair]) -> list[tuple[str, Counts, Counts]]:
    """One row per setting: its name, then served_and_wrong's counts on the tune and the holdout half."""
    tune, holdout = [p for p in pairs if p.tune], [p for p in pairs if not p.tune]
    rows: list[tuple[str, Counts, Counts]] = []
    for t in THRESHOLDS:
        # below the default a pair is served only by the typo path, which no threshold stops
        keep = [[p.cosine >= t or p.cosine < DEFAULT for p in half] for half in (tune, holdout)]
        rows.append((f"threshold {t:g}", served_and_wrong(tune, keep[0]), served_and_wrong(holdout, keep[1])))
    for t in SECOND:
        keep = [[p.second >= t for p in half] for half in (tune, holdout)]
        name = f"threshold {DEFAULT:g}, second model >= {t:g}"
        rows.append((name, served_and_wrong(tune, keep[0]), served_and_wrong(holdout, keep[1])))
    return rows


def _cosines(memo: MemoEmbedder, items: Sequence[Item]) -> list[float]:
    a = memo.batch([str(p["a"]) for p in items])
    b = memo.batch([str(p["b"]) for p in items])
    return [float(x) for x in np.einsum("ij,ij->i", a, b)]


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.second_embedder", description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="all-MiniLM-L6-v2-int8", help="the second packaged local model")
    args = ap.parse_args(argv)

    from hermes_sidecar.config import SidecarConfig
    from hermes_sidecar.embed import LocalEmbedder
    from hermes_sidecar.evaluate import evaluate_pairs

    first = hermes_embedder()
    shared = SidecarEmbedder(first)  # the sidecar's decisions and the cosines from the same vectors
    second = MemoEmbedder(LocalEmbedder(args.model).embed_sync, args.model)
    pairs: list[Pair] = []
    names = [n for n, s in SETS.items() if s.questions and clean(n, s.fow_cache)]
    for name in names:
        items = load(SETS[name])
        report = asyncio.run(evaluate_pairs(items, SidecarConfig(), embedder=shared, details=True))
        # --details lists the pairs decided against their label: the rest were decided as labelled
        against = {str(r["id"]) for r in report["wrong"]}
        served = [bool(p["same_answer"]) != (str(p["id"]) in against) for p in items]
        for p, s, c, c2 in zip(items, served, _cosines(first, items), _cosines(second, items), strict=True):
            pairs.append(Pair(bool(p["same_answer"]), in_split(str(p["id"]), "tune"), s, c, c2))

    print(
        f"{len(names)} clean bench/data sets, pooled; the sidecar's defaults (guard on), then each setting;"
    )
    print(f"second model: {args.model}; served and wrong with 95% Wilson intervals\n")
    print("| setting | tune: served | tune: wrong | holdout: served | holdout: wrong |")
    print("|---|---|---|---|---|")
    for name, (th, ts, tw, tt), (hh, hs, hw, ht) in curves(pairs):
        print(
            f"| {name} | {interval(th, ts)} | {interval(tw, tt)} | {interval(hh, hs)} | {interval(hw, ht)} |"
        )


if __name__ == "__main__":
    main()
