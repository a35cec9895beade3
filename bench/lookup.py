"""2. Lookup latency against the number of entries: our Redis store, our memory store, RedisVL's
`SemanticCache.check`, all on the same vectors and the same Redis, queried in one interleaved loop.

- ours (redis): `hermes_sidecar.store.redis.RedisStore.search` with the sidecar's defaults (index
  algorithm and HNSW parameters, `cache.candidates` nearest), all entries in one partition (the worst
  case: the partition filter does not narrow the search).
- ours (memory): `hermes_sidecar.store.memory.MemoryStore.search`, same partition, same k.
- RedisVL: `SemanticCache(...).check(vector=..., num_results=1)` at its default threshold; its index is
  RedisVL's default (FLAT). Entries are loaded with `index.load` of the records `store()` writes.
Vectors are passed in, so these are lookup costs alone; the embedding cost of one query (the sidecar's
embedder, one text per call, as a lone request pays it) is measured next to them, and a semantic hit
pays both. Corpus and queries: bench/corpus.py.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np

from bench.common import Context, Skip, latency_summary
from bench.corpus import (
    SCALE_SCOPE,
    base_vectors,
    chat_body,
    fill_store,
    fow_texts,
    partition_of,
    queries,
    scale_entries,
    scale_generation_id,
    synthetic,
)
from bench.embedding import MemoEmbedder, hermes_embedder, redisvl_vectorizer

MODEL = "tiny-llama"


def _load_redisvl(cache: Any, corpus: np.ndarray, lo: int, hi: int) -> float:
    from redisvl.extensions.cache.llm.schema import CacheEntry

    t0 = time.perf_counter()
    dtype = cache._vectorizer.dtype
    for i in range(lo, hi, 1000):
        records = [
            CacheEntry(entry_id=f"bench-{j}", prompt=f"bench-{j}", response="{}",
                       prompt_vector=corpus[j].tolist()).to_dict(dtype)
            for j in range(i, min(hi, i + 1000))
        ]  # fmt: skip
        cache.index.load(data=records, id_field="entry_id")
    return time.perf_counter() - t0


def embedding_cost(embedder: MemoEmbedder, count: int) -> dict[str, Any]:
    """One text per call through the sidecar's embedder, uncached: what a lone semantic lookup pays."""
    texts = fow_texts()[:count]
    samples = []
    for t in texts:
        t0 = time.perf_counter()
        embedder.uncached([t])
        samples.append(time.perf_counter() - t0)
    return latency_summary(samples)


async def _measure(ctx: Context) -> dict[str, Any]:
    try:
        from hermes_sidecar.config import CacheConfig
        from hermes_sidecar.store.memory import MemoryStore
        from hermes_sidecar.store.redis import RedisStore, redis_client
    except ImportError as exc:
        raise Skip(f"the sidecar's stores are not importable: {exc}") from None
    from redisvl.extensions.cache.llm import SemanticCache

    embedder = hermes_embedder()
    base, base_info = base_vectors(embedder, getattr(ctx.sizes, "corpus_texts", 0))
    sizes = sorted(ctx.sizes.lookup_entries)
    corpus = synthetic(base, sizes[-1])
    cfg = CacheConfig()
    k = cfg.candidates
    generation = scale_generation_id()
    partition = partition_of(chat_body(MODEL, "x"), generation)

    # Longer socket timeouts than the sidecar's 0.5 s for loading on a busy 2-core machine; lookups
    # are the same commands either way.
    client = redis_client(ctx.redis_url, timeout=30)
    ours = RedisStore(client, SCALE_SCOPE, embedder.dims, algorithm=cfg.indexAlgorithm)
    await ours.ping()
    await ours.delete_generation(generation)  # a previous run's entries
    mem = MemoryStore(sizes[-1] + 10)
    rv = SemanticCache(name="hermes-bench-lookup", redis_url=ctx.redis_url,
                       vectorizer=redisvl_vectorizer(embedder), overwrite=True)  # fmt: skip
    rv.clear()
    rv_threshold = float(rv.distance_threshold)

    points: list[dict[str, Any]] = []
    loaded = 0
    try:
        for n in sizes:
            batch = scale_entries(loaded, n, corpus, partition, generation)
            load = {"redis": await fill_store(ours, batch), "memory": await fill_store(mem, batch, 1),
                    "redisvl": _load_redisvl(rv, corpus, loaded, n)}  # fmt: skip
            loaded = n
            qs, truth = queries(corpus, n, ctx.sizes.lookup_queries)
            samples: dict[str, list[float]] = {"redis": [], "memory": [], "redisvl": []}
            correct = {name: 0 for name in samples}

            async def one(name: str, q: np.ndarray, want: str) -> tuple[float, bool]:
                t0 = time.perf_counter()
                if name == "redisvl":
                    hits = rv.check(vector=q.tolist(), num_results=1)
                    dt = time.perf_counter() - t0
                    return dt, bool(hits) and hits[0].get("prompt") == want
                store = ours if name == "redis" else mem
                found = await store.search(partition, q, k, time.time())
                dt = time.perf_counter() - t0
                return dt, bool(found) and found[0][0].key == want

            names = list(samples)
            for w in range(min(20, len(qs))):  # warm-up: connections, numpy, Redis caches
                for name in names:
                    await one(name, qs[w], "")
            for j, q in enumerate(qs):
                want = f"bench-{int(truth[j])}"
                for name in names[j % 3 :] + names[: j % 3]:  # rotate who goes first
                    dt, ok = await one(name, q, want)
                    samples[name].append(dt)
                    correct[name] += ok
            points.append({
                "entries": n,
                "load_seconds": load,
                "latency": {name: latency_summary(s) for name, s in samples.items()},
                "recall_at_1": {name: correct[name] / len(qs) for name in names},
            })  # fmt: skip
            print(
                f"[bench] lookup {n}: "
                + ", ".join(f"{name} p50 {points[-1]['latency'][name]['p50_ms']:.2f} ms" for name in names),
                flush=True,
            )
        info = await client.execute_command("INFO", "memory")  # type: ignore[no-untyped-call]
        used = info.get("used_memory_human") if isinstance(info, dict) else None
    finally:
        rv.delete()
        await client.aclose()
    return {
        "queries_per_size": ctx.sizes.lookup_queries,
        "k": k,
        "index_algorithm": cfg.indexAlgorithm,
        "redisvl_distance_threshold": rv_threshold,
        "redisvl_index": "FLAT (SemanticCache default)",
        "corpus": base_info | {"method": "normalise(e_a + 0.5 e_b + noise 0.3), queries: entry + noise 0.1"},
        "embedder": embedder.name,
        "points": points,
        "embedding_one_text": embedding_cost(embedder, min(200, ctx.sizes.lookup_queries)),
        "redis_used_memory_after": used,
        "scale_entries_left": {"scope": SCALE_SCOPE, "generation": generation, "entries": loaded},
    }


def run(ctx: Context) -> dict[str, Any]:
    return asyncio.run(_measure(ctx))
