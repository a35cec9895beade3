"""The PNG plots under docs/bench/; matplotlib is imported only when a plot is drawn (the bench extra)."""

from __future__ import annotations

from typing import Any

from bench.common import DOCS
from bench.report.format import Result

PLOTS = DOCS / "bench"


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, name: str) -> str:
    PLOTS.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(PLOTS / name, dpi=110)
    _plt().close(fig)
    return f"bench/{name}"


def quality(dataset: str, ds: Result) -> str:
    from matplotlib.patches import Rectangle

    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    styles = {
        "hermes": ("Hermes Cache", "tab:blue", "-", 1.8),
        "redisvl": ("RedisVL SemanticCache", "tab:red", "-", 4.5),
        "gptcache": ("GPTCache", "tab:orange", "--", 1.5),
    }
    for ax, xmax in zip(axes, (1.0, 0.10), strict=True):
        ax.add_patch(
            Rectangle(
                (0, 0.85), 0.02, 0.17, color="tab:green", alpha=0.15, label="target: ≥85% served, ≤2% wrong"
            )
        )
        for key, (label, color, ls, lw) in styles.items():
            s = ds.get(key) or {}
            curve = s.get("curve")
            if curve:
                pts = sorted(curve, key=lambda p: p["threshold"])
                # RedisVL and GPTCache, given one embedder, both threshold the cosine of the nearest entry:
                # their curves coincide, so RedisVL is drawn wide and GPTCache dashed on top of it.
                ax.plot(
                    [p["wrong"] for p in pts],
                    [p["served"] for p in pts],
                    ls,
                    color=color,
                    linewidth=lw,
                    alpha=0.5 if key == "redisvl" else 0.9,
                    label=f"{label}, threshold swept",
                )
            for point, marker, size, what in (("default", "o", 9, "default"),
                                              ("fitted", "s", 7, "fitted on the tune half")):  # fmt: skip
                p = s.get(point)
                if p:
                    ax.plot(p["wrong"], p["served"], marker, color=color, markersize=size,
                            markeredgecolor="black", label=f"{label} {what}")  # fmt: skip
        ax.set_xlabel("traps answered wrongly (share)")
        ax.set_ylabel("should-hit pairs served (share)")
        ax.set_xlim(-0.005 * xmax * 4, xmax * 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{ds.get('title', dataset)}, holdout half: served vs wrong as the threshold sweeps")
    axes[0].set_title("every threshold")
    axes[1].set_title("the same, wrong ≤ 10%")
    axes[1].legend(fontsize=7, loc="lower right")
    return _save(fig, f"quality-{dataset}.png")


def lookup(points: list[Result], names: dict[str, str]) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = {"redis": "tab:blue", "memory": "tab:green", "redisvl": "tab:red"}
    xs = [p["entries"] for p in points]
    for key, label in names.items():
        for q, style, alpha in (("p50", "o-", None), ("p99", "o--", 0.6)):
            ax.plot(xs, [p["latency"][key][f"{q}_ms"] for p in points], style, color=colors[key], alpha=alpha,
                    label=f"{label} {q}")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("entries in the partition")
    ax.set_ylabel("lookup latency (ms)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    ax.set_title("Lookup latency vs entries (vector given)")
    return _save(fig, "lookup.png")


def sidecar(res: Result) -> str | None:
    keys = [k for k in ("exact_hit", "semantic_hit", "miss_ttft_sidecar", "miss_ttft_direct") if res.get(k)]
    if not keys:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    labels = [k.replace("_", "\n") for k in keys]
    p50 = [res[k]["p50_ms"] for k in keys]
    ax.bar(labels, p50, color="tab:blue", label="p50")
    tail = [res[k]["p99_ms"] - res[k]["p50_ms"] for k in keys]
    ax.bar(labels, tail, bottom=p50, color="tab:blue", alpha=0.35, label="p99")
    ax.set_ylabel("ms")
    ax.set_title("Through the sidecar, real vLLM on the CPU")
    ax.legend()
    return _save(fig, "sidecar.png")


def prefix(res: Result) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4))
    x = 0
    for ph in res["phases"]:
        ys = [s * 1000 for s in ph["samples_s"]]
        ax.plot(range(x, x + len(ys)), ys, "o-", label=ph["label"], markersize=4)
        x += len(ys)
    ax.set_xlabel("request (grouped by phase, in the order each phase sent them)")
    ax.set_ylabel("TTFT (ms)")
    ax.set_title("Prefix cache through the sidecar (long system prompt)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _save(fig, "prefix.png")


def switch(res: Result) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot(res["ping_trace_s"], res["ping_trace_ms"], ",", color="tab:blue")
    ax.axvline(0, color="tab:red", label="generation switch written")
    if res.get("deletion_completed", True):
        ax.axvline(res["delete_seconds"], color="tab:green", label="old entries gone")
    ax.axhline(10, color="gray", linestyle="--", label="10 ms")
    ax.set_yscale("log")
    ax.set_xlabel("seconds since the switch")
    ax.set_ylabel("PING round trip (ms)")
    ax.set_title(f"Redis responsiveness while {res['entries_before']:,} entries are deleted")
    ax.legend(fontsize=7)
    return _save(fig, "switch.png")


SOAK_COLORS = {
    "hit-exact": "tab:green",
    "hit-semantic": "tab:blue",
    "miss": "tab:orange",
    "bypass": "tab:gray",
}


def soak(res: Result) -> str | None:
    samples = res.get("samples") or []
    if not samples:
        return None
    plt = _plt()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
    ts = [s["t"] for s in samples]
    top.plot(ts, [s["rss_kib"] / 1024 for s in samples], "-", color="tab:blue", label="sidecar RSS (MiB)")
    top.set_ylabel("RSS (MiB)")
    top.set_ylim(0, 1.3 * max(s["rss_kib"] / 1024 for s in samples))
    fds = top.twinx()
    fds.plot(ts, [s["fds"] for s in samples], "-", color="tab:orange", label="open fds")
    fds.set_ylabel("open file descriptors")
    fds.set_ylim(0, 1.3 * max(s["fds"] for s in samples))
    bottom.set_yscale("log")
    for ax in (top, bottom):
        ax.axvline(res["warmup_share"] * res["seconds"], color="gray", linestyle=":", label="end of warm-up")
        ax.axvline(res["switch_at_s"], color="tab:red", linestyle="--", label="generation switch")
        ax.grid(alpha=0.3)
    for decision, color in SOAK_COLORS.items():
        pts = [(s["t"], s["decisions"][decision]) for s in samples if decision in s["decisions"]]
        if not pts:
            continue
        bottom.plot(
            [t for t, _ in pts], [d["p50_ms"] for _, d in pts], "-", color=color, label=f"{decision} p50"
        )
        bottom.plot([t for t, _ in pts], [d["p99_ms"] for _, d in pts], "--", color=color, alpha=0.6,
                    label=f"{decision} p99")  # fmt: skip
    bottom.set_xlabel("seconds since the start of the run")
    bottom.set_ylabel("latency in the window (ms)")
    handles = top.get_legend_handles_labels()[0] + fds.get_legend_handles_labels()[0]
    top.legend(handles=handles, fontsize=7, loc="lower right", ncol=2)
    bottom.legend(fontsize=7, ncol=2, loc="upper right")
    span = f"{res['seconds'] / 60:.0f} min" if res["seconds"] >= 600 else f"{res['seconds']:.0f} s"
    top.set_title(f"Soak: {res['concurrency']} clients for {span} through the sidecar (Redis, vLLM)")
    return _save(fig, "soak.png")
