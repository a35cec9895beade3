"""8. Soak: the sidecar on Redis in front of the real vLLM, at a steady concurrency for a long run.

One `hermes-sidecar serve` process (Redis store, local embedder, storeTruncated: the tiny random model's
answers end at max_tokens) follows the generation record of the `bench/soak` scope. N async clients
(httpx, one process) send requests back to back, with a short random pause between two of a client's
requests, for the whole run (quick 3 minutes, full 30 minutes; `--seconds` overrides):

- exact: a question from a fixed pool (a miss the first time per tenant and generation, then a hit);
- semantic: the paraphrase of a pool question (a semantic hit once its question is cached);
- fresh: a question made unique by a ticket number (a miss, answered by vLLM and stored);
- bypass: a volatile question ("... today"), passed through by the sidecar's bypass patterns;
- stream: one of the above, streamed and read to the end;
- abandon: a stream the client closes after its first chunk (a client disconnect mid-stream);
across three tenants, and one generation switch half-way, written the way the operator writes it.

Every few seconds a sampler reads the sidecar's RSS (/proc/PID/status VmRSS) and its open file
descriptors (/proc/PID/fd), and closes a window: per decision (the `x-hermes-cache` header) the p50/p99
of the requests completed in it, and the errors (connection errors, 5xx, any other non-200).

    python -m bench.soak --quick --seconds 90      a short trial against HERMES_BENCH_{REDIS,VLLM}_URL
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.common import OUT, Context, latency_summary, percentile
from bench.corpus import chat_body
from bench.services import Sidecar, vllm_model
from bench.sidecar_path import sidecar_config, write_generation_scope

PORT = int(os.environ.get("HERMES_BENCH_SOAK_PORT", "8193"))
SCOPE = "bench/soak"
TENANTS = ("soak-a", "soak-b", "soak-c")
SECONDS = {"quick": 180, "full": 1800}
CONCURRENCY = 8
WARMUP_SHARE = 0.2  # the first 20% of the run is excluded from the RSS spread
DECISIONS = ("hit-exact", "hit-semantic", "miss", "bypass")
# what each client sends, by weight (see the module docstring)
MIX: dict[str, float] = {"exact": 35, "semantic": 20, "fresh": 15, "bypass": 5, "stream": 15, "abandon": 10}
POOL = 40  # question pairs in the repeated pool
VOLATILE = (
    "What is the weather like today?",
    "What is the exchange rate right now?",
    "Any latest news on the outage?",
    "What is the current status of my order?",
)


# ---------------------------------------------------------------------------------------------- pure parts


@dataclass
class Done:
    """One request as the client saw it."""

    at: float  # seconds since the start of the run, when it completed
    intent: str  # the MIX key it was sent as
    decision: str  # x-hermes-cache ("" when there was no answer)
    seconds: float  # client-observed latency (to the end of the body; abandoned streams: to the first chunk)
    status: int  # HTTP status, 0 for a connection error
    error: str = ""  # "" when fine, else a short kind ("connect", "5xx", "status 404", ...)


def error_kind(status: int, exc: BaseException | None = None) -> str:
    """'' for an expected answer (200); otherwise what the window counts it as."""
    if exc is not None:
        return f"connection: {type(exc).__name__}"
    if status >= 500:
        return f"5xx ({status})"
    if status != 200:
        return f"unexpected status {status}"
    return ""


def window_stats(done: Iterable[Done]) -> dict[str, Any]:
    """Per decision: n, p50_ms, p99_ms of the completed requests (abandoned streams count, no latency);
    plus errors by kind and the number of requests in the window."""
    lat: dict[str, list[float]] = {}
    errors: dict[str, int] = {}
    n = abandoned = 0
    for d in done:
        n += 1
        if d.error:
            errors[d.error] = errors.get(d.error, 0) + 1
            continue
        if d.intent == "abandon":
            abandoned += 1
            continue
        lat.setdefault(d.decision or "none", []).append(d.seconds * 1000.0)
    per = {
        k: {"n": len(v), "p50_ms": percentile(v, 50), "p99_ms": percentile(v, 99)}
        for k, v in sorted(lat.items())
    }
    return {"requests": n, "abandoned": abandoned, "decisions": per, "errors": errors}


def spread(values: Sequence[float]) -> dict[str, float]:
    """min, max and (max - min) / min in percent."""
    lo, hi = min(values), max(values)
    return {"min": lo, "max": hi, "spread_pct": 100.0 * (hi - lo) / lo if lo else float("inf")}


def after_warmup(
    samples: Sequence[dict[str, Any]], seconds: float, share: float = WARMUP_SHARE
) -> list[dict[str, Any]]:
    """The samples taken after the first `share` of the run (all of them if that leaves none)."""
    later = [s for s in samples if s["t"] >= share * seconds]
    return later or list(samples)


def read_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


def count_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:13]) / os.sysconf("SC_CLK_TCK")


_TRACEBACK = re.compile(r"^Traceback \(most recent call last\)", re.MULTILINE)


# ---------------------------------------------------------------------------------------------- the run


@dataclass
class Run:
    model: str
    url: str
    pairs: list[dict[str, Any]]
    started: float = field(default_factory=time.perf_counter)
    done: list[Done] = field(default_factory=list)
    fresh: int = 0

    def now(self) -> float:
        return time.perf_counter() - self.started

    def body(self, intent: str, rng: random.Random, stream: bool) -> dict[str, Any]:
        pair = self.pairs[rng.randrange(len(self.pairs))]
        if intent == "semantic":
            text = pair["b"]
        elif intent == "fresh":
            self.fresh += 1
            text = f"{pair['a']} (ticket {self.fresh}-{rng.randrange(10**9)})"
        elif intent == "bypass":
            text = rng.choice(VOLATILE)
        else:
            text = pair["a"]
        return chat_body(self.model, text, stream=stream)

    async def one(self, client: httpx.AsyncClient, rng: random.Random) -> None:
        intent = rng.choices(list(MIX), weights=list(MIX.values()))[0]
        stream = intent in ("stream", "abandon")
        # a streamed request asks a pool question, its paraphrase or a fresh one
        inner = rng.choice(("exact", "semantic", "fresh")) if stream else intent
        body = self.body(inner, rng, stream)
        headers = {"x-tenant-id": rng.choice(TENANTS)}
        t0 = time.perf_counter()
        decision, status = "", 0
        try:
            if not stream:
                r = await client.post(self.url + "/v1/chat/completions", json=body, headers=headers)
                decision, status = r.headers.get("x-hermes-cache", ""), r.status_code
            else:
                async with client.stream(
                    "POST", self.url + "/v1/chat/completions", json=body, headers=headers
                ) as r:
                    decision, status = r.headers.get("x-hermes-cache", ""), r.status_code
                    async for _ in r.aiter_raw():
                        if intent == "abandon":
                            break  # leaving the block closes the connection mid-stream
            err = error_kind(status)
        except (httpx.HTTPError, httpx.StreamError) as exc:
            err = error_kind(0, exc)
        except Exception as exc:  # anything else the client meets is an error of the run, not a crash of it
            err = f"client: {type(exc).__name__}: {exc}"
        self.done.append(Done(self.now(), intent, decision, time.perf_counter() - t0, status, err))

    async def client(self, client: httpx.AsyncClient, seed: int, until: float, pause: float) -> None:
        rng = random.Random(seed)
        while self.now() < until:
            await self.one(client, rng)
            await asyncio.sleep(rng.uniform(0, 2 * pause))


async def _sampler(run: Run, pid: int, until: float, interval: float, samples: list[dict[str, Any]]) -> None:
    cut = 0
    while True:
        await asyncio.sleep(interval)
        t = run.now()
        window, cut = run.done[cut:], len(run.done)
        samples.append(
            {
                "t": round(t, 2),
                "rss_kib": read_rss_kib(pid),
                "fds": count_fds(pid),
                "cpu_s": round(cpu_seconds(pid), 2),
                **window_stats(window),
            }
        )
        if t >= until:
            return


def _metrics(url: str) -> dict[str, float]:
    text = httpx.get(url + "/metrics", timeout=10).text
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(
            ("hermes_cache_requests_total", "hermes_cache_errors", "hermes_cache_bypass_total")
        )
    }


async def _measure(ctx: Context, seconds: float, concurrency: int, pause: float) -> dict[str, Any]:
    from fow_cache.data import load_questions

    model = vllm_model(ctx.vllm_url)
    pairs = [q for q in load_questions() if q["same_answer"]]
    random.Random(17).shuffle(pairs)
    pairs = pairs[:POOL]
    run_id = time.strftime("%Y%m%d%H%M%S")
    uid = f"soak-{run_id}"
    versions = (f"soak-{run_id}-1", f"soak-{run_id}-2")
    write_generation_scope(ctx.redis_url, SCOPE, versions[0], uid)
    interval = min(20.0, max(2.0, seconds / 90))
    samples: list[dict[str, Any]] = []
    limits = httpx.Limits(max_connections=2 * concurrency, max_keepalive_connections=2 * concurrency)
    with Sidecar(sidecar_config(ctx, SCOPE), OUT / "soak-run", PORT) as sc:
        run = Run(model, sc.url, pairs)
        start = {"rss_kib": read_rss_kib(sc.pid), "fds": count_fds(sc.pid)}
        switch_at = seconds / 2

        async def switch() -> float:
            await asyncio.sleep(max(0.0, switch_at - run.now()))
            await asyncio.to_thread(write_generation_scope, ctx.redis_url, SCOPE, versions[1], uid)
            return run.now()

        async with httpx.AsyncClient(timeout=120, limits=limits) as client:
            switching = asyncio.create_task(switch())
            tasks = [run.client(client, 1000 + i, seconds, pause) for i in range(concurrency)]
            await asyncio.gather(_sampler(run, sc.pid, seconds, interval, samples), *tasks)
            switched = await switching
        await asyncio.sleep(2.0)  # the last stores land, closed connections are reaped
        end = {
            "rss_kib": read_rss_kib(sc.pid),
            "fds": count_fds(sc.pid),
            "alive": sc.proc is not None and sc.proc.poll() is None,
        }
        counters = _metrics(sc.url)
        log = sc.tail(10**7)
    return summarise(run.done, samples, seconds, interval, concurrency, pause, {
        "model": model,
        "start": start,
        "end": end,
        "switch_at_s": round(switched, 2),
        "generations": list(versions),
        "sidecar_counters": counters,
        "sidecar_log_tracebacks": len(_TRACEBACK.findall(log)),
        "sidecar_log_tail": log[-1500:] if _TRACEBACK.search(log) else "",
    })  # fmt: skip


def summarise(done: Sequence[Done], samples: Sequence[dict[str, Any]], seconds: float, interval: float,
              concurrency: int, pause: float, extra: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """The result: the run's summary fields first, then every sample."""
    later = after_warmup(samples, seconds)
    rss = spread([s["rss_kib"] / 1024 for s in later])
    fds_all = [s["fds"] for s in samples]
    overall = window_stats(done)
    lat: dict[str, list[float]] = {}
    for d in done:
        if not d.error and d.intent != "abandon":
            lat.setdefault(d.decision or "none", []).append(d.seconds)
    intents: dict[str, int] = {}
    for d in done:
        intents[d.intent] = intents.get(d.intent, 0) + 1
    errors = sum(overall["errors"].values())
    return {
        "seconds": seconds,
        "concurrency": concurrency,
        "pause_mean_s": pause,
        "sample_interval_s": interval,
        "warmup_share": WARMUP_SHARE,
        "requests": len(done),
        "requests_per_second": len(done) / seconds if seconds else 0.0,
        "intents": intents,
        "abandoned_streams": overall["abandoned"],
        "rss_after_warmup_mib": rss,
        "fds": {"min": min(fds_all), "max": max(fds_all)} if fds_all else None,
        "errors": errors,
        "errors_by_kind": overall["errors"],
        "latency": {k: latency_summary(v) for k, v in sorted(lat.items())},
        **extra,
        "setup": " ".join(
            [
                "Sidecar: Redis store, local embedder, storeTruncated;",
                f"model `{extra.get('model', '?')}` on vLLM (CPU), max_tokens 16, temperature 0.",
                f"{concurrency} async clients, each pausing {1000 * pause:.0f} ms on average",
                "between two requests,",
                f"{len(TENANTS)} tenants, mix {', '.join(f'{k} {v:g}%' for k, v in MIX.items())};",
                f"a generation switch at {extra.get('switch_at_s', seconds / 2):.0f} s;",
                f"a sample every {interval:g} s. Client, sidecar, Redis and vLLM share the cores.",
            ]
        ),
        "samples": list(samples),
    }


