"""Vectors for the size-dependent measurements (lookup latency, generation switch).

Embedding 100k texts on 2 cores takes far longer than the measurements themselves, so the corpus is
built from a few thousand real embeddings: every distinct turn of the fow-cache conversations is
embedded once with the sidecar's embedder and cached on disk
(bench/out/base-vectors-*.npz). Entry i of the corpus is normalise(e_a + 0.5 e_b + n): two real
embeddings picked at random and Gaussian noise of norm about 0.3, so entries spread over the region
real sentences occupy instead of sitting in tight clusters. A query is a stored entry plus noise of norm
about 0.1 (the shape of a paraphrase: cosine about 0.99 to its source), whose true nearest neighbour is
known by brute force, which gives recall@1 next to the latency.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import Any

import numpy as np

from bench.common import OUT
from bench.embedding import MemoEmbedder

SEED = 7


def fow_texts(questions: bool = True) -> list[str]:
    """Distinct texts of the fow-cache data. The corpus leaves the questions out (questions=False): the
    sidecar measurement asks them, and its hits must come from the entries it seeded, not from a
    synthetic neighbour built out of the same sentence."""
    from fow_cache.data import load_conversations, load_questions

    texts: dict[str, None] = {}
    for q in load_questions() if questions else []:
        texts[q["a"]] = texts[q["b"]] = None
    for c in load_conversations():
        for side in ("a", "b"):
            for m in c[side]:
                texts[str(m["content"])] = None
    return list(texts)


def base_vectors(embedder: MemoEmbedder, limit: int = 0) -> tuple[np.ndarray, dict[str, Any]]:
    """Embeddings of the corpus texts (the first `limit` of them; 0 = all), cached under bench/out/."""
    texts = fow_texts(questions=False)
    if limit:
        texts = texts[:limit]
    digest = hashlib.sha256(("\0".join(texts) + embedder.name).encode()).hexdigest()[:16]
    path = OUT / f"base-vectors-{digest}.npz"
    if path.exists():
        vecs = np.load(path)["vectors"]
        return vecs, {"texts": len(texts), "cached": True, "file": path.name}
    t0 = time.perf_counter()
    vecs = embedder.batch(texts)
    seconds = time.perf_counter() - t0
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez(path, vectors=vecs)
    return vecs, {"texts": len(texts), "cached": False, "embed_seconds": seconds, "file": path.name}


def _normalise(v: np.ndarray) -> np.ndarray:
    out: np.ndarray = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
    return out


def synthetic(base: np.ndarray, n: int, seed: int = SEED) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = base[rng.integers(0, len(base), n)]
    b = base[rng.integers(0, len(base), n)]
    noise = rng.standard_normal((n, base.shape[1])).astype(np.float32) * (0.3 / np.sqrt(base.shape[1]))
    return _normalise(a + 0.5 * b + noise)


def queries(corpus: np.ndarray, upto: int, count: int, seed: int = SEED + 1) -> tuple[np.ndarray, np.ndarray]:
    """`count` near-duplicates of entries among the first `upto`, and each one's true nearest entry."""
    rng = np.random.default_rng(seed + upto)
    src = rng.integers(0, upto, count)
    noise = rng.standard_normal((count, corpus.shape[1])).astype(np.float32) * (
        0.1 / np.sqrt(corpus.shape[1])
    )
    q = _normalise(corpus[src] + noise)
    truth = np.argmax(q @ corpus[:upto].T, axis=1)
    return q, truth


async def fill_store(store: Any, entries: list[Any], concurrency: int = 64) -> float:
    """Put entries through the store's own `put` (one MULTI per entry, as the sidecar does), `concurrency`
    at a time; returns the seconds it took."""
    t0 = time.perf_counter()
    sem = asyncio.Semaphore(concurrency)

    async def one(e: Any) -> None:
        async with sem:
            await store.put(e)

    for i in range(0, len(entries), 2000):
        await asyncio.gather(*(one(e) for e in entries[i : i + 2000]))
    return time.perf_counter() - t0


