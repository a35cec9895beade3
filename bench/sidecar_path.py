"""3. Through the sidecar with real vLLM on the CPU (the tiny random-weight model).

One `hermes-sidecar serve` process (Redis store, local embedder, upstream = the vLLM that
scripts/bench.sh started with the operator's arguments) follows the generation record of the scale
scope, whose partition already holds the lookup measurement's synthetic entries (up to 100k), so every
semantic lookup searches that many entries. Then, from one client process on the same 2 cores:

- seed: the cached side of the fow-cache should-hit question pairs goes through the sidecar (a miss,
  answered by vLLM and stored);
- exact hit: the same requests again; semantic hit: the other side of each pair (only responses with
  `x-hermes-cache: hit-semantic` count; the share that hit is reported);
- miss path: unique questions, streamed, alternately through the sidecar and straight to vLLM in one
  interleaved loop; TTFT = time to the first SSE event that carries generated text;
- throughput: semantic hits (the pairs that hit) and exact hits with N requests in flight.
All latencies are client-observed: HTTP, JSON, embedding, Redis search and guard included.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import OUT, Context, Skip, latency_summary, median
from bench.corpus import (
    SCALE_SCOPE,
    SCALE_UID,
    SCALE_VERSION,
    TENANT,
    chat_body,
    ensure_scale_entries,
    partition_of,
    policy_text,
    scale_generation_id,
)
from bench.embedding import hermes_embedder
from bench.services import Sidecar, vllm_model

PORT = int(os.environ.get("HERMES_BENCH_SIDECAR_PORT", "8189"))
HEADERS = {"x-tenant-id": TENANT}
COUNTERS = (
    "hermes_cache_requests_total",
    "hermes_cache_not_stored",
    "hermes_cache_stored",
    "hermes_cache_errors",
)


def write_generation_scope(redis_url: str, scope: str, version: str, uid: str) -> str:
    """Write a generation record the way the operator does (its own store class); scope = namespace/policy."""
    from hermes_operator.generations import RedisGenerationStore, generation_record

    namespace, policy = scope.split("/", 1)
    record = generation_record(version, uid, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    store = RedisGenerationStore(redis_url)
    try:
        store.write_generation(namespace, policy, record)
    finally:
        store.close()
    return record


def write_generation(redis_url: str, version: str, uid: str) -> str:
    return write_generation_scope(redis_url, SCALE_SCOPE, version, uid)


def sidecar_config(ctx: Context, scope: str = SCALE_SCOPE) -> dict[str, Any]:
    return {
        "upstream": {"kind": "openai", "url": ctx.vllm_url},
        # The tiny random-weight model never stops on its own: every answer ends at max_tokens
        # (finish_reason "length"), which the sidecar stores only with storeTruncated.
        # maxEntries: the scale partition already holds the lookup measurement's 100k synthetic entries;
        # at the default bound (100k per generation) the sidecar would trim the answers this run stores.
        "cache": {
            "backend": "redis",
            "redisUrl": ctx.redis_url,
            "scope": scope,
            "storeTruncated": True,
            "maxEntries": 1_000_000,
        },
        "embedding": {"provider": "local"},
    }


def _cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of a process (and its reaped children), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(x) for x in fields[11:15]) / ticks


async def _post(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> tuple[float, str, int]:
    t0 = time.perf_counter()
    r = await client.post(url + "/v1/chat/completions", json=body, headers=HEADERS)
    dt = time.perf_counter() - t0
    return dt, r.headers.get("x-hermes-cache", ""), r.status_code


async def ttft(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> tuple[float, str]:
    """Seconds until the first SSE event carrying generated text (or the first data event)."""
    t0 = time.perf_counter()
    async with client.stream("POST", url + "/v1/chat/completions", json=body, headers=HEADERS) as r:
        header = r.headers.get("x-hermes-cache", "")
        first_data = None
        async for line in r.aiter_lines():
            if not line.startswith("data:") or line.strip() == "data: [DONE]":
                continue
            now = time.perf_counter()
            first_data = first_data or now
            try:
                delta = json.loads(line[5:])["choices"][0].get("delta", {})
            except (ValueError, KeyError, IndexError):
                continue
            if delta.get("content"):
                return now - t0, header
        return (first_data or time.perf_counter()) - t0, header


async def throughput(client: httpx.AsyncClient, url: str, bodies: list[dict[str, Any]], want: str,
                     concurrency: int, total: int, pid: int) -> dict[str, Any]:  # fmt: skip
    queue = [bodies[i % len(bodies)] for i in range(total)]
    latencies: list[float] = []
    hits = 0
    cpu0 = _cpu_seconds(pid)

    async def worker() -> None:
        nonlocal hits
        while queue:
            body = queue.pop()
            dt, header, _ = await _post(client, url, body)
            latencies.append(dt)
            hits += header == want

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - t0
    cpu = _cpu_seconds(pid) - cpu0
    return {
        "concurrency": concurrency,
        "requests": total,
        "seconds": seconds,
        "hits_per_second": hits / seconds,
        "hit_share": hits / total,
        "latency": latency_summary(latencies),
        "sidecar_cpu_seconds": cpu,
    }


async def _measure(ctx: Context) -> dict[str, Any]:
    from fow_cache.data import load_questions

    from hermes_sidecar.store.redis import RedisStore, redis_client

    model = vllm_model(ctx.vllm_url)
    sizes = ctx.sizes
    write_generation(ctx.redis_url, SCALE_VERSION, SCALE_UID)
    embedder = hermes_embedder()
    client_r = redis_client(ctx.redis_url, timeout=30)
    try:
        store = RedisStore(client_r, SCALE_SCOPE, embedder.dims)
        partition = partition_of(chat_body(model, "x"), scale_generation_id())
        limit = getattr(sizes, "corpus_texts", 0)
        scale = await ensure_scale_entries(store, embedder, max(sizes.lookup_entries), partition, limit)
    finally:
        await client_r.aclose()

    pairs = [q for q in load_questions() if q["same_answer"]]
    random.Random(11).shuffle(pairs)
    pairs = pairs[: max(20, sizes.sidecar_requests // 2)]
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    result: dict[str, Any] = {"model": model, "entries_in_partition": scale["entries"], "scale": scale}
    with Sidecar(sidecar_config(ctx), OUT / "sidecar-run", PORT) as sc:
        async with httpx.AsyncClient(timeout=120, limits=limits) as client:
            seeded = [await _post(client, sc.url, chat_body(model, p["a"])) for p in pairs]
            result["seed"] = {"requests": len(seeded), "headers": _count(h for _, h, _ in seeded),
                              "statuses": _count(str(s) for _, _, s in seeded)}  # fmt: skip
            await asyncio.sleep(1.0)  # answers are stored after the response; let the last ones land

            # The floor under any hit: an HTTP round trip to the sidecar that does no cache work.
            floor = []
            for _ in range(100):
                t0 = time.perf_counter()
                await client.get(sc.url + "/healthz")
                floor.append(time.perf_counter() - t0)
            result["http_floor_healthz"] = latency_summary(floor)

            exact, semantic, hitting = [], [], []
            exact_headers, semantic_headers = [], []
            for i in range(sizes.sidecar_requests):
                p = pairs[i % len(pairs)]
                dt, h, _ = await _post(client, sc.url, chat_body(model, p["a"]))
                exact_headers.append(h)
                if h == "hit-exact":
                    exact.append(dt)
                dt, h, _ = await _post(client, sc.url, chat_body(model, p["b"]))
                semantic_headers.append(h)
                if h == "hit-semantic":
                    semantic.append(dt)
                    if i < len(pairs):
                        hitting.append(p)
            result["exact_hit"] = latency_summary(exact) if exact else None
            result["semantic_hit"] = latency_summary(semantic) if semantic else None
            result["exact_headers"] = _count(exact_headers)
            result["semantic_headers"] = _count(semantic_headers)
            result["semantic_pairs_hitting"] = f"{len(hitting)}/{len(pairs)}"

            # Miss path, interleaved: unique short questions (a number the guard reads makes each one
            # distinct), then unique long prompts (~1,000 tokens: a prefill the size of a real request).
            rng = random.Random(5)
            for kind in ("", "_long"):
                direct, via, ratios = [], [], []
                for i in range(sizes.ttft_pairs):
                    q = pairs[i % len(pairs)]["a"]

                    def body(q: str = q, kind: str = kind) -> dict[str, Any]:
                        ticket = f"(ticket {rng.randrange(10**9)})"
                        text = f"{q} {ticket}" if not kind else policy_text(1500, head=f"{ticket} {q}\n")
                        return chat_body(model, text, stream=True)

                    if i % 2 == 0:
                        d, _ = await ttft(client, ctx.vllm_url, body())
                        s, h = await ttft(client, sc.url, body())
                    else:
                        s, h = await ttft(client, sc.url, body())
                        d, _ = await ttft(client, ctx.vllm_url, body())
                    if h != "miss":
                        continue
                    direct.append(d)
                    via.append(s)
                    ratios.append(s / d)
                if direct:
                    result[f"miss_ttft_direct{kind}"] = latency_summary(direct)
                    result[f"miss_ttft_sidecar{kind}"] = latency_summary(via)
                    result[f"ttft_ratio_of_medians{kind}"] = median(via) / median(direct)
                    result[f"ttft_median_pair_ratio{kind}"] = median(ratios)
                    result[f"ttft_added_p50_ms{kind}"] = 1000 * (median(via) - median(direct))

            result["miss_cost_breakdown"] = _miss_costs(embedder, pairs[0]["a"])

            tp: dict[str, Any] = {}
            if hitting:
                bodies = [chat_body(model, p["b"]) for p in hitting]
                tp["semantic_hits"] = await throughput(
                    client,
                    sc.url,
                    bodies,
                    "hit-semantic",
                    sizes.sidecar_concurrency,
                    2 * sizes.sidecar_requests,
                    sc.pid,
                )
                row = tp["semantic_hits"]
                result["sidecar_cpu_seconds_per_hit"] = row["sidecar_cpu_seconds"] / max(1, row["requests"])
            bodies = [chat_body(model, p["a"]) for p in pairs]
            tp["exact_hits"] = await throughput(
                client,
                sc.url,
                bodies,
                "hit-exact",
                sizes.sidecar_concurrency,
                2 * sizes.sidecar_requests,
                sc.pid,
            )
            result["throughput"] = tp
        # The sidecar's own counters: what it stored, what it refused to store and why.
        metrics = httpx.get(sc.url + "/metrics", timeout=10).text
        result["sidecar_counters"] = {
            line.split(" ")[0]: float(line.split(" ")[-1])
            for line in metrics.splitlines()
            if line.startswith(COUNTERS)
        }
    result["setup"] = (
        f"Sidecar: Redis store, `{embedder.name}` embedder, defaults otherwise; {scale['entries']:,} entries "
        f"in the partition the requests use. Model `{model}` on vLLM (CPU), {len(pairs)} fow-cache "
        f"should-hit question pairs, max_tokens 16, temperature 0; client and servers share the cores."
    )
    if result["semantic_hit"] is None and result["exact_hit"] is None:
        raise Skip(f"no hits through the sidecar: seed {result['seed']}, exact {result['exact_headers']}; "
                   f"sidecar log: {sc.tail()}")  # fmt: skip
    return result


def _miss_costs(embedder: Any, question: str, repeat: int = 7) -> dict[str, Any]:
    """Where a miss's added time goes, timed in-process with the sidecar's own code: embedding one text
    (uncached) and the guard's feature extraction, for a short question and a ~1,000-token prompt."""
    from hermes_sidecar import guard
    from hermes_sidecar.keys import normalise

    out: dict[str, Any] = {}
    for kind, text in (("short", question), ("long", policy_text(1500, head=f"(ticket 1) {question}\n"))):
        emb, feat = [], []
        for i in range(repeat):
            t = f"{text} {i}"
            t0 = time.perf_counter()
            embedder.uncached([normalise(t)])
            emb.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            guard.features(normalise(t))
            feat.append(time.perf_counter() - t0)
        out[kind] = {
            "chars": len(text),
            "embedding": latency_summary(emb),
            "guard_features": latency_summary(feat),
        }
    return out


def _count(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return out


def run(ctx: Context) -> dict[str, Any]:
    return asyncio.run(_measure(ctx))
