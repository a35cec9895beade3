"""1. Quality on the fow-cache pairs: Hermes Cache vs RedisVL SemanticCache vs GPTCache.

Every system gets the same embedding model (the sidecar's local embedder) and runs its real code:
- Hermes: `hermes-sidecar evaluate` at its defaults, the decision path of live requests (partitions,
  guard, threshold); the threshold sweep runs the same evaluation in-process with the shared embedder.
- RedisVL: `SemanticCache` on the same Redis, through fow-cache's own adapter (store the cached side,
  `check` the new side, cleared between pairs), at its default `distance_threshold` (0.1) and at the
  best threshold a sweep finds on this very data (optimistic by construction: it is fitted on the test).
- GPTCache: `init_similar_cache` with its default data manager (sqlite + faiss), its default similarity
  evaluation (`SearchDistanceEvaluation`) and threshold (`Config().similarity_threshold`), a fresh cache
  per pair; the rank its evaluation computes is recorded so its threshold can be swept too.
Conversations are keyed on the last user message for RedisVL and GPTCache, as they do by default.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.common import OUT, ROOT, Context, Skip, Timer, write_json
from bench.embedding import MemoEmbedder, gptcache_embedding, hermes_embedder, redisvl_vectorizer

GPTCACHE_DIR = OUT / "gptcache-data"
MAX_WRONG = 0.02  # the target: >= 85% served with <= 2% wrong


def _load(dataset: str) -> list[dict[str, Any]]:
    from fow_cache.data import load_conversations, load_questions

    return list(load_questions() if dataset == "questions" else load_conversations())


def _curve(scores: list[float], labels: list[bool], thresholds: list[float]) -> list[dict[str, float]]:
    """(threshold, served, wrong) for a score where higher means 'serve'."""
    pos = sum(labels) or 1
    neg = (len(labels) - sum(labels)) or 1
    out = []
    for t in thresholds:
        served = sum(1 for s, y in zip(scores, labels, strict=True) if y and s >= t) / pos
        wrong = sum(1 for s, y in zip(scores, labels, strict=True) if not y and s >= t) / neg
        out.append({"threshold": t, "served": served, "wrong": wrong})
    return out


def _sweep_thresholds(scores: list[float]) -> list[float]:
    """Every distinct score is a threshold where the curve can change: the curve is exact, not sampled."""
    return sorted({round(s, 6) for s in scores} | {0.0, 1.0})


def _best(curve: list[dict[str, float]]) -> dict[str, float] | None:
    ok = [p for p in curve if p["wrong"] <= MAX_WRONG]
    return max(ok, key=lambda p: (p["served"], p["threshold"])) if ok else None


def _by_group(items: list[dict[str, Any]], served: list[bool]) -> dict[str, float]:
    groups: dict[str, list[bool]] = {}
    for item, s in zip(items, served, strict=True):
        g = item.get("ambiguous") or item.get("category") or item.get("subtype") or "?"
        groups.setdefault(str(g), []).append(s)
    return {g: sum(v) / len(v) for g, v in groups.items()}


def _text(x: Any) -> str:
    return str(x[-1]["content"]) if isinstance(x, list) else str(x)


# ---------------------------------------------------------------------------------------------- RedisVL


def redisvl_scores(ctx: Context, embedder: MemoEmbedder, items: list[dict[str, Any]]) -> dict[str, Any]:
    from fow_cache.adapters import redisvl_check
    from redisvl.extensions.cache.llm import SemanticCache

    cache = SemanticCache(
        name="hermes-bench-quality",
        redis_url=ctx.redis_url,
        vectorizer=redisvl_vectorizer(embedder),
        overwrite=True,
    )
    default_distance = float(cache.distance_threshold)
    check = redisvl_check(cache)
    with Timer() as t:
        scores = [float(check(i["a"], i["b"])) for i in items]
    cache.delete()
    return {
        "scores": scores,
        "default_threshold": 1.0 - default_distance,
        "default_distance_threshold": default_distance,
        "seconds": t.seconds,
    }


# ---------------------------------------------------------------------------------------------- GPTCache


def gptcache_scores(embedder: MemoEmbedder, items: list[dict[str, Any]]) -> dict[str, Any]:
    try:
        from gptcache import Cache, Config
        from gptcache.adapter.api import get, init_similar_cache, put
        from gptcache.similarity_evaluation.distance import SearchDistanceEvaluation
    except Exception as exc:  # any import failure is the finding, recorded verbatim
        return {"error": f"{type(exc).__name__}: {exc}"}

    class Recording(SearchDistanceEvaluation):  # type: ignore[misc]
        """GPTCache's default evaluation, unchanged, remembering the rank it returned."""

        last: float | None = None

        def evaluation(self, src_dict: Any, cache_dict: Any, **kw: Any) -> float:
            rank = float(super().evaluation(src_dict, cache_dict, **kw))
            self.last = rank
            return rank

    embedding = gptcache_embedding(embedder)
    default_threshold = float(Config().similarity_threshold)
    scores: list[float] = []
    hits: list[bool] = []
    # GPTCache flushes every cache again at interpreter exit (an atexit hook per Cache), so its
    # folders must outlive this function: they live under bench/out/ and are replaced on the next run.
    GPTCACHE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=GPTCACHE_DIR)
    with Timer() as t:
        for n, item in enumerate(items):
            evaluation = Recording()
            lo, hi = evaluation.range()
            cache = Cache()
            init_similar_cache(
                data_dir=f"{tmp}/{n}", cache_obj=cache, embedding=embedding, evaluation=evaluation
            )
            put(_text(item["a"]), "cached", cache_obj=cache)
            hits.append(get(_text(item["b"]), cache_obj=cache) is not None)
            # GPTCache serves when rank >= (hi - lo) * similarity_threshold: rank / (hi - lo) is a
            # score on the same 0..1 scale as its similarity_threshold.
            scores.append(0.0 if evaluation.last is None else (evaluation.last - lo) / (hi - lo))
            cache.data_manager.close()
    return {
        "scores": scores,
        "hits_at_default": hits,
        "default_threshold": default_threshold,
        "evaluation": "SearchDistanceEvaluation",
        "data_manager": "sqlite,faiss",
        "seconds": t.seconds,
    }


