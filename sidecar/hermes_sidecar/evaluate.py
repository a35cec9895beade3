"""``hermes-sidecar evaluate``: score the cache decision on labelled pairs.

Each line is ``{"a": ..., "b": ..., "same_answer": bool}`` (``a``/``b`` a string or a list of chat
messages; optional ``id`` and ``category``/``subtype``). For every pair, ``a`` is sent through the
live decision path (:meth:`CacheService.decide`, then :meth:`CacheService.store_answer` as after an
upstream answer), then ``b`` is decided: served means ``hit-exact`` or ``hit-semantic``. Each pair has
its own tenant, so pairs never see each other's entries. The store is the in-memory one (same
semantics as Redis); the embedder, threshold, guard and conversation limits come from the config.

``served_rate`` = served same_answer pairs / same_answer pairs; ``wrong_rate`` = served other pairs /
other pairs.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hermes_sidecar.cache import HIT_EXACT, HIT_SEMANTIC, CacheService, Decision
from hermes_sidecar.config import SidecarConfig
from hermes_sidecar.dialects.base import CachedAnswer
from hermes_sidecar.dialects.openai import CHAT, OpenAIDialect
from hermes_sidecar.embed import Embedder, EmbedderError, build_embedder
from hermes_sidecar.errors import EvaluationError as EvaluationError
from hermes_sidecar.generations import LOCAL
from hermes_sidecar.metrics import Metrics
from hermes_sidecar.store.memory import MemoryStore
from hermes_sidecar.verify import build_verifier


def load_pairs(path: str | Path) -> list[dict[str, Any]]:
    p = Path(path)
    try:
        lines = p.read_text().splitlines()
    except OSError as exc:
        raise EvaluationError(f"cannot read pairs file {p}: {exc.strerror}") from None
    pairs = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
        except ValueError as exc:
            raise EvaluationError(f"{p}:{n}: not JSON: {exc}") from None
        if not isinstance(d, dict) or not {"a", "b", "same_answer"} <= d.keys():
            raise EvaluationError(f"{p}:{n}: each line needs 'a', 'b' and 'same_answer', got {str(d)[:120]}")
        for side in ("a", "b"):
            if not isinstance(d[side], str | list):
                raise EvaluationError(f"{p}:{n}: '{side}' must be a string or a list of chat messages")
        d.setdefault("id", f"{p.stem}-{n}")
        d["_file"] = p.name
        pairs.append(d)
    return pairs


def in_split(pair_id: str, split: str) -> bool:
    """Whether a pair belongs to ``split``: "tune" when the sha256 of its id starts with an even byte,
    "holdout" when odd, "all" always. Stable across runs and machines; the benches use it too, so a
    figure they call holdout is the half ``evaluate --split holdout`` scores."""
    if split == "all":
        return True
    even = hashlib.sha256(pair_id.encode()).digest()[0] % 2 == 0
    return even if split == "tune" else not even


def _body(side: str | list[Any], model: str) -> dict[str, Any]:
    messages = [{"role": "user", "content": side}] if isinstance(side, str) else side
    return {"model": model, "messages": messages}


def _answer(pair_id: str) -> CachedAnswer:
    return CachedAnswer(
        "openai",
        {
            "id": f"chatcmpl-eval-{pair_id}",
            "object": "chat.completion",
            "created": 0,
            "model": "eval",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": f"answer to {pair_id}"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        },
    )


class _Clock:
    """The evaluation's clock: moved forward by hand between storing and deciding."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _rates(rows: list[dict[str, Any]]) -> dict[str, Any]:
    same = [r for r in rows if r["same_answer"]]
    other = [r for r in rows if not r["same_answer"]]
    out: dict[str, Any] = {"pairs": len(rows)}
    out["served_rate"] = round(sum(r["served"] for r in same) / len(same), 4) if same else None
    out["wrong_rate"] = round(sum(r["served"] for r in other) / len(other), 4) if other else None
    out["should_hit"] = len(same)
    out["traps"] = len(other)
    return out


