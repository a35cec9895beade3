"""Run the benchmarks and render docs/benchmarks.md.

    python -m bench.run --quick                 every measurement, small sizes (a few minutes)
    python -m bench.run --full                  the sizes the report quotes
    python -m bench.run --full --only lookup    one measurement (others keep their last JSON)
    python -m bench.run --render-only           re-render docs/ from bench/out/*.json
    python -m bench.soak --seconds 90           a short soak (the `soak` measurement, its duration overridden)

Services (Redis, vLLM, the control plane) are found through HERMES_BENCH_* variables that
scripts/bench.sh sets after starting them; run through it unless they are already up.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import time
import traceback
from datetime import UTC, datetime
from typing import Any

from bench.common import MODES, OUT, Context, Skip, context_from_env, machine_info, write_json

# name -> (module, what it measures); the order is the order they run in (cheap and service-free first)
MEASUREMENTS: dict[str, tuple[str, str]] = {
    "planner": ("bench.planner", "capacity planner vs vLLM's KV cache size"),
    "quality": ("bench.quality", "served/wrong on every labelled set, holdout halves"),
    "verifier": ("bench.verifier_ceiling", "the most a verifier can serve (an oracle through the live path)"),
    "verifier-cost": ("bench.verifier_cost", "what the served-model verifier costs on the real vLLM"),
    "pair-verifier": (
        "bench.pair_verifier",
        "a cross-encoder trained on the tune halves, through the live path",
    ),
    "pair-verifier-mined": (
        "bench.pair_verifier_mined",
        "the same cross-encoder trained with mined hard negatives too",
    ),
    "lookup": ("bench.lookup", "lookup latency vs number of entries"),
    "sidecar": ("bench.sidecar_path", "through the sidecar with real vLLM"),
    "prefix": ("bench.prefix", "prefix-cache TTFT, shared vs distinct system prompts"),
    "switch": ("bench.switch", "generation switch at scale"),
    "operator": ("bench.operator_scale", "operator scale on the real control plane"),
    "soak": ("bench.soak", "soak: a steady mixed load through the sidecar, memory and latency over time"),
    "plans": ("bench.tool_plans", "tool plans: live-data questions of an agent trace that hit on the plan"),
    "trust-groups": ("bench.trust_groups", "trust groups: a shared system prompt, same group vs another"),
    "routing": ("bench.routing", "prefix-aware routing (the Endpoint Picker) vs round-robin, two vLLM pods"),
}


def run_one(name: str, ctx: Context) -> dict[str, Any]:
    module_name, title = MEASUREMENTS[name]
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    payload: dict[str, Any] = {
        "measurement": name,
        "title": title,
        "mode": ctx.mode,
        "command": ctx.command(name),
        "started": started.isoformat(timespec="seconds"),
        "machine": machine_info(),
    }
    print(f"[bench] {name}: {title} ({ctx.mode})", file=sys.stderr, flush=True)
    try:
        module = importlib.import_module(module_name)
        payload["result"] = module.run(ctx)
        payload["status"] = "ok"
    except Skip as exc:
        payload["status"] = "skipped"
        payload["reason"] = str(exc)
    except Exception as exc:  # one failed measurement must not lose the others
        payload["status"] = "error"
        payload["reason"] = f"{type(exc).__name__}: {exc}"
        payload["traceback"] = traceback.format_exc()[-4000:]
    payload["seconds"] = round(time.perf_counter() - t0, 2)
    print(
        f"[bench] {name}: {payload['status']} in {payload['seconds']} s"
        + (f" ({payload.get('reason')})" if payload["status"] != "ok" else ""),
        file=sys.stderr,
        flush=True,
    )
    write_json(OUT / f"{name}.json", payload)
    return payload


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_const", dest="mode", const="quick")
    g.add_argument("--full", action="store_const", dest="mode", const="full")
    g.add_argument("--render-only", action="store_true")
    p.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(MEASUREMENTS)}")
    p.add_argument("--no-render", action="store_true", help="write JSON only")
    args = p.parse_args(argv)
    # SIGTERM (scripts/bench.sh interrupted) unwinds like Ctrl-C, so sidecars and pingers are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    if not args.render_only:
        mode = args.mode or "quick"
        names = [n.strip() for n in args.only.split(",") if n.strip()] or list(MEASUREMENTS)
        unknown = [n for n in names if n not in MEASUREMENTS]
        if unknown:
            p.error(f"--only {','.join(unknown)}: unknown measurement; choose from {', '.join(MEASUREMENTS)}")
        ctx = context_from_env(MODES[mode])
        OUT.mkdir(parents=True, exist_ok=True)
        for name in names:
            run_one(name, ctx)
    if not args.no_render:
        from bench.report import render

        path = render(OUT)
        print(f"[bench] wrote {os.path.relpath(path)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
