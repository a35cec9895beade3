"""What the served-model verifier costs (cache.guard.verifier.kind: served-model), on the real vLLM.

Three measurements against the vLLM the bench runs (the tiny random model on the CPU):

1. One judgement: the request the sidecar sends (max_tokens 1, top 20 logprobs, its own cache_salt)
   for fow-cache question pairs, one after another: latency, prompt and completion tokens from
   ``usage``, and the share of prompt tokens vLLM took from its prefix cache (its own counters).
2. One miss: the same vLLM answering a question as a user's request would, with answers of fixed
   lengths (``ignore_eos``, so the random model writes exactly that many tokens): latency. Asked
   between the judgements of 1, round by round.
3. The live path: `hermes-sidecar evaluate` on each labelled set with the served-model verifier
   asking that vLLM (scope uncertain, minSimilarity 0.7): how many lookups asked it, how many
   requests, their time and tokens. The misses it saves are counted with an oracle behind the rerank
   wire format (bench/verifier_ceiling.py) at the same settings: the should-hit pairs a perfect
   verifier serves that cosine and the rules alone do not. The tiny model's own judgements are noise
   (it never lists "yes" or "no"), so only its cost is real here.

GPU-time share = the verifier's requests over a set x median judgement / (saved misses x median
miss), from the interleaved requests of 1 and 2: the time the verifier spends for each unit of time
it saves. Measured on the CPU, where prefill is
relatively slower than on a GPU; a real deployment is measured with `hermes-sidecar evaluate` and the
``hermes_cache_verifier_*`` metrics (docs/sidecar.md, "Verifier").

    python -m bench.verifier_cost --vllm-url URL      a summary on stdout (vLLM must be running)
    scripts/bench.sh full verifier-cost                into docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.common import BENCH_DATA_SETS, ROOT, Context, Skip, context_from_env, latency_summary
from bench.common import MODES as SIZES
from bench.services import vllm_model
from bench.verifier_ceiling import _oracle, _pairs_file, _serve
from hermes_sidecar.config import parse_config
from hermes_sidecar.evaluate import evaluate_files
from hermes_sidecar.keys import normalise
from hermes_sidecar.verify import ServedModelVerifier

ANSWER_TOKENS = (64, 256)
MIN_SIMILARITY = 0.7


def _sets() -> dict[str, Path]:
    """The labelled single-turn sets: fow-cache's questions and every set in bench/data."""
    data = ROOT / "bench" / "data"
    sets = {name: data / f"{name}.jsonl" for name in BENCH_DATA_SETS}
    return {"fow-cache questions": _pairs_file(), **sets}


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _vllm_counter(url: str, name: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name)


def _block_size(url: str) -> int | None:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "vllm:cache_config_info" and "block_size" in s.labels:
                return int(s.labels["block_size"])
    return None


