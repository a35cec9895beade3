"""The README's quality table: every set, holdout halves, each system at its defaults.

Printed by `python -m bench.report.summary` from bench/out/quality.json (or $HERMES_BENCH_OUT).
"""

from __future__ import annotations

import sys

from bench.common import OUT, read_json
from bench.report.sections import quality_summary


def main() -> int:
    path = OUT / "quality.json"
    try:
        r = read_json(path)
    except (OSError, ValueError) as exc:
        print(f"{path}: {exc}; run `scripts/bench.sh full quality` first", file=sys.stderr)
        return 1
    if r.get("status") != "ok" or "split" not in r.get("result", {}):
        print(f"{path}: no holdout result ({r.get('status')}: {r.get('reason', '')})", file=sys.stderr)
        return 1
    print("\n".join(quality_summary(r["result"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
