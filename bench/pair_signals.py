"""What the embedder alone can tell about a pair, with no cross-encoder: two model-free pairwise signals.

The guard's rules were fitted on the tune halves and move the holdout halves by a pair at most
(docs/sidecar.md, "What the rules cannot do"). Before reaching for a pairwise model, this measures the two
pairwise signals the sidecar could build from what it already has, the local embedder's vectors:

- **word alignment**: a content word of one question (the guard's own tokens and keys) that no word of
  the other matches, by key or by the cosine of the two words' own vectors (>= ``--align``). A trap
  usually adds or changes one slot ("all pods in every namespace"); a paraphrase rewords every slot.
- **a pair head**: logistic regression on ``[u*v, |u-v|, cos]`` of the two questions' vectors (the
  classic head of a siamese encoder), trained leave-one-set-out, so each set is scored by a head that
  never saw its domain.

Each signal is scored **alone** (no guard rules) on the pairs the similarity threshold lets through
(cosine >= 0.85), on the **tune halves only**: the holdout halves stay unread for the day a real model
is measured. A useful signal refuses few should-hit pairs and catches most traps.

    python -m bench.pair_signals [--align 0.8] [--head 0.5]      a table on stdout
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from bench import quality
from bench.embedding import hermes_embedder
from bench.quality import FIT, SETS, Item, load
from hermes_sidecar.evaluate import in_split
from hermes_sidecar.guard.features import features, key

THRESHOLD = 0.85  # the sidecar's default similarity threshold


def unaligned(
    a: Sequence[str], b: Sequence[str], vec: Callable[[str], npt.NDArray[np.float32]], tau: float
) -> list[str]:
    """Content words of ``a`` that no word of ``b`` matches by key or by a word-vector cosine >= tau."""
    if not b:
        return list(a)
    keys = {key(w) for w in b}
    others = np.stack([vec(w) for w in b])
    return [w for w in a if key(w) not in keys and float((others @ vec(w)).max()) < tau]


def pair_vector(u: npt.NDArray[np.float32], v: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    return np.concatenate([u * v, np.abs(u - v), [float(u @ v)]]).astype(np.float64)


def fit_logistic(
    x: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    l2: float = 1e-2,
    steps: int = 3000,
    lr: float = 0.5,
) -> Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]]:
    """Standardised features, L2-penalised logistic regression by full-batch gradient descent."""
    mu, sd = x.mean(axis=0), x.std(axis=0) + 1e-6
    z = (x - mu) / sd
    w, b = np.zeros(z.shape[1]), 0.0
    for _ in range(steps):
        g = 1 / (1 + np.exp(-(z @ w + b))) - y
        w -= lr * (z.T @ g / len(y) + l2 * w)
        b -= lr * float(g.mean())
    return lambda q: 1 / (1 + np.exp(-(((q - mu) / sd) @ w + b)))


def rates(labels: Sequence[bool], flagged: Sequence[bool]) -> tuple[float, float]:
    """(share of should-hit pairs refused, share of traps caught) when a flag refuses the pair; 0 when
    there are none of a kind."""
    r = quality.rates(labels, [not f for f in flagged])
    served, wrong = r["served"], r["wrong"]
    return (0.0 if served is None else 1 - served), (0.0 if wrong is None else 1 - wrong)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.pair_signals", description=__doc__.split("\n")[0])
    ap.add_argument("--align", type=float, default=0.8, help="word-vector cosine that counts as a match")
    ap.add_argument(
        "--head", type=float, default=0.5, help="the head's P(same answer) below which it refuses"
    )
    args = ap.parse_args(argv)

    embedder = hermes_embedder()  # remembers each text's vector: a question or word is embedded once
    sets: dict[str, list[Item]] = {
        name: [p for p in load(s) if in_split(str(p["id"]), FIT)] for name, s in SETS.items() if s.questions
    }
    items = [(name, p) for name, ps in sets.items() for p in ps]
    texts = [t for _, p in items for t in (p["a"], p["b"])]
    embedder.batch(texts + [w for t in texts for w in features(t).content])  # in batches, once
    x = np.stack([pair_vector(embedder.one(p["a"]), embedder.one(p["b"])) for _, p in items])
    y = np.array([1.0 if p["same_answer"] else 0.0 for _, p in items])
    names = np.array([name for name, _ in items])
    p_same = np.zeros(len(items))
    for name in sets:  # leave one set out: the head never saw the domain it scores
        p_same[names == name] = fit_logistic(x[names != name], y[names != name])(x[names == name])

    print(f"tune halves; pairs at cosine >= {THRESHOLD}; each signal alone (no guard rules)\n")
    print(f"| set | pairs (should hit / traps) | alignment < {args.align}: hits refused | traps caught "
          f"| head P < {args.head}: hits refused | traps caught |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for name in sets:
        rows = [i for i, (n, p) in enumerate(items) if n == name and float(x[i, -1]) >= THRESHOLD]
        labels = [bool(y[i]) for i in rows]
        aligned = []
        for i in rows:
            fa, fb = features(items[i][1]["a"]), features(items[i][1]["b"])
            extra = unaligned(fa.content, fb.content, embedder.one, args.align)
            extra += unaligned(fb.content, fa.content, embedder.one, args.align)
            aligned.append(bool(extra))
        a_refused, a_caught = rates(labels, aligned)
        h_refused, h_caught = rates(labels, [bool(p_same[i] < args.head) for i in rows])
        counts = f"{len(rows)} ({sum(labels)} / {len(rows) - sum(labels)})"
        print(f"| {name} | {counts} | {a_refused:.0%} | {a_caught:.0%} | {h_refused:.0%} | {h_caught:.0%} |")


if __name__ == "__main__":
    main()