def run(ctx: Context) -> dict[str, Any]:
    seconds = float(os.environ.get("HERMES_BENCH_SOAK_SECONDS") or SECONDS[ctx.mode])
    concurrency = int(os.environ.get("HERMES_BENCH_SOAK_CONCURRENCY") or CONCURRENCY)
    pause = float(os.environ.get("HERMES_BENCH_SOAK_PAUSE") or 0.05)
    return asyncio.run(_measure(ctx, seconds, concurrency, pause))


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.soak`: this measurement alone, through bench.run (same JSON), with overrides."""
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--full", action="store_true", help="full mode (30 minutes) instead of quick (3 minutes)")
    p.add_argument("--seconds", type=float, help="run for this long instead")
    p.add_argument("--concurrency", type=int, help=f"clients in flight (default {CONCURRENCY})")
    p.add_argument(
        "--pause", type=float, help="mean pause between a client's requests, seconds (default 0.05)"
    )
    p.add_argument("--no-render", action="store_true", help="write JSON only")
    args = p.parse_args(argv)
    for var, v in (("SECONDS", args.seconds), ("CONCURRENCY", args.concurrency), ("PAUSE", args.pause)):
        if v is not None:
            os.environ[f"HERMES_BENCH_SOAK_{var}"] = str(v)
    from bench import run as runner

    return runner.main(
        ["--full" if args.full else "--quick", "--only", "soak", *(["--no-render"] if args.no_render else [])]
    )


if __name__ == "__main__":
    sys.exit(main())
