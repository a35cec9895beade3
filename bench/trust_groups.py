"""Trust groups: the TTFT of tenant B's first request after tenant A sent the same long system prompt,
with B in A's trust group and with B in another group, side by side in one run, through one sidecar in
front of the real vLLM (docs/sidecar.md, "Trust groups").

Each round has a system prompt vLLM has never seen (a new first line) and four tenants: A and B in one
trust group, C and D in another. A sends the prompt first (cold); then B (same group as A) and C (a
different group) each send it once with a question of their own, in alternating order from round to
round, so both see the same machine at the same time. Every question is new (no exact or semantic hit),
so every request is a miss that vLLM prefills; what differs is whether the sidecar's ``cache_salt`` lets
vLLM reuse A's prefix blocks. vLLM's ``vllm:prefix_cache_hits_total`` and ``..._queries_total``
(tokens) are read around each request.

    python -m bench.trust_groups --vllm-url http://127.0.0.1:8179 --redis-url redis://127.0.0.1:6479/0

or as the ``trust_groups`` measurement of ``bench.run`` (services from scripts/bench.sh). vLLM should
run with the arguments ``hermes-cache plan bench/policies/tiny-cpu.yaml`` renders
(``python -m bench.services vllm-args bench/policies/tiny-cpu.yaml``), as scripts/bench.sh starts it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import sys
import time
from typing import Any

import httpx

from bench.common import OUT, Context, latency_summary, median, write_json
from bench.corpus import chat_body, policy_text
from bench.services import Sidecar, vllm_model

PORT = int(os.environ.get("HERMES_BENCH_TRUST_PORT", "8193"))
SCOPE = "bench/trust-groups"
TARGET_PROMPT_TOKENS = 1400
HITS, QUERIES = "vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total"
FIRST, SAME, OTHER = "A: first request (cold)", "B: same trust group as A", "C: another trust group"


async def _counters(client: httpx.AsyncClient, vllm_url: str) -> dict[str, float]:
    text = (await client.get(vllm_url.rstrip("/") + "/metrics")).text
    out = {}
    for name in (HITS, QUERIES):
        pattern = rf"^{re.escape(name)}(?:{{[^}}]*}})?\s+([0-9.eE+-]+)$"
        out[name] = sum(float(m.group(1)) for m in re.finditer(pattern, text, re.M))
    return out


async def _ttft(client: httpx.AsyncClient, url: str, body: dict[str, Any], tenant: str) -> tuple[float, str]:
    """Seconds until the first SSE event carrying generated text, and the sidecar's cache result."""
    t0 = time.perf_counter()
    headers = {"x-tenant-id": tenant}
    async with client.stream("POST", url + "/v1/chat/completions", json=body, headers=headers) as r:
        result = r.headers.get("x-hermes-cache", "")
        first = None
        async for line in r.aiter_lines():
            if not line.startswith("data:") or line.strip() == "data: [DONE]":
                continue
            now = time.perf_counter()
            first = first or now
            try:
                delta = json.loads(line[5:])["choices"][0].get("delta", {})
            except (ValueError, KeyError, IndexError):
                continue
            if delta.get("content"):
                return now - t0, result
        return (first or time.perf_counter()) - t0, result


async def _size_prompt(client: httpx.AsyncClient, vllm_url: str, model: str) -> tuple[int, int]:
    """Characters of policy text that make about TARGET_PROMPT_TOKENS tokens, and the token count."""
    chars, tokens = 1500, 0
    for attempt in range(4):
        probe = chat_body(model, "size probe", system=policy_text(chars))
        r = await client.post(vllm_url + "/v1/chat/completions", json=probe)
        r.raise_for_status()
        tokens = int(r.json()["usage"]["prompt_tokens"])
        if abs(tokens - TARGET_PROMPT_TOKENS) < 0.05 * TARGET_PROMPT_TOKENS or attempt == 3:
            break
        chars = max(200, int(chars * TARGET_PROMPT_TOKENS / max(1, tokens)))
    return chars, tokens


def sidecar_config(vllm_url: str, redis_url: str, rounds: int) -> dict[str, Any]:
    groups = []
    for i in range(rounds):
        groups.append({"name": f"first-{i}", "tenants": [f"h:a-{i}", f"h:b-{i}"]})
        groups.append({"name": f"second-{i}", "tenants": [f"h:c-{i}", f"h:d-{i}"]})
    return {
        "upstream": {"kind": "openai", "url": vllm_url},
        "cache": {"backend": "redis", "redisUrl": redis_url, "scope": SCOPE, "storeTruncated": True},
        "embedding": {"provider": "local"},
        "tenancy": {"trustGroups": groups},
    }