async def evaluate_pairs(
    pairs: Sequence[dict[str, Any]],
    cfg: SidecarConfig,
    *,
    embedder: Embedder | None = None,
    threshold: float | None = None,
    details: bool = False,
    sequential: bool = False,
    age_seconds: float = 0.0,
) -> dict[str, Any]:
    """``age_seconds``: how old every ``a`` entry is when ``b`` is decided (a fake clock moved forward
    between the two: cache.decay and the TTL see that age)."""
    if age_seconds < 0:
        raise EvaluationError(f"--age {age_seconds:g} must be >= 0 seconds")
    cache_cfg = cfg.cache
    if threshold is not None:
        cache_cfg = cache_cfg.model_copy(update={"similarityThreshold": threshold})
    # Every pair is a question a user asks: bypass rules (volatile words) are part of the live path.
    own_embedder = embedder is None
    if embedder is None:
        try:
            embedder = build_embedder(cfg.embedding)
        except EmbedderError as exc:
            raise EvaluationError(str(exc)) from None
    metrics = Metrics()
    # Every a is stored at t0, every b decided at t0 + age_seconds (pairs have their own tenants, so
    # storing all of them first changes nothing else).
    clock = _Clock(time.time())
    # The verifier, when configured, is part of the live decision path: it is asked here too.
    cache = CacheService(
        cache_cfg,
        MemoryStore(10 * len(pairs) + 10),
        embedder,
        metrics,
        generation=LOCAL,
        verifier=build_verifier(cache_cfg.guard.verifier, cfg.upstream),
        clock=clock,
    )
    dialect = OpenAIDialect()
    latencies: list[float] = []

    async def store_a(pair: dict[str, Any]) -> Decision:
        tenant = "eval:" + str(pair["id"])
        req_a = dialect.parse_request(CHAT, _body(pair["a"], "eval-model"))
        first = await cache.decide(req_a, {}, tenant)
        await cache.store_answer(first, _answer(str(pair["id"])))
        return first

    async def one(pair: dict[str, Any], first: Decision) -> dict[str, Any]:
        tenant = "eval:" + str(pair["id"])
        req_b = dialect.parse_request(CHAT, _body(pair["b"], "eval-model"))
        started = time.perf_counter()
        second = await cache.decide(req_b, {}, tenant)
        elapsed = time.perf_counter() - started
        served = second.result in (HIT_EXACT, HIT_SEMANTIC)
        if second.result == HIT_SEMANTIC:
            latencies.append(elapsed)
        return {
            "id": pair["id"],
            "file": pair["_file"],
            "category": pair.get("category") or pair.get("subtype") or "uncategorised",
            "same_answer": bool(pair["same_answer"]),
            "served": served,
            "result": second.result,
            "stored": first.result,
            "reason": second.reason,
            "similarity": round(second.similarity, 4) if second.similarity is not None else None,
        }

    try:
        if sequential:
            firsts = [await store_a(p) for p in pairs]
            clock.now += age_seconds
            rows = [await one(p, f) for p, f in zip(pairs, firsts, strict=True)]
        else:
            firsts = list(await asyncio.gather(*(store_a(p) for p in pairs)))
            clock.now += age_seconds
            rows = list(await asyncio.gather(*(one(p, f) for p, f in zip(pairs, firsts, strict=True))))
    finally:
        await cache.aclose()
        if own_embedder:
            await embedder.aclose()
    report: dict[str, Any] = _rates(list(rows))
    report["threshold"] = cache_cfg.similarityThreshold
    if age_seconds or cache_cfg.decay.mode != "off":
        decay = cache_cfg.decay
        report["age_seconds"] = age_seconds
        report["decay"] = {"mode": decay.mode, "ceiling": decay.ceiling, "exact": decay.exact}
        report["decay"]["required_similarity"] = round(cache.decay.required(age_seconds), 4)
    report["embedder"] = embedder.name
    report["guard"] = cache_cfg.guard.enabled
    verifier = cache_cfg.guard.verifier
    if verifier is not None:
        sample = metrics.registry.get_sample_value
        kind: dict[str, str] = {"kind": verifier.kind}
        tokens = "hermes_cache_verifier_tokens_total"
        report["verifier"] = {
            "kind": verifier.kind,
            "scope": verifier.scope,
            "model": verifier.model,
            "minScore": verifier.minScore,
            "minSimilarity": verifier.minSimilarity,
            "errors": int(sample("hermes_cache_errors_total", {"component": "verifier"}) or 0),
            # what it cost: lookups that asked it, HTTP requests, tokens (from the answers' usage)
            "calls": int(sample("hermes_cache_verifier_calls_total", {**kind, "outcome": "ok"}) or 0),
            "requests": int(sample("hermes_cache_verifier_request_seconds_count", kind) or 0),
            "request_seconds": round(sample("hermes_cache_verifier_request_seconds_sum", kind) or 0.0, 4),
            "prompt_tokens": int(sample(tokens, {**kind, "type": "prompt"}) or 0),
            "completion_tokens": int(sample(tokens, {**kind, "type": "completion"}) or 0),
            "skipped": int(sample("hermes_cache_verifier_skipped_total") or 0),
            "unjudged": int(sample("hermes_cache_verifier_unjudged_total") or 0),
        }
    by_cat: dict[str, list[dict[str, Any]]] = defaultdict(list)
    by_file: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_cat[r["category"]].append(r)
        by_file[r["file"]].append(r)
    report["categories"] = {c: _rates(rs) for c, rs in sorted(by_cat.items())}
    report["files"] = {f: _rates(rs) for f, rs in sorted(by_file.items())}
    report["decisions"] = dict(Counter(r["result"] for r in rows))
    report["refusals"] = dict(Counter(r["reason"] or "below-threshold" for r in rows if not r["served"]))
    if latencies:
        # Concurrent evaluation batches embeddings: only --sequential gives a lone request's latency.
        name = "semantic_hit_seconds" if sequential else "semantic_hit_seconds_batched"
        latencies.sort()
        report[name] = {
            "p50": round(statistics.median(latencies), 5),
            "p90": round(latencies[int(0.9 * (len(latencies) - 1))], 5),
            "count": len(latencies),
        }
    if details:
        report["wrong"] = [r for r in rows if r["served"] != r["same_answer"]]
    return report


