"""5. Generation switch at scale: how soon old entries stop being served, and how long Redis stalls
while they are deleted.

The scale scope holds the lookup measurement's synthetic entries (100k in the full run) of generation
v1, plus one real entry stored through a running sidecar. A client asks that entry's question in a loop
(an exact hit). The operator's own `RedisGenerationStore.write_generation` then writes v2 (SET +
PUBLISH, as `hermes-cache run` does on a `spec.cacheVersion` change). Measured:

- from the write to the first response that is not the old entry (the sidecar follows the channel);
- from the write until no entry of v1 is left (the sidecar drops v1's index, then deletes its keys
  in the background; counted by the store, which scans the keys of a generation without an index);
- Redis responsiveness meanwhile: a separate process runs a tight PING loop on its own connection and
  records every round trip; the largest one during the deletion is the stall a user would feel.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.common import OUT, ROOT, Context, latency_summary
from bench.corpus import (
    SCALE_SCOPE,
    SCALE_UID,
    SCALE_VERSION,
    chat_body,
    ensure_scale_entries,
    partition_of,
    scale_generation_id,
)
from bench.embedding import hermes_embedder
from bench.services import Sidecar, vllm_model
from bench.sidecar_path import HEADERS, sidecar_config, write_generation

PORT = int(os.environ.get("HERMES_BENCH_SWITCH_PORT", "8190"))
PROBE = "Which documents do I need to open a business bank account?"


def ping_loop(url: str, out: Path, stop: Path, limit_s: float) -> None:
    """Tight PING loop on one connection until `stop` exists; (monotonic time, seconds) pairs to `out`."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=30)
    times: list[float] = []
    lat: list[float] = []
    end = time.monotonic() + limit_s
    n = 0
    while time.monotonic() < end:
        t0 = time.monotonic()
        client.ping()
        t1 = time.monotonic()
        times.append(t0)
        lat.append(t1 - t0)
        n += 1
        if n % 256 == 0 and stop.exists():
            break
    np.save(out, np.array([times, lat]))