# -------------------------------------------------------------------------------- the shared scale scope
# The lookup measurement fills this scope; the sidecar measurement serves its hits from it and the
# generation switch deletes it, so 100k entries are loaded once per run.
SCALE_SCOPE = "bench/scale"
SCALE_VERSION, SCALE_UID = "v1", "bench-scale"
TENANT = "bench"
MAX_TOKENS = 16


def chat_body(model: str, text: str, *, system: str | None = None, stream: bool = False) -> dict[str, Any]:
    """The request every through-the-sidecar measurement sends (greedy, short answers)."""
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": text}
    ]
    body: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": MAX_TOKENS, "temperature": 0}
    if stream:
        body["stream"] = True
    return body


def scale_generation_id() -> str:
    from hermes_sidecar.generations import Generation

    return Generation(SCALE_VERSION, SCALE_UID).id


def partition_of(body: dict[str, Any], generation_id: str, tenant: str = TENANT) -> str:
    """The partition the sidecar files `body` under (sent with `x-tenant-id: tenant`), computed by the
    sidecar's own key code."""
    from hermes_sidecar.config import CacheConfig
    from hermes_sidecar.dialects.openai import CHAT, OpenAIDialect
    from hermes_sidecar.keys import ConversationLimits, keys_for
    from hermes_sidecar.tenants import tenant_of

    conv = CacheConfig().conversation
    req = OpenAIDialect().parse_request(CHAT, body)
    limits = ConversationLimits(conv.semantic, conv.maxTurns, conv.minStandaloneWords)
    who = tenant_of({"x-tenant-id": tenant}, "x-tenant-id")
    return str(keys_for(req, generation_id, who, limits).partition)


# A valid stored answer (the sidecar's CachedAnswer JSON): if a synthetic entry is ever served, the
# reply is well-formed and visibly synthetic instead of an unreadable entry.
SYNTHETIC_ANSWER = json.dumps(
    {
        "dialect": "openai",
        "body": {
            "id": "chatcmpl-bench-synthetic",
            "object": "chat.completion",
            "created": 0,
            "model": "tiny-llama",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "synthetic"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        },
    },
    separators=(",", ":"),
)
ENTRY_TTL = 6 * 3600


def scale_entries(lo: int, hi: int, corpus: np.ndarray, partition: str, generation: str) -> list[Any]:
    from hermes_sidecar.store import Entry

    now = time.time()
    return [
        Entry(key=f"bench-{i}", partition=partition, generation=generation, answer=SYNTHETIC_ANSWER,
              created=now, expires=now + ENTRY_TTL, text=f"synthetic entry {i}", vector=corpus[i])
        for i in range(lo, hi)
    ]  # fmt: skip


async def ensure_scale_entries(
    store: Any, embedder: MemoEmbedder, n: int, partition: str, limit: int = 0
) -> dict[str, Any]:
    """At least `n` synthetic entries of the scale generation in `store` (what lookup left, else loaded)."""
    generation = scale_generation_id()
    have = int(await store.count(generation))
    if have >= n:
        return {"entries": have, "loaded": 0, "load_seconds": 0.0}
    base, _ = base_vectors(embedder, limit)
    corpus = synthetic(base, n)
    seconds = await fill_store(store, scale_entries(have, n, corpus, partition, generation))
    return {"entries": int(await store.count(generation)), "loaded": n - have, "load_seconds": seconds}


def policy_text(chars: int, head: str = "") -> str:
    """Long, realistic prompt text: the assistant turns of the fow-cache conversations (support policy
    answers), cut to `chars` characters after `head`."""
    from fow_cache.data import load_conversations

    parts = [m["content"] for c in load_conversations() for m in c["a"] if m["role"] == "assistant"]
    text = head + "You are the support assistant. Policies and past answers follow.\n" + "\n".join(parts)
    return text[:chars]
