"""7. Capacity planner against vLLM's own figure.

vLLM logs `KV cache size: N tokens` at start-up. scripts/bench.sh starts vLLM on the CPU with the
arguments `hermes-cache plan` renders for bench/policies/tiny-cpu.yaml and a KV budget of
VLLM_CPU_KVCACHE_SPACE GiB; here the planner is asked, through the same CLI, what it predicts for
that policy and budget. The model's own config.json is read too, to check the per-token arithmetic
(2 x layers x KV heads x head_dim x bytes) against the preset the planner used.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from bench.common import Context, Skip
from bench.services import POLICY, plan, vllm_kv_tokens

TARGET_PCT = 3.0


def _model_config(ctx: Context) -> dict[str, Any] | None:
    folder = os.environ.get("HERMES_BENCH_VLLM_MODEL")
    if not folder:
        return None
    try:
        data: dict[str, Any] = json.loads((Path(folder) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return data


def run(ctx: Context) -> dict[str, Any]:
    if ctx.vllm_log is None:
        raise Skip("no vLLM start-up log (HERMES_BENCH_VLLM_LOG); scripts/bench.sh starts vLLM and sets it")
    found = vllm_kv_tokens(ctx.vllm_log)
    if found is None:
        raise Skip(f"no 'KV cache size: N tokens' line in {ctx.vllm_log}")
    vllm_tokens, line = found
    space_gib = float(os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"))
    rendered = plan(POLICY, kv_cache_space_gib=space_gib)
    cap = rendered["capacity"]
    predicted = int(cap["kvCacheTokensPerReplica"])
    result: dict[str, Any] = {
        "policy": str(POLICY.relative_to(POLICY.parents[2])),
        "kv_cache_space_gib": space_gib,
        "vllm_tokens": vllm_tokens,
        "vllm_log_line": line,
        "planner_tokens": predicted,
        "planner_kv_bytes_per_token": cap["kvBytesPerToken"],
        "planner_capacity": cap,
        "error_pct": 100.0 * (predicted - vllm_tokens) / vllm_tokens,
        "target_pct": TARGET_PCT,
        "plan_command": f"hermes-cache plan {POLICY.relative_to(POLICY.parents[2])} -o json "
        f"--kv-cache-space-gib {space_gib:g}",
    }
    cfg = _model_config(ctx)
    if cfg:
        layers = int(cfg["num_hidden_layers"])
        kv_heads = int(cfg.get("num_key_value_heads", cfg["num_attention_heads"]))
        head_dim = int(cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"])
        dtype = str(cfg.get("dtype") or cfg.get("torch_dtype") or "bfloat16")
        nbytes = 4 if "32" in dtype else 2
        result["model_config"] = {
            "layers": layers,
            "kv_heads": kv_heads,
            "head_dim": head_dim,
            "dtype": dtype,
        }
        result["physics_kv_bytes_per_token"] = 2 * layers * kv_heads * head_dim * nbytes
        result["physics_tokens_from_budget"] = (
            int(space_gib * 1024**3) // result["physics_kv_bytes_per_token"]
        )
    return result