async def evaluate_files(
    files: Sequence[str],
    cfg: SidecarConfig,
    *,
    threshold: float | None = None,
    split: str = "all",
    details: bool = False,
    sequential: bool = False,
    age_seconds: float = 0.0,
) -> dict[str, Any]:
    pairs: list[dict[str, Any]] = []
    for f in files:
        pairs.extend(p for p in load_pairs(f) if in_split(str(p["id"]), split))
    if not pairs:
        raise EvaluationError(f"no pairs in {', '.join(files)} (split {split!r})")
    single = [p for p in pairs if isinstance(p["a"], str) and isinstance(p["b"], str)]
    conv = [p for p in pairs if not (isinstance(p["a"], str) and isinstance(p["b"], str))]
    embedder = build_embedder(cfg.embedding)
    try:
        report = await evaluate_pairs(
            pairs,
            cfg,
            embedder=embedder,
            threshold=threshold,
            details=details,
            sequential=sequential,
            age_seconds=age_seconds,
        )
        report["split"] = split
        if single and conv:
            report["single_turn"] = _summary(
                await evaluate_pairs(
                    single, cfg, embedder=embedder, threshold=threshold, age_seconds=age_seconds
                )
            )
            report["conversations"] = _summary(
                await evaluate_pairs(
                    conv, cfg, embedder=embedder, threshold=threshold, age_seconds=age_seconds
                )
            )
    finally:
        await embedder.aclose()
    return report


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    keys = ("pairs", "served_rate", "wrong_rate", "should_hit", "traps", "categories")
    return {k: report[k] for k in keys}
