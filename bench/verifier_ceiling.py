"""The most a verifier can serve: `hermes-sidecar evaluate` with a perfect one.

A verifier (cache.guard.verifier) only sees the candidates that reach it: at or above its
minSimilarity, past every guard rule it may not overrule. This runs the live decision path on the
fow-cache pairs with an oracle behind the real rerank wire format (a local HTTP server that scores
1.0 exactly the pairs labelled same-answer), so served is the ceiling any real model has at those
settings, and wrong is 0 by construction. A real cross-encoder is measured by pointing
cache.guard.verifier at it and running `hermes-sidecar evaluate` the same way.

    python -m bench.verifier_ceiling [--split all|tune|holdout]    a table on stdout
    scripts/bench.sh full verifier                                  into docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bench.common import Context
from hermes_sidecar.config import parse_config
from hermes_sidecar.evaluate import evaluate_files
from hermes_sidecar.keys import normalise

SOFT_RULES = ["edit", "scope", "date", "entity"]
SETTINGS = [  # (minSimilarity, overrule)
    (0.85, []),
    (0.7, []),
    (0.6, []),
    (0.7, SOFT_RULES),
    (0.6, SOFT_RULES),
    (0.5, SOFT_RULES),
    (0.6, [*SOFT_RULES, "number", "negation", "direction"]),
]


def _pairs_file() -> Path:
    import fow_cache

    return Path(os.path.dirname(fow_cache.__file__)) / "data" / "pairs.jsonl"


def _oracle(same: set[frozenset[str]]) -> Starlette:
    async def rerank(request: Request) -> Response:
        body = await request.json()
        results = [
            {"index": i, "relevance_score": 1.0 if frozenset((body["query"], d)) in same else 0.0}
            for i, d in enumerate(body["documents"])
        ]
        return JSONResponse({"id": "oracle", "model": body["model"], "results": results})

    return Starlette(routes=[Route("/rerank", rerank, methods=["POST"])])


def _serve(app: Starlette) -> tuple[str, uvicorn.Server, threading.Thread]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    return f"http://127.0.0.1:{sock.getsockname()[1]}", server, thread


def ceilings(split: str) -> list[dict[str, Any]]:
    path = _pairs_file()
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    # the sidecar sends its normalised text (whitespace collapsed), so the labels are keyed on it
    same = {frozenset((normalise(r["a"]), normalise(r["b"]))) for r in rows if r["same_answer"]}
    url, server, thread = _serve(_oracle(same))
    out = []
    try:
        for min_sim, overrule in SETTINGS:
            cfg = parse_config(
                {
                    "cache": {
                        "guard": {
                            "verifier": {
                                "url": url,
                                "model": "oracle",
                                "minSimilarity": min_sim,
                                "overrule": overrule,
                                "timeoutSeconds": 30,
                            }
                        }
                    }
                }
            )
            report = asyncio.run(evaluate_files([str(path)], cfg, split=split))
            out.append(
                {
                    "minSimilarity": min_sim,
                    "overrule": overrule,
                    "served": report["served_rate"],
                    "wrong": report["wrong_rate"],
                    "verifier_errors": report["verifier"]["errors"],
                }
            )
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    return out


def run(ctx: Context) -> dict[str, Any]:
    """The bench measurement: both splits (no services needed; same in quick and full mode)."""
    return {
        "pairs": str(_pairs_file()),
        "splits": {split: ceilings(split) for split in ("all", "holdout")},
        "target_served": 0.85,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=["all", "tune", "holdout"], default="all")
    args = ap.parse_args()
    print(f"| minSimilarity | overrule | served ({args.split}) | wrong |")
    print("|---|---|---|---|")
    for r in ceilings(args.split):
        rules = ", ".join(r["overrule"]) or "none"
        print(f"| {r['minSimilarity']} | {rules} | {r['served']:.1%} | {r['wrong']:.1%} |")


if __name__ == "__main__":
    main()
