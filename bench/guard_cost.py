"""What the guard costs the CPU: features of a new text, and one comparison, cold and warm.

Every question pair of the bench/data sets (both halves: this is a cost, not a quality figure). The
guard caches per text (``features``) and per word (``key``, ``lemma`` lookups, word similarity), so a
live sidecar pays the cold figures for text it has not seen and the warm ones for the candidates of
hot questions. Each figure is the best of ``--repeat`` rounds; the caches are cleared before each
cold round.

    python -m bench.guard_cost [--repeat 5]      a table on stdout
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from bench.quality import SETS, load
from hermes_sidecar.guard import Features, compare, features

# the guard's modules whose functools caches make a comparison warm (the package exports the
# function `features` under the module's name, so the modules are taken from sys.modules)
GUARD_MODULES = ("hermes_sidecar.guard.features", "hermes_sidecar.guard.rules")


@dataclass(frozen=True)
class Cost:
    texts: int
    pairs: int
    features_us: float  # per new text, cold
    compare_cold_us: float  # per pair, word caches cold
    compare_warm_us: float  # per pair, every cache warm


def clear_caches(modules: Iterable[ModuleType]) -> int:
    """Clear every functools cache defined at the top level of the modules; returns how many."""
    cleared = 0
    for module in modules:
        for value in vars(module).values():
            clear = getattr(value, "cache_clear", None)
            if callable(clear) and not isinstance(value, type):
                clear()
                cleared += 1
    return cleared


def _best(repeat: int, run: Callable[[], float]) -> float:
    return min(run() for _ in range(repeat))


def measure(pairs: list[tuple[str, str]], repeat: int = 5) -> Cost:
    texts = list(dict.fromkeys(t for pair in pairs for t in pair))
    modules = [sys.modules[name] for name in GUARD_MODULES]
    seen: dict[str, Features] = {}

    def cold_features() -> float:
        clear_caches(modules)
        start = time.perf_counter()
        seen.update((t, features(t)) for t in texts)
        return (time.perf_counter() - start) / len(texts)

    def comparisons(cold: bool) -> Callable[[], float]:
        def run() -> float:
            if cold:
                clear_caches([sys.modules[GUARD_MODULES[1]]])
            start = time.perf_counter()
            for a, b in pairs:
                compare(seen[a], seen[b])
            return (time.perf_counter() - start) / len(pairs)

        return run

    f = _best(repeat, cold_features)
    cold = _best(repeat, comparisons(cold=True))
    warm = _best(repeat, comparisons(cold=False))
    return Cost(len(texts), len(pairs), f * 1e6, cold * 1e6, warm * 1e6)


def bench_pairs() -> list[tuple[str, str]]:
    """Every pair of the bench/data question sets (fow-cache's are left out: this measures the guard,
    and those sets are the package's, not ours)."""
    out: list[tuple[str, str]] = []
    for s in SETS.values():
        if s.fow_cache:
            continue
        out.extend((str(i["a"]), str(i["b"])) for i in load(s) if isinstance(i.get("a"), str))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.guard_cost", description=__doc__.split("\n")[0])
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args(argv)
    cost = measure(bench_pairs(), args.repeat)
    rows: list[tuple[str, Any]] = [
        ("texts", cost.texts),
        ("pairs", cost.pairs),
        ("features of a new text, cold (µs)", f"{cost.features_us:.0f}"),
        ("one comparison, word caches cold (µs)", f"{cost.compare_cold_us:.0f}"),
        ("one comparison, warm (µs)", f"{cost.compare_warm_us:.0f}"),
    ]
    print("| measure | value |\n|---|--:|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
