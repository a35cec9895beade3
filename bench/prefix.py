"""4. Prefix cache: TTFT of requests that share a long system prompt against requests whose long system
prompts differ from the first token on, through the sidecar, on vLLM started with the arguments
`hermes-cache plan` renders (scripts/bench.sh), and across a generation switch.

Every request has a new user question (no semantic or exact hit: each carries its own ticket number,
which the guard reads), so each one is a miss that vLLM must prefill; what changes is whether vLLM's
automatic prefix cache holds the system prompt's KV blocks. The sidecar salts every upstream request
with its generation (`cache_salt`), so after a switch the shared prompt is cold once, then warm again.
Shared and distinct requests alternate in one loop; vLLM's own `vllm:prefix_cache_hits_total` and
`..._queries_total` counters are read around each phase.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
from typing import Any

import httpx

from bench.common import OUT, Context, latency_summary, median
from bench.corpus import chat_body, policy_text
from bench.services import Sidecar, vllm_model
from bench.sidecar_path import sidecar_config, ttft, write_generation_scope

PORT = int(os.environ.get("HERMES_BENCH_PREFIX_PORT", "8191"))
SCOPE = "bench/prefix"
TARGET_PROMPT_TOKENS = 1400


HITS, QUERIES = "vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total"


async def _counters(client: httpx.AsyncClient, vllm_url: str) -> dict[str, float]:
    text = (await client.get(vllm_url.rstrip("/") + "/metrics")).text
    out = {}
    for name in (HITS, QUERIES):
        total = 0.0
        for m in re.finditer(rf"^{re.escape(name)}(?:{{[^}}]*}})?\s+([0-9.eE+-]+)$", text, re.M):
            total += float(m.group(1))
        out[name] = total
    return out


async def _measure(ctx: Context) -> dict[str, Any]:
    from fow_cache.data import load_questions

    model = vllm_model(ctx.vllm_url)
    questions = [q["b"] for q in load_questions()]
    random.Random(3).shuffle(questions)
    rng = random.Random(9)
    n = ctx.sizes.prefix_requests
    write_generation_scope(ctx.redis_url, SCOPE, "p1", "bench-prefix")

    def ask(system: str) -> dict[str, Any]:
        q = questions.pop()
        return chat_body(model, f"{q} (ticket {rng.randrange(10**9)})", system=system, stream=True)

    phases: list[dict[str, Any]] = []
    with Sidecar(sidecar_config(ctx, scope=SCOPE), OUT / "prefix-run", PORT) as sc:
        async with httpx.AsyncClient(timeout=120) as client:
            # Size the shared prompt to ~TARGET_PROMPT_TOKENS with the model's own tokenizer (usage).
            chars = 1500
            for attempt in range(4):
                probe = chat_body(model, "size probe", system=policy_text(chars))
                probe["stream"] = False
                r = await client.post(ctx.vllm_url + "/v1/chat/completions", json=probe)
                if r.status_code != 200:
                    raise RuntimeError(
                        f"sizing probe of {chars} characters: vLLM answered {r.status_code} {r.text[:300]}"
                    )
                tokens = int(r.json()["usage"]["prompt_tokens"])
                if abs(tokens - TARGET_PROMPT_TOKENS) < 0.05 * TARGET_PROMPT_TOKENS or attempt == 3:
                    break
                chars = max(200, int(chars * TARGET_PROMPT_TOKENS / max(1, tokens)))
            shared = policy_text(chars)

            async def requests(items: list[tuple[str, str]]) -> None:
                """Send (label, system prompt) requests in this order; vLLM's prefix-cache counters are read
                around each request, so interleaved labels still get their own hit counts."""
                rows: dict[str, dict[str, Any]] = {}
                for label, system in items:
                    before = await _counters(client, ctx.vllm_url)
                    dt, h = await ttft(client, sc.url, ask(system))
                    after = await _counters(client, ctx.vllm_url)
                    empty = {"label": label, "samples_s": [], "headers": set(), "prefix_hit_tokens": 0,
                             "prefix_query_tokens": 0}  # fmt: skip
                    row = rows.setdefault(label, empty)
                    row["samples_s"].append(dt)
                    row["headers"].add(h)
                    row["prefix_hit_tokens"] += int(after[HITS] - before[HITS])
                    row["prefix_query_tokens"] += int(after[QUERIES] - before[QUERIES])
                for row in rows.values():
                    row["ttft"] = latency_summary(row["samples_s"])
                    row["headers"] = sorted(row["headers"])
                    phases.append(row)

            await requests([("shared prompt, first request (cold)", shared)])
            # Interleaved: warm shared-prompt and distinct-prompt requests alternate, so both see the
            # same machine at the same time.
            mixed: list[tuple[str, str]] = []
            for i in range(n):
                distinct = policy_text(chars, head=f"Case file {rng.randrange(10**9)}.\n")
                pair = [("shared prompt, warm", shared), ("distinct prompts of the same length", distinct)]
                mixed += pair if i % 2 == 0 else pair[::-1]
            await requests(mixed)
            write_generation_scope(ctx.redis_url, SCOPE, "p2", "bench-prefix")
            await asyncio.sleep(1.0)  # the sidecar follows the channel; give it a moment
            await requests([("shared prompt, first request after a generation switch", shared)])
            await requests([("shared prompt, warm after the switch", shared)] * n)
    warm = next(p for p in phases if p["label"] == "shared prompt, warm")
    other = next(p for p in phases if p["label"].startswith("distinct"))
    return {
        "model": model,
        "system_prompt_tokens": tokens,
        "system_prompt_chars": chars,
        "phases": phases,
        "shared_vs_distinct_ratio": median(warm["samples_s"]) / median(other["samples_s"]),
        "setup": f"System prompt of {tokens} tokens ({chars} characters of support "
        f"policy text), a new question per request, streamed through a sidecar in front of `{model}`; vLLM "
        "arguments from `hermes-cache plan bench/policies/tiny-cpu.yaml` (automatic prefix caching on, "
        "block size 32, sha256 block hashes).",
    }


def run(ctx: Context) -> dict[str, Any]:
    return asyncio.run(_measure(ctx))