# ---------------------------------------------------------------------------------------------- Hermes


def hermes_cli(pairs: Path) -> dict[str, Any]:
    """`hermes-sidecar evaluate --pairs FILE` at the sidecar's defaults: the number a user reproduces."""
    cmd = [
        str(Path(sys.executable).with_name("hermes-sidecar")),
        "evaluate",
        "--pairs",
        str(pairs),
        "--details",
    ]
    with Timer() as t:
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    if proc.returncode != 0:
        raise Skip(f"`hermes-sidecar evaluate` failed (exit {proc.returncode}): {proc.stderr.strip()[-600:]}")
    try:
        report: dict[str, Any] = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise Skip(f"`hermes-sidecar evaluate` printed no JSON: {proc.stdout[-300:]!r}") from None
    report["_seconds"] = t.seconds
    return report


def _reasons(rows: Any, key: str = "reason") -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        k = str(r.get(key) or ("below-threshold" if key == "reason" else "?"))
        out[k] = out.get(k, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


class _SidecarEmbedder:
    """The memoised embedder behind the sidecar's Embedder protocol, for the in-process sweep."""

    def __init__(self, memo: MemoEmbedder) -> None:
        self.name = memo.name
        self.dim = memo.dims
        self._memo = memo

    async def embed(self, texts: Any) -> Any:
        return self._memo.batch(list(texts))

    async def aclose(self) -> None:
        return None


def hermes_results(
    embedder: MemoEmbedder, dataset: str, items: list[dict[str, Any]], tmp: Path, points: int
) -> dict[str, Any]:
    pairs = tmp / f"{dataset}.jsonl"
    pairs.write_text(
        "".join(
            json.dumps(
                {
                    "id": i["id"],
                    "category": i.get("ambiguous") or i.get("category") or i.get("subtype"),
                    "a": i["a"],
                    "b": i["b"],
                    "same_answer": i["same_answer"],
                }
            )
            + "\n"
            for i in items
        )
    )
    cli = hermes_cli(pairs)
    out: dict[str, Any] = {
        "default": {
            "served": float(cli["served_rate"]),
            "wrong": float(cli["wrong_rate"]),
            "threshold": float(cli["threshold"]),
        },
        "by_group_default": {
            c: (v["served_rate"] if v["served_rate"] is not None else v["wrong_rate"])
            for c, v in cli.get("categories", {}).items()
        },
        "decisions": cli.get("decisions"),
        "refusals": cli.get("refusals"),
        # why should-hit pairs were not served, from --details (the decision's reason, or the threshold)
        "unserved_should_hit_by_reason": _reasons(r for r in cli.get("wrong", []) if r.get("same_answer")),
        "served_traps_by_category": _reasons(
            (r for r in cli.get("wrong", []) if not r.get("same_answer")), "category"
        ),
        "embedder": cli.get("embedder"),
        "guard": cli.get("guard"),
        "seconds": cli["_seconds"],
    }
    # The sweep calls the same evaluation in-process (hermes_sidecar.evaluate.evaluate_pairs, the live
    # decision path) with the memoised embedder, so 30 thresholds cost one embedding pass.
    try:
        import asyncio

        from hermes_sidecar.config import SidecarConfig
        from hermes_sidecar.evaluate import evaluate_pairs, load_pairs
    except ImportError as exc:
        out["curve_error"] = f"hermes_sidecar.evaluate not importable: {exc}"
        return out
    loaded = load_pairs(pairs)
    emb = _SidecarEmbedder(embedder)
    thresholds = sorted(
        {round(0.60 + 0.39 * k / max(1, points - 1), 3) for k in range(points)}
        | {out["default"]["threshold"]}
    )
    curve = []
    for t in thresholds:
        rep = asyncio.run(evaluate_pairs(loaded, SidecarConfig(), embedder=emb, threshold=t))
        curve.append({"threshold": t, "served": float(rep["served_rate"]), "wrong": float(rep["wrong_rate"])})
    out["curve"] = curve
    out["best"] = _best(curve)
    at_default = next(p for p in curve if p["threshold"] == out["default"]["threshold"])
    # The in-process sweep must reproduce the CLI at the default threshold, or the curve is not ours.
    out["sweep_matches_cli"] = (
        abs(at_default["served"] - out["default"]["served"]) < 1e-3
        and abs(at_default["wrong"] - out["default"]["wrong"]) < 1e-3
    )
    return out


# ---------------------------------------------------------------------------------------------- run


def run(ctx: Context) -> dict[str, Any]:
    shutil.rmtree(GPTCACHE_DIR, ignore_errors=True)
    embedder = hermes_embedder()
    versions: dict[str, str | None] = {}
    for dist in ("redisvl", "gptcache", "faiss-cpu", "sqlalchemy", "fow-cache"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    result: dict[str, Any] = {
        "versions": versions,
        "embedder": embedder.name,
        "dims": embedder.dims,
        "max_wrong": MAX_WRONG,
        "datasets": {},
    }
    for dataset in ctx.sizes.quality_datasets:
        items = _load(dataset)[:: ctx.sizes.quality_stride]
        labels = [bool(i["same_answer"]) for i in items]
        # Embed every text once, up front, so no cache's timing includes first-time embedding.
        embedder.batch([_text(i["a"]) for i in items] + [_text(i["b"]) for i in items])
        ds: dict[str, Any] = {"n": len(items), "should_hit": sum(labels), "traps": len(labels) - sum(labels)}

        rv = redisvl_scores(ctx, embedder, items)
        rv_curve = _curve(rv["scores"], labels, _sweep_thresholds(rv["scores"]))
        rv_default = _curve(rv["scores"], labels, [rv["default_threshold"]])[0]
        best = _best(rv_curve)
        ds["redisvl"] = {
            "default": rv_default | {"distance_threshold": rv["default_distance_threshold"]},
            "best": None if best is None else best | {"distance_threshold": round(1 - best["threshold"], 6)},
            "curve": rv_curve,
            "by_group_default": _by_group(items, [s >= rv["default_threshold"] for s in rv["scores"]]),
            "seconds": rv["seconds"],
        }

        gc = gptcache_scores(embedder, items)
        if "error" in gc:
            ds["gptcache"] = {"error": gc["error"]}
        else:
            gc_curve = _curve(gc["scores"], labels, _sweep_thresholds(gc["scores"]))
            hits = gc["hits_at_default"]
            pos = [h for h, y in zip(hits, labels, strict=True) if y]
            neg = [h for h, y in zip(hits, labels, strict=True) if not y]
            ds["gptcache"] = {
                "default": {
                    "threshold": gc["default_threshold"],
                    "served": sum(pos) / len(pos),
                    "wrong": sum(neg) / len(neg),
                },
                "best": _best(gc_curve),
                "curve": gc_curve,
                "by_group_default": _by_group(items, hits),
                "evaluation": gc["evaluation"],
                "data_manager": gc["data_manager"],
                "seconds": gc["seconds"],
            }

        with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
            try:
                ds["hermes"] = hermes_results(
                    embedder, dataset, items, Path(tmp), ctx.sizes.quality_sweep_points
                )
            except Skip as exc:
                ds["hermes"] = {"skipped": str(exc)}
        result["datasets"][dataset] = ds
    result["texts_embedded"] = embedder.texts_embedded
    result["embedding_seconds"] = embedder.seconds_embedding
    return result


if __name__ == "__main__":  # pragma: no cover - manual use: python -m bench.quality
    from bench.common import QUICK, context_from_env

    write_json(ROOT / "bench" / "out" / "quality.json", run(context_from_env(QUICK)))
