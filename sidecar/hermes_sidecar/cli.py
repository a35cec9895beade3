"""``hermes-sidecar``: ``serve --config FILE`` runs the proxy; ``evaluate --pairs FILE`` scores the cache
decision on labelled pairs; ``check-config FILE`` validates a config file (what the operator renders)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys

from hermes_sidecar.config import ConfigError, SidecarConfig, load_config


def _config(path: str | None) -> SidecarConfig:
    return load_config(path) if path else SidecarConfig()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hermes-sidecar", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_serve = sub.add_parser("serve", help="run the caching proxy")
    p_serve.add_argument("--config", required=True, help="sidecar YAML config file")
    p_eval = sub.add_parser("evaluate", help="score the cache decision on labelled pairs (JSONL)")
    p_eval.add_argument("--pairs", required=True, action="append", help="JSONL file; repeat for several")
    p_eval.add_argument("--config", help="sidecar YAML config file (default: built-in defaults)")
    p_eval.add_argument("--threshold", type=float, help="override cache.similarityThreshold")
    p_eval.add_argument("--split", choices=["all", "tune", "holdout"], default="all",
                        help="score only one half of the pairs (a stable split by pair id)")  # fmt: skip
    p_eval.add_argument("--details", action="store_true", help="list every wrong decision")
    p_eval.add_argument(
        "--sequential", action="store_true", help="one pair at a time (no batching): a lone request's latency"
    )
    p_eval.add_argument(
        "--age",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="decide every b this long after its a was stored (a fake clock: cache.decay and TTLs see it)",
    )
    p_check = sub.add_parser("check-config", help="validate a config file and print it with defaults")
    p_check.add_argument("config")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per upstream call is noise
    try:
        if args.command == "check-config":
            print(json.dumps(load_config(args.config).model_dump(), indent=2))
            return 0
        cfg = _config(args.config)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    if args.command == "serve":
        from hermes_sidecar.app import serve

        serve(cfg)
        return 0
    from hermes_sidecar.evaluate import EvaluationError, evaluate_files

    try:
        report = asyncio.run(
            evaluate_files(
                args.pairs,
                cfg,
                threshold=args.threshold,
                split=args.split,
                details=args.details,
                sequential=args.sequential,
                age_seconds=args.age,
            )
        )
    except EvaluationError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