async def _miss(
    client: httpx.AsyncClient, url: str, model: str, question: str, tokens: int
) -> tuple[float, int]:
    """A user's miss: the question answered with exactly ``tokens`` tokens; seconds and prompt tokens."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": question}],
        "max_tokens": tokens,
        "ignore_eos": True,
        "temperature": 0,
        "cache_salt": uuid.uuid4().hex,  # a tenant's own salt: nothing of it is in the prefix cache
    }
    started = time.perf_counter()
    resp = await client.post(f"{url}/v1/chat/completions", json=body)
    seconds = time.perf_counter() - started
    resp.raise_for_status()
    usage = resp.json()["usage"]
    if usage["completion_tokens"] != tokens:
        raise RuntimeError(f"asked for {tokens} tokens, vLLM wrote {usage['completion_tokens']}")
    return seconds, int(usage["prompt_tokens"])


async def requests(url: str, model: str, pairs: list[dict[str, Any]], n_miss: int) -> dict[str, Any]:
    """One judgement per pair as the sidecar sends it (one generation's salt), one after another; the
    first ``n_miss`` rounds also answer the pair's question as a miss of each length, interleaved, so
    that a change in the machine's load shifts both alike."""
    served = {"kind": "served-model", "url": url, "model": model, "timeoutSeconds": 30}
    cfg = parse_config({"cache": {"guard": {"verifier": served}}})
    assert cfg.cache.guard.verifier is not None
    verifier = ServedModelVerifier(cfg.cache.guard.verifier, url)
    generation = f"bench-{uuid.uuid4().hex[:8]}"
    hits0 = _vllm_counter(url, "vllm:prefix_cache_hits_total")
    queries0 = _vllm_counter(url, "vllm:prefix_cache_queries_total")
    seconds, prompt, completion, unjudged = [], [], [], 0
    miss_seconds: dict[int, list[float]] = {t: [] for t in ANSWER_TOKENS}
    miss_prompt: list[int] = []
    try:
        async with httpx.AsyncClient(timeout=300) as client:
            for i, p in enumerate(pairs):
                asked = normalise(p["b"])
                judged = await verifier.judge(asked, [normalise(p["a"])], generation=generation)
                (cost,) = judged.requests
                seconds.append(cost.seconds)
                prompt.append(cost.prompt_tokens)
                completion.append(cost.completion_tokens)
                unjudged += judged.unjudged
                if 0 < i <= n_miss:
                    for tokens in ANSWER_TOKENS:
                        took, prompt_tokens = await _miss(client, url, model, asked, tokens)
                        miss_seconds[tokens].append(took)
                        miss_prompt.append(prompt_tokens)
    finally:
        await verifier.aclose()
    # the misses' prompts (fresh salts) are looked up too and hit nothing: only the judgements' count
    hits = _vllm_counter(url, "vllm:prefix_cache_hits_total") - hits0
    queries = _vllm_counter(url, "vllm:prefix_cache_queries_total") - queries0 - sum(miss_prompt)
    judgement = {
        "latency": latency_summary(seconds[1:]),  # the first one fills the prefix cache
        "first_ms": seconds[0] * 1000.0,
        "mean_ms": statistics.fmean(seconds[1:]) * 1000.0,
        "prompt_tokens_mean": statistics.fmean(prompt),
        "completion_tokens_mean": statistics.fmean(completion),
        "prefix_cached_share": hits / queries if queries > 0 else None,
        "unjudged": unjudged,
    }
    misses = [
        {
            "answer_tokens": t,
            "latency": latency_summary(miss_seconds[t]),
            "mean_ms": statistics.fmean(miss_seconds[t]) * 1000.0,
            "prompt_tokens_mean": statistics.fmean(miss_prompt),
        }
        for t in ANSWER_TOKENS
    ]
    return {"judgement": judgement, "misses": misses}


def _served_count(report: dict[str, Any]) -> int:
    served: float = (report["served_rate"] or 0.0) * report["should_hit"]
    return round(served)


async def live_path(url: str, model: str, name: str, path: Path, oracle_url: str) -> dict[str, Any]:
    """evaluate on one set: without a verifier, with the oracle, with the served model."""
    served_model = {"kind": "served-model", "url": url, "model": model, "timeoutSeconds": 30}
    oracle = {
        "kind": "rerank",
        "url": oracle_url,
        "model": "oracle",
        "scope": "uncertain",
        "timeoutSeconds": 30,
    }
    reports = {}
    for label, verifier in (("none", None), ("oracle", oracle), ("served-model", served_model)):
        cfg = parse_config(
            {}
            if verifier is None
            else {"cache": {"guard": {"verifier": {**verifier, "minSimilarity": MIN_SIMILARITY}}}}
        )
        reports[label] = await evaluate_files([str(path)], cfg, sequential=True)
    v = reports["served-model"]["verifier"]
    saved = _served_count(reports["oracle"]) - _served_count(reports["none"])
    return {
        "set": name,
        "pairs": reports["none"]["pairs"],
        "should_hit": reports["none"]["should_hit"],
        "served_without": reports["none"]["served_rate"],
        "served_oracle": reports["oracle"]["served_rate"],
        "wrong_oracle": reports["oracle"]["wrong_rate"],
        "saved_misses": saved,
        "lookups_asking": v["calls"],
        "skipped": v["skipped"],
        "requests": v["requests"],
        "request_seconds": v["request_seconds"],
        "prompt_tokens": v["prompt_tokens"],
        "completion_tokens": v["completion_tokens"],
        "errors": v["errors"],
    }


async def measure(url: str, quick: bool) -> dict[str, Any]:
    model = vllm_model(url)
    pairs = [r for r in _rows(_pairs_file()) if isinstance(r["a"], str) and isinstance(r["b"], str)]
    n_judge, n_miss = (40, 8) if quick else (200, 30)
    out: dict[str, Any] = {"model": model, "block_size": _block_size(url)}
    out.update(await requests(url, model, pairs[: n_judge + 1], n_miss))
    oracle_labels: set[frozenset[str]] = set()
    sets = _sets()
    for path in sets.values():
        oracle_labels |= {
            frozenset((normalise(r["a"]), normalise(r["b"])))
            for r in _rows(path)
            if r["same_answer"] and isinstance(r["a"], str)
        }
    oracle_url, server, thread = _serve(_oracle(oracle_labels))
    try:
        out["sets"] = [await live_path(url, model, name, path, oracle_url) for name, path in sets.items()]
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    # the medians of the interleaved requests, not the live path's sums: robust to a shared machine
    judgement_ms = out["judgement"]["latency"]["p50_ms"]
    for s in out["sets"]:
        s["gpu_share"] = {
            str(m["answer_tokens"]): (
                s["requests"] * judgement_ms / (s["saved_misses"] * m["latency"]["p50_ms"])
                if s["saved_misses"]
                else None
            )
            for m in out["misses"]
        }
    return out


def run(ctx: Context) -> dict[str, Any]:
    """The bench measurement (needs the bench's vLLM)."""
    try:
        httpx.get(f"{ctx.vllm_url}/health", timeout=5).raise_for_status()
    except httpx.HTTPError as exc:
        raise Skip(f"vLLM does not answer on {ctx.vllm_url} ({exc}); scripts/bench.sh starts it") from None
    return asyncio.run(measure(ctx.vllm_url.rstrip("/"), ctx.mode == "quick"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vllm-url", default=os.environ.get("HERMES_BENCH_VLLM_URL", "http://127.0.0.1:8000"))
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    ctx = context_from_env(SIZES["quick" if args.quick else "full"])
    ctx.vllm_url = args.vllm_url
    print(json.dumps(run(ctx), indent=2))


if __name__ == "__main__":
    main()
