"""What every measurement shares: sizes per mode, percentiles, result files, service locations.

A measurement is a function `run(ctx) -> dict`. It raises `Skip` when a component it needs is not
there (the reason is rendered into the report instead of a number), and it never invents a figure:
every number in a result comes from a clock, a counter or a log line read during the run.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Overridable so a trial run does not replace the report's results (HERMES_BENCH_OUT, HERMES_BENCH_DOCS).
OUT = Path(os.environ.get("HERMES_BENCH_OUT") or ROOT / "bench" / "out")
DOCS = Path(os.environ.get("HERMES_BENCH_DOCS") or ROOT / "docs")


class Skip(Exception):
    """The measurement cannot run here; the message says which component is missing and how to get it."""


@dataclass(frozen=True)
class Sizes:
    """How much each measurement does. `quick` finishes in a few minutes on 2 cores; `full` is the report."""

    name: str
    quality_datasets: tuple[str, ...]
    quality_sweep_points: int
    quality_stride: int  # every n-th pair (1 = all)
    corpus_texts: int  # distinct real texts embedded for the synthetic corpus (0 = all)
    lookup_entries: tuple[int, ...]
    lookup_queries: int
    sidecar_requests: int
    sidecar_concurrency: int
    ttft_pairs: int
    prefix_requests: int
    switch_entries: int
    operator_policies: tuple[int, ...]


# the labelled sets of bench/data (quality.SETS names them with the fow-cache sets)
BENCH_DATA_SETS = (
    "devops",
    "business",
    "support",
    "home",
    "trades",
    "media",
    "civic",
    "health",
    "leisure",
    "office",
    "study",
    "gadgets",
    "nature",
    "travel",
    "food",
    "motoring",
    "pets",
    "family",
    "fitness",
    "money",
    "coding",
    "diy",
    "education",
    "legal",
    "science",
    "sports",
    "careers",
    "music",
    "garden",
    "photo",
    "gaming",
    "housing",
    "cloud",
    "security",
    "shopping",
    "commute",
    "beauty",
    "wellbeing",
    "events",
    "crafts",
    "weather",
    "insurance",
    "languages",
    "analytics",
    "appliances",
    "outdoors",
    "nutrition",
    "hr",
    "boating",
    "cycling",
    "retail",
    "astronomy",
    "printing",
    "aviation",
    "drinks",
    "energy",
    "fishing",
    "boardgames",
    "tax",
    "networking",
    "skiing",
    "interiors",
    "dental",
    "genealogy",
    "sewing",
    "campervans",
    "baking",
    "birdwatching",
    "equestrian",
    "pools",
    "podcasting",
    "watches",
    "charities",
    "art",
    "homesecurity",
    "models",
    "beekeeping",
    "aquariums",
    "immigration",
    "climbing",
    "pottery",
    "diving",
    "farming",
    "eldercare",
    "woodworking",
    "homebrewing",
    "running",
    "foraging",
    "chess",
    "motorcycling",
    "newborns",
    "hamradio",
    "golf",
    "houseplants",
    "hifi",
    "weddings",
    "surfing",
    "tattoos",
    "videoediting",
    "bbq",
    "drones",
    "speaking",
    "cosplay",
    "cheese",
    "kayaking",
    "knitting",
    "sleep",
    "bonsai",
    "magic",
    "calligraphy",
    "skateboarding",
    "archery",
    "dance",
    "canning",
    "puzzles",
    "coins",
    "rowing",
    "fragrance",
    "bookbinding",
    "mushrooms",
    "hydroponics",
    "glass",
    "blender",
    "piano",
    "spreadsheets",
    "soapmaking",
    "tennis",
    "composting",
    "crypto",
    "welding",
    "origami",
    "triathlon",
    "ebooks",
    "poker",
    "theatre",
    "knives",
    "vinyl",
    "fencing",
    "pilates",
    "lockpicking",
)

QUICK = Sizes(
    name="quick",
    quality_datasets=("questions", *BENCH_DATA_SETS),
    quality_sweep_points=14,
    quality_stride=3,
    corpus_texts=1_500,
    lookup_entries=(1_000, 10_000),
    lookup_queries=200,
    sidecar_requests=100,
    sidecar_concurrency=8,
    ttft_pairs=10,
    prefix_requests=6,
    switch_entries=10_000,
    operator_policies=(100,),
)
FULL = Sizes(
    name="full",
    quality_datasets=("questions", "conversations", *BENCH_DATA_SETS),  # every set of quality.SETS
    quality_sweep_points=40,
    quality_stride=1,
    corpus_texts=0,
    lookup_entries=(1_000, 10_000, 100_000),
    lookup_queries=1_000,
    sidecar_requests=500,
    sidecar_concurrency=16,
    ttft_pairs=40,
    prefix_requests=16,
    switch_entries=100_000,
    operator_policies=(100, 500, 1_000),
)
MODES = {"quick": QUICK, "full": FULL}


@dataclass
class Context:
    """Where the services are and how big to go; built once by bench.run."""

    sizes: Sizes
    redis_url: str
    vllm_url: str
    vllm_log: Path | None
    vllm_args_file: Path | None
    kubeconfig: Path | None
    out: Path = OUT
    notes: list[str] = field(default_factory=list)

    @property
    def mode(self) -> str:
        return self.sizes.name

    def command(self, measurement: str) -> str:
        """The command that reproduces one measurement (services started by scripts/bench.sh)."""
        return f"scripts/bench.sh {self.mode} {measurement}"


def context_from_env(sizes: Sizes) -> Context:
    def path(var: str) -> Path | None:
        v = os.environ.get(var)
        return Path(v) if v else None

    return Context(
        sizes=sizes,
        redis_url=os.environ.get("HERMES_BENCH_REDIS_URL", "redis://127.0.0.1:6379"),
        vllm_url=os.environ.get("HERMES_BENCH_VLLM_URL", "http://127.0.0.1:8000"),
        vllm_log=path("HERMES_BENCH_VLLM_LOG"),
        vllm_args_file=path("HERMES_BENCH_VLLM_ARGS"),
        kubeconfig=path("HERMES_BENCH_KUBECONFIG"),
    )


# ---------------------------------------------------------------------------------------------- numbers


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: every reported value was actually observed)."""
    if not samples:
        raise ValueError("percentile of no samples")
    ordered = sorted(samples)
    rank = max(1, round(q / 100.0 * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/mean/max in milliseconds, plus the sample count."""
    ms = [s * 1000.0 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": percentile(ms, 50),
        "p90_ms": percentile(ms, 90),
        "p99_ms": percentile(ms, 99),
        "mean_ms": statistics.fmean(ms),
        "max_ms": max(ms),
    }


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


class Timer:
    """`with Timer() as t: ...; t.seconds`: perf_counter around a block."""

    seconds: float = 0.0

    def __enter__(self) -> Timer:
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._t0


# ---------------------------------------------------------------------------------------------- files


def machine_info() -> dict[str, Any]:
    """What a reader needs to judge the numbers: cores, memory, load, versions, commit."""
    try:
        mem_kb = int(
            next(
                ln for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal")
            ).split()[1]
        )
    except (OSError, StopIteration, ValueError):
        mem_kb = 0
    try:
        rev = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        rev = ""
    try:
        cpu = next(
            (
                ln.split(":", 1)[1].strip()
                for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")
            ),
            platform.processor(),
        )
    except OSError:
        cpu = platform.processor()
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "loadavg_at_start": list(os.getloadavg()),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "git_rev": rev,
    }


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")
    tmp.replace(path)


def read_json(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data