async def _measure(ctx: Context) -> dict[str, Any]:
    from hermes_sidecar.generations import Generation
    from hermes_sidecar.store.redis import RedisStore, redis_client

    model = vllm_model(ctx.vllm_url)
    write_generation(ctx.redis_url, SCALE_VERSION, SCALE_UID)
    embedder = hermes_embedder()
    old_id = scale_generation_id()
    rclient = redis_client(ctx.redis_url, timeout=30)
    store = RedisStore(rclient, SCALE_SCOPE, embedder.dims)
    partition = partition_of(chat_body(model, "x"), old_id)
    scale = await ensure_scale_entries(
        store, embedder, ctx.sizes.switch_entries, partition, getattr(ctx.sizes, "corpus_texts", 0)
    )

    trace = OUT / "switch-pings.npy"
    stop = OUT / "switch-pings.stop"
    stop.unlink(missing_ok=True)
    body = chat_body(model, PROBE)
    result: dict[str, Any] = {"scale": scale}
    with Sidecar(sidecar_config(ctx), OUT / "switch-run", PORT) as sc:
        async with httpx.AsyncClient(timeout=120) as client:
            first = await client.post(sc.url + "/v1/chat/completions", json=body, headers=HEADERS)
            await asyncio.sleep(1.0)
            second = await client.post(sc.url + "/v1/chat/completions", json=body, headers=HEADERS)
            result["probe_headers"] = [
                first.headers.get("x-hermes-cache"),
                second.headers.get("x-hermes-cache"),
            ]
            result["entries_before"] = int(await store.count(old_id))
            ping_cmd = [
                sys.executable,
                "-m",
                "bench.switch",
                "ping",
                ctx.redis_url,
                str(trace),
                str(stop),
                "900",
            ]
            pinger = subprocess.Popen(ping_cmd, cwd=ROOT)
            await asyncio.sleep(3.0)  # baseline pings before the switch
            hits_before = 0
            for _ in range(20):
                r = await client.post(sc.url + "/v1/chat/completions", json=body, headers=HEADERS)
                hits_before += r.headers.get("x-hermes-cache") == "hit-exact"

            if hits_before == 0:
                stop.touch()
                pinger.wait(timeout=60)
                raise RuntimeError(
                    f"the probe question never became an exact hit (headers {result['probe_headers']}), so "
                    f"there is no old entry whose end could be timed; sidecar log: {sc.tail(800)}"
                )
            # The clock starts when the operator's write (SET + PUBLISH in one MULTI) has returned: from
            # then on, every sidecar is meant to stop serving the old generation.
            t_write = time.monotonic()
            write_generation(ctx.redis_url, "v2", SCALE_UID)
            t_switch = time.monotonic()
            result["write_ms"] = 1000 * (t_switch - t_write)
            last_old = None
            stop_serving = None
            while time.monotonic() - t_switch < 30:
                t0 = time.monotonic()
                r = await client.post(sc.url + "/v1/chat/completions", json=body, headers=HEADERS)
                if r.headers.get("x-hermes-cache") == "hit-exact":
                    last_old = t0 - t_switch
                else:
                    stop_serving = t0 - t_switch
                    result["stop_serving_response_ms"] = 1000 * (time.monotonic() - t_switch)
                    break
            # Wait for the background deletion; give up when it has made no progress for 30 s (the
            # sidecar logs why: the reason goes into the result).
            deleted_at = None
            left = result["entries_before"]
            progress_at = time.monotonic()
            while time.monotonic() - progress_at < 30:
                now_left = int(await store.count(old_id))
                if now_left < left:
                    progress_at = time.monotonic()
                left = now_left
                if left == 0:
                    deleted_at = time.monotonic() - t_switch
                    break
                await asyncio.sleep(0.25)
            result["sidecar_log_deletion"] = [
                ln[-300:] for ln in sc.tail(200_000).splitlines()
                if "delet" in ln or "store failed" in ln or "store is back" in ln
            ][-10:]  # fmt: skip
            await asyncio.sleep(1.0)  # pings after the deletion, for the plot
            stop.touch()
            pinger.wait(timeout=60)
    await rclient.aclose()
    # Put the scale scope back on v1 for any later measurement (its entries are gone either way).
    write_generation(ctx.redis_url, SCALE_VERSION, SCALE_UID)

    times, lat = np.load(trace)
    rel = times - t_switch
    end = deleted_at if deleted_at is not None else float(rel[-1])
    result["deletion_completed"] = deleted_at is not None
    during = lat[(rel >= 0) & (rel <= end)]
    before = lat[(rel < 0) & (rel >= -min(3.0, end))]
    step = max(1, len(rel) // 20000)  # the trace in the JSON is thinned for the plot, the stats are not
    keep = np.argsort(lat)[-200:]  # ...but always keeps the slowest pings
    idx = np.union1d(np.arange(0, len(rel), step), keep)
    result.update({
        "switch_to": Generation("v2", SCALE_UID).id,
        "hits_before_switch": f"{hits_before}/20",
        "stop_serving_ms": None if stop_serving is None else 1000 * stop_serving,
        "last_old_hit_ms": None if last_old is None else 1000 * last_old,
        "delete_seconds": deleted_at if deleted_at is not None else float("nan"),
        "entries_after": left,
        "ping_during": latency_summary(during.tolist()) if len(during) else None,
        "ping_before": latency_summary(before.tolist()) if len(before) else None,
        "pings_over_10ms": int((during > 0.010).sum()),
        "ping_trace_s": [round(float(x), 4) for x in rel[idx]],
        "ping_trace_ms": [round(1000 * float(x), 3) for x in lat[idx]],
        "setup": f"{result['entries_before']:,} entries of the old generation in one partition of a "
                 f"Redis-backed sidecar (`{SCALE_SCOPE}`); the sidecar drops the old generation's index "
                 "(FT.DROPINDEX without DD), then SCANs and UNLINKs its keys in paced batches; "
                 "the PING loop, the client, the sidecar and Redis share the machine's cores.",
    })  # fmt: skip
    return result


def run(ctx: Context) -> dict[str, Any]:
    return asyncio.run(_measure(ctx))


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "ping":
        ping_loop(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]), float(sys.argv[5]))
    else:
        print("usage: python -m bench.switch ping REDIS_URL OUT.npy STOPFILE SECONDS", file=sys.stderr)
        sys.exit(2)