async def measure(vllm_url: str, redis_url: str, rounds: int) -> dict[str, Any]:
    from fow_cache.data import load_questions

    vllm_url = vllm_url.rstrip("/")
    model = vllm_model(vllm_url)
    from hermes_sidecar.config import BypassConfig

    volatile = [re.compile(p, re.IGNORECASE) for p in BypassConfig().patterns]
    # questions the sidecar would pass through uncached (bypass) are left out: every request a miss
    questions = [q["b"] for q in load_questions() if not any(p.search(q["b"]) for p in volatile)]
    random.Random(5).shuffle(questions)
    # unseeded: prompts and tickets new to this vLLM and this Redis even when a run is repeated
    rng = random.Random()
    rows: dict[str, dict[str, Any]] = {
        label: {
            "label": label,
            "samples_s": [],
            "results": set(),
            "prefix_hit_tokens": 0,
            "prefix_query_tokens": 0,
        }
        for label in (FIRST, SAME, OTHER)
    }
    load = os.getloadavg()[0]
    async with httpx.AsyncClient(timeout=120) as client:
        chars, tokens = await _size_prompt(client, vllm_url, model)
        with Sidecar(sidecar_config(vllm_url, redis_url, rounds), OUT / "trust-groups-run", PORT) as sc:
            for i in range(rounds):
                system = policy_text(chars, head=f"Account {rng.randrange(10**12)}.\n")
                order = [(SAME, f"b-{i}"), (OTHER, f"c-{i}")]
                for label, tenant in [(FIRST, f"a-{i}"), *(order if i % 2 == 0 else order[::-1])]:
                    q = f"{questions.pop()} (ticket {rng.randrange(10**9)})"
                    before = await _counters(client, vllm_url)
                    dt, result = await _ttft(
                        client, sc.url, chat_body(model, q, system=system, stream=True), tenant
                    )
                    await asyncio.sleep(0.2)  # vLLM publishes a request's counters just after it ends
                    after = await _counters(client, vllm_url)
                    row = rows[label]
                    row["samples_s"].append(dt)
                    row["results"].add(result)
                    row["prefix_hit_tokens"] += int(after[HITS] - before[HITS])
                    row["prefix_query_tokens"] += int(after[QUERIES] - before[QUERIES])
    for row in rows.values():
        row["ttft"] = latency_summary(row["samples_s"])
        row["results"] = sorted(row["results"])
        row["prefix_hit_rate"] = row["prefix_hit_tokens"] / max(1, row["prefix_query_tokens"])
    same, other = rows[SAME], rows[OTHER]
    return {
        "model": model,
        "load_average_1m_at_start": load,
        "rounds": rounds,
        "system_prompt_tokens": tokens,
        "rows": list(rows.values()),
        "same_vs_other_ttft_ratio": median(same["samples_s"]) / median(other["samples_s"]),
        # per round, B and C ran back to back on the same prompt: their difference cancels most of
        # the machine's drift (other processes share the two cores)
        "paired_other_minus_same_ms_p50": median(
            (o - m) * 1000 for m, o in zip(same["samples_s"], other["samples_s"], strict=True)
        ),
        "rounds_same_faster": sum(m < o for m, o in zip(same["samples_s"], other["samples_s"], strict=True)),
        "setup": f"{rounds} rounds, each with a new system prompt of {tokens} tokens ({chars} characters of "
        "support policy text) and a new question per request, streamed through one sidecar (trust groups "
        f"{{A, B}} and {{C, D}} per round) in front of `{model}`; B and C alternate in going first.",
    }


def run(ctx: Context) -> dict[str, Any]:
    return asyncio.run(measure(ctx.vllm_url, ctx.redis_url, max(4, ctx.sizes.prefix_requests)))


def table(result: dict[str, Any]) -> str:
    """The rows as the Markdown table of docs/benchmarks.md."""
    lines = [
        "| request | TTFT p50 | TTFT p90 | vLLM prefix-cache hits / queries (tokens) | hit rate | sidecar |",
        "|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        t = row["ttft"]
        lines.append(
            f"| {row['label']} | {t['p50_ms']:.0f} ms | {t['p90_ms']:.0f} ms | "
            f"{row['prefix_hit_tokens']:,} / {row['prefix_query_tokens']:,} | {row['prefix_hit_rate']:.0%} | "
            f"{', '.join(row['results'])} |"
        )
    return "\n".join(lines)


def section(r: dict[str, Any]) -> list[str]:
    """The docs/benchmarks.md section (bench/report/sections.py)."""
    res = r["result"]
    return [
        "",
        f"{res['setup']} Every request is a miss (no question repeats), so vLLM prefills each one; its own "
        "prefix-cache counters are read around each request.",
        "",
        table(res),
        "",
        f"Within a round, B's time to first token was {res['paired_other_minus_same_ms_p50']:.0f} ms "
        f"shorter than C's at the median, and shorter in {res['rounds_same_faster']} of the "
        f"{res['rounds']} rounds. Times on a "
        "shared 2-core machine are noisy; the counters are not: the group's shared `cache_salt` lets B reuse "
        "every full block of A's prompt, and C, whose salt differs, reuses none.",
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.trust_groups", description=__doc__.split("\n\n")[0])
    p.add_argument("--vllm-url", default=os.environ.get("HERMES_BENCH_VLLM_URL", "http://127.0.0.1:8179"))
    p.add_argument(
        "--redis-url", default=os.environ.get("HERMES_BENCH_REDIS_URL", "redis://127.0.0.1:6479/0")
    )
    p.add_argument("--rounds", type=int, default=16)
    args = p.parse_args(argv)
    result = asyncio.run(measure(args.vllm_url, args.redis_url, args.rounds))
    write_json(OUT / "trust-groups.json", {"measurement": "trust-groups", "status": "ok", "result": result})
    print(table(result))
    print(
        f"same group / other group TTFT (p50): {result['same_vs_other_ttft_ratio']:.2f}; per round, other "
        f"minus same: {result['paired_other_minus_same_ms_p50']:.1f} ms (p50), same faster in "
        f"{result['rounds_same_faster']} of {result['rounds']} rounds; "
        f"load {result['load_average_1m_at_start']:.1f}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
