"""Prefix-aware routing against round-robin: two real vLLM replicas (CPU build, tiny model) of a routed
policy on the local cluster's real node, one multi-tenant agent workload, both arms side by side in one
run (docs/routing.md).

No gateway runs here, so the prefix-aware arm does what a gateway does with the Endpoint Picker's
answer: it asks the EPP over Envoy's ext_proc gRPC which endpoint to use, then sends the request
straight to that pod. The round-robin arm sends each request to the next pod in turn, as a plain
ClusterIP Service spreads them. The rig (GIE CRD, images on the node, the two pods, the local EPP)
is the one tests/e2e/test_routing_extproc.py uses (bench/extproc.py).

Workload: TENANTS tenants, each with its own system prompt of about PROMPT_CHARS characters (well
above the EPP's prefix block of blockSize x 4 characters), CONVERSATIONS conversations per tenant and
TURNS turns per conversation; every turn resends the whole conversation so far. Each arm gets prompts
of its own (a fresh first line per arm and run), so neither arm reuses the other's blocks; the two
arms' requests alternate step by step, so both see the same machine at the same time. Requests carry
``cache_salt`` = the tenant (what the router hashes; the sidecar sets vLLM's own salt). vLLM's
``vllm:prefix_cache_hits_total`` / ``..._queries_total`` (tokens) are read per pod through the
sidecar's ``/upstream/metrics`` around each request; TTFT is the first streamed token.

    python -m bench.routing                 (the local cluster up: scripts/cluster-up.sh)

or as the ``routing`` measurement of ``bench.run`` (``scripts/bench.sh full routing``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.common import OUT, ROOT, Context, Skip, latency_summary, median, write_json
from bench.extproc import Picker, metric_sum, routed_pool

MODEL = "tiny-llama"  # the served name of the routed CPU policy (examples/hermes-cpu.yaml)
TENANTS, CONVERSATIONS, TURNS = 4, 3, 4
PROMPT_CHARS = 2000
MAX_TOKENS = 16
HITS, QUERIES = "vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total"
ROUND_ROBIN, EPP = "round-robin", "EPP (prefix-aware)"
ARMS = (ROUND_ROBIN, EPP)
E2E = ROOT / ".e2e"
CRD_RELEASE, CRD_RELEASE_NS = "hermes-cache", "hermes-system"  # tests/e2e/conftest.py's crd_release


# ---------------------------------------------------------------------------------------------- pure parts


@dataclass(frozen=True)
class Step:
    """One request of the workload: an arm sends turn ``turn`` of a tenant's conversation."""

    arm: str
    tenant: int
    conversation: int
    turn: int


def schedule(
    tenants: int, conversations: int, turns: int, arms: Sequence[str] = ARMS, seed: int | None = 17
) -> list[Step]:
    """Every arm's requests, interleaved: turn by turn, conversations progress side by side (an agent
    fleet), in an order shuffled per turn (``seed``; None keeps tenant-major order), and at each
    (turn, tenant, conversation) every arm sends once, the arm going first taking turns so neither is
    always second on a warm machine.

    The shuffle matters for round-robin: in a fixed order of an even number of conversations, the
    n-th pod in turn would be the same pod for a conversation on every turn, a stickiness a Service
    does not have."""
    rng = random.Random(seed)
    steps: list[Step] = []
    k = 0
    for turn in range(turns):
        order = [(t, c) for c in range(conversations) for t in range(tenants)]
        if seed is not None:
            rng.shuffle(order)
        for tenant, conversation in order:
            first = k % len(arms)
            steps += [Step(arm, tenant, conversation, turn) for arm in [*arms[first:], *arms[:first]]]
            k += 1
    return steps


class RoundRobin:
    """The next endpoint in turn, as a Service's even spread does (kube-proxy's iptables mode is random,
    IPVS round-robin; over a run both spread requests evenly regardless of their content)."""

    def __init__(self, endpoints: Sequence[str]) -> None:
        if not endpoints:
            raise ValueError("round-robin needs at least one endpoint; got none")
        self._endpoints = list(endpoints)
        self._next = 0

    def pick(self) -> str:
        endpoint = self._endpoints[self._next % len(self._endpoints)]
        self._next += 1
        return endpoint


def _latency(seconds: Sequence[float]) -> dict[str, float]:
    nan = float("nan")
    if not seconds:
        return {"n": 0, "p50_ms": nan, "p90_ms": nan, "p99_ms": nan, "mean_ms": nan, "max_ms": nan}
    return latency_summary(seconds)


def summarise(samples: Sequence[dict[str, Any]], arms: Sequence[str] = ARMS) -> list[dict[str, Any]]:
    """Per arm: TTFT p50/p99, prefix-cache hits/queries (tokens) and hit rate, overall and per pod.

    A sample is ``{"arm", "pod", "ttft_s", "hits", "queries", "turn"}`` (counter deltas of the pod
    that served it)."""
    rows = []
    for arm in arms:
        mine = [s for s in samples if s["arm"] == arm]
        pods: dict[str, dict[str, Any]] = {}
        for s in mine:
            pod = pods.setdefault(s["pod"], {"pod": s["pod"], "requests": 0, "hits": 0, "queries": 0})
            pod["requests"] += 1
            pod["hits"] += s["hits"]
            pod["queries"] += s["queries"]
        for pod in pods.values():
            pod["hit_rate"] = pod["hits"] / pod["queries"] if pod["queries"] else 0.0
        hits, queries = sum(s["hits"] for s in mine), sum(s["queries"] for s in mine)
        rows.append(
            {
                "arm": arm,
                "requests": len(mine),
                "ttft": _latency([s["ttft_s"] for s in mine]),
                "ttft_later_turns": _latency([s["ttft_s"] for s in mine if s["turn"] > 0]),
                "hits": hits,
                "queries": queries,
                "hit_rate": hits / queries if queries else 0.0,
                "pods": [pods[k] for k in sorted(pods)],
            }
        )
    return rows


def paired_difference_ms(samples: Sequence[dict[str, Any]], a: str = ROUND_ROBIN, b: str = EPP) -> float:
    """The median over workload steps of arm a's TTFT minus arm b's, in ms (same step, back to back)."""
    by_step: dict[tuple[int, int, int], dict[str, float]] = {}
    for s in samples:
        by_step.setdefault((s["tenant"], s["conversation"], s["turn"]), {})[s["arm"]] = s["ttft_s"]
    diffs = [(v[a] - v[b]) * 1000 for v in by_step.values() if a in v and b in v]
    return median(diffs) if diffs else float("nan")


# ---------------------------------------------------------------------------------------------- the run


@dataclass
class Cluster:
    """The local cluster through the project's kubectl (what bench.extproc.Kube asks for)."""

    kubeconfig: Path

    def _tool(self, name: str) -> str:
        local = E2E / "bin" / name
        return str(local) if local.exists() else name

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        cmd = [self._tool("kubectl"), "--kubeconfig", str(self.kubeconfig), *args]
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise RuntimeError(f"`{' '.join(cmd)}` exited {proc.returncode}: {proc.stderr[-2000:]}")
        return proc

    def apply(self, manifest: str, namespace: str | None = None) -> None:
        self.kubectl(*(["-n", namespace] if namespace else []), "apply", "-f", "-", input=manifest)

    def chart_without_operator(self) -> None:
        """The chart's CRD, ServiceAccount and RBAC (the e2e tier's crd_release)."""
        cmd = [self._tool("helm"), "--kubeconfig", str(self.kubeconfig), "upgrade", "--install",
               CRD_RELEASE, str(ROOT / "charts/hermes-cache"), "-n", CRD_RELEASE_NS, "--create-namespace",
               "--set", "operator.enabled=false", "--wait", "--timeout", "2m"]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"helm exited {proc.returncode}: {proc.stderr[-2000:]}")


def _counters(client: httpx.Client, endpoint: str) -> tuple[float, float]:
    text = client.get(f"http://{endpoint}/upstream/metrics").text
    return metric_sum(text, HITS), metric_sum(text, QUERIES)


def _stream(client: httpx.Client, endpoint: str, body: dict[str, Any], tenant: str) -> tuple[float, str]:
    """Seconds to the first streamed token, and the whole answer (the next turn's history)."""
    t0 = time.perf_counter()
    first: float | None = None
    parts = []
    headers = {"x-tenant-id": tenant}
    with client.stream("POST", f"http://{endpoint}/v1/chat/completions", json=body, headers=headers) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data:") or line.strip() == "data: [DONE]":
                continue
            try:
                delta = json.loads(line[5:])["choices"][0].get("delta", {})
            except (ValueError, KeyError, IndexError):
                continue
            if delta.get("content"):
                first = first or time.perf_counter()
                parts.append(delta["content"])
    return (first or time.perf_counter()) - t0, "".join(parts)


def _system_prompt(rng: random.Random, arm: str, tenant: int) -> str:
    from bench.corpus import policy_text

    head = f"Deployment {rng.randrange(10**12)} for tenant {tenant} ({arm}).\n"
    return policy_text(PROMPT_CHARS, head=head)


def measure(picker: Picker, tenants: int, conversations: int, turns: int) -> dict[str, Any]:
    endpoints = list(picker.endpoints)
    if len(endpoints) < 2:
        raise RuntimeError(f"the routed policy has {len(endpoints)} pods; the comparison needs 2 or more")
    rng = random.Random()  # unseeded: prompts new to these pods even when a run is repeated
    systems = {(arm, t): _system_prompt(rng, arm, t) for arm in ARMS for t in range(tenants)}
    history: dict[tuple[str, int, int], list[dict[str, str]]] = {}
    rr = RoundRobin(endpoints)
    samples: list[dict[str, Any]] = []
    load = os.getloadavg()[0]
    with httpx.Client(timeout=300) as client:
        for endpoint in endpoints:  # one short request per pod first: nothing cold in the numbers
            _stream(client, endpoint, _body("warm-up", "Be brief.", [], "warm-up"), "warm-up")
        for step in schedule(tenants, conversations, turns):
            tenant = f"tenant-{step.tenant}"
            messages = history.setdefault((step.arm, step.tenant, step.conversation), [])
            question = (
                f"Conversation {step.conversation}, step {step.turn}: ticket {rng.randrange(10**9)}, "
                "what should the agent do next?"
            )
            body = _body(question, systems[(step.arm, step.tenant)], messages, tenant)
            endpoint = picker.pick(body, tenant=tenant) if step.arm == EPP else rr.pick()
            hits0, queries0 = _counters(client, endpoint)
            ttft, answer = _stream(client, endpoint, body, tenant)
            time.sleep(0.2)  # vLLM publishes a request's counters just after it ends
            hits1, queries1 = _counters(client, endpoint)
            messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
            samples.append(
                {"arm": step.arm, "pod": endpoint, "tenant": step.tenant, "conversation": step.conversation,
                 "turn": step.turn, "ttft_s": ttft, "hits": int(hits1 - hits0),
                 "queries": int(queries1 - queries0)}
            )  # fmt: skip
    rows = summarise(samples)
    return {
        "model": MODEL,
        "load_average_1m_at_start": load,
        "pods": endpoints,
        "tenants": tenants,
        "conversations": conversations,
        "turns": turns,
        "rows": rows,
        "samples": samples,
        "paired_rr_minus_epp_ms_p50": paired_difference_ms(samples),
        "setup": f"{tenants} tenants x {conversations} conversations x {turns} turns per arm, each tenant "
        f"with its own system prompt of {PROMPT_CHARS:,} characters (support policy text, a fresh first line "
        f"per arm), {MAX_TOKENS} streamed tokens per answer, every turn resending the conversation so far; "
        f"two replicas of `{MODEL}` (vLLM CPU build, 32-token blocks) behind their sidecars on the local "
        "cluster's real node; within a turn the conversations arrive in a shuffled order (the same for both "
        "arms), and the two arms alternate request by request.",
    }


def _body(question: str, system: str, history: list[dict[str, str]], salt: str) -> dict[str, Any]:
    return {
        "model": MODEL,
        "messages": [{"role": "system", "content": system}, *history, {"role": "user", "content": question}],
        "max_tokens": MAX_TOKENS,
        "temperature": 0,
        "stream": True,
        "cache_salt": salt,  # what the router hashes (docs/routing.md); the sidecar sets vLLM's own
    }


def _kubeconfig(ctx_kubeconfig: Path | None) -> Path:
    for path in (ctx_kubeconfig, E2E / "kubeconfig"):
        if path is not None and path.exists():
            return path
    raise Skip("no local cluster: start it with `bash scripts/cluster-up.sh` (it brings up the real node)")


def run_on_cluster(kubeconfig: Path, tenants: int, conversations: int, turns: int) -> dict[str, Any]:
    cluster = Cluster(kubeconfig)
    cluster.chart_without_operator()
    with (
        tempfile.TemporaryDirectory(prefix="hermes-bench-routing-") as tmp,
        routed_pool(cluster, Path(tmp)) as picker,
    ):
        return measure(picker, tenants, conversations, turns)


def run(ctx: Context) -> dict[str, Any]:
    return run_on_cluster(_kubeconfig(ctx.kubeconfig), TENANTS, CONVERSATIONS, TURNS)


# ---------------------------------------------------------------------------------------------- the report


def table(result: dict[str, Any]) -> str:
    """The arms as the Markdown table of docs/benchmarks.md."""
    lines = [
        "| routing | requests | TTFT p50 | TTFT p99 | TTFT p50, turns 2+ | vLLM prefix-cache hits / queries "
        "(tokens) | hit rate | per pod: requests, hit rate |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        t, later = row["ttft"], row["ttft_later_turns"]
        pods = "; ".join(f"{p['pod']}: {p['requests']}, {p['hit_rate']:.0%}" for p in row["pods"])
        lines.append(
            f"| {row['arm']} | {row['requests']} | {t['p50_ms']:.0f} ms | {t['p99_ms']:.0f} ms | "
            f"{later['p50_ms']:.0f} ms | {row['hits']:,} / {row['queries']:,} | {row['hit_rate']:.0%} | "
            f"{pods} |"
        )
    return "\n".join(lines)


def plot(result: dict[str, Any]) -> str | None:
    """docs/bench/routing.png: hit rate and TTFT per arm; None without matplotlib (the bench extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    from bench.report.plots import PLOTS

    rows = result["rows"]
    names = [r["arm"] for r in rows]
    colors = ["tab:gray", "tab:blue"][: len(rows)]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.bar(names, [100 * r["hit_rate"] for r in rows], color=colors)
    left.set_ylabel("vLLM prefix-cache hit rate (% of prompt tokens)")
    left.set_ylim(0, 100)
    x = range(len(rows))
    right.bar([i - 0.2 for i in x], [r["ttft"]["p50_ms"] for r in rows], 0.4, color=colors, label="p50")
    right.bar([i + 0.2 for i in x], [r["ttft"]["p99_ms"] for r in rows], 0.4, color=colors, alpha=0.5,
              hatch="//", label="p99")  # fmt: skip
    right.set_xticks(list(x), names)
    right.set_ylabel("time to first token (ms)")
    right.legend()
    for ax in (left, right):
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Two vLLM replicas: round-robin vs the Endpoint Picker's choices, one run")
    PLOTS.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(PLOTS / "routing.png", dpi=110)
    plt.close(fig)
    return "bench/routing.png"


def _fewer(rr: dict[str, Any], epp: dict[str, Any]) -> str:
    """How much less prefill the EPP's arm did, as a phrase."""
    a, b = rr["queries"] - rr["hits"], epp["queries"] - epp["hits"]
    return f"{1 - b / a:.0%} less prefill" if a > 0 else "no prefill either way"


def section(r: dict[str, Any]) -> list[str]:
    """The docs/benchmarks.md section (bench/report/sections.py)."""
    res = r["result"]
    rr, epp = (next(row for row in res["rows"] if row["arm"] == arm) for arm in ARMS)
    lines = [
        "",
        f"{res['setup']} The prefix-aware arm asks the Endpoint Picker over ext_proc gRPC which pod to use "
        "(as a gateway would) and sends the request straight there; the round-robin arm takes the pods in "
        "turn, as a plain Service spreads requests. vLLM's own prefix-cache counters are read on the pod "
        "that served each request.",
        "",
        table(res),
        "",
        f"Prefix-cache hit rate {rr['hit_rate']:.0%} with round-robin, {epp['hit_rate']:.0%} with the EPP's "
        f"choices: the pods prefilled {rr['queries'] - rr['hits']:,} prompt tokens for round-robin against "
        f"{epp['queries'] - epp['hits']:,} for the EPP ({_fewer(rr, epp)}). "
        "For the same workload step, round-robin's TTFT minus the EPP's was "
        f"{res['paired_rr_minus_epp_ms_p50']:.0f} ms at the median. Requests were sent one at a time, so "
        "queue length never decided; the counters show where prefixes were reused. Times on a shared "
        "2-core machine with a tiny model are noisy: prefill is cheap here, so the hit rate is the "
        "evidence; with a larger model, where prefill costs more, the TTFT gap should widen (not measured "
        "here).",
    ]
    image = plot(res)
    return lines + (["", f"![prefix-cache hit rate and TTFT per routing arm]({image})"] if image else [])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.routing", description=__doc__.split("\n\n")[0])
    p.add_argument("--kubeconfig", type=Path, default=None, help="default: .e2e/kubeconfig")
    p.add_argument("--tenants", type=int, default=TENANTS)
    p.add_argument("--conversations", type=int, default=CONVERSATIONS)
    p.add_argument("--turns", type=int, default=TURNS)
    args = p.parse_args(argv)
    for name in ("tenants", "conversations", "turns"):
        if getattr(args, name) < 1:
            p.error(f"--{name} {getattr(args, name)}: must be 1 or more")
    result = run_on_cluster(_kubeconfig(args.kubeconfig), args.tenants, args.conversations, args.turns)
    write_json(OUT / "routing.json", {"measurement": "routing", "status": "ok", "result": result})
    print(table(result))
    print(f"round-robin minus EPP TTFT per step (p50): {result['paired_rr_minus_epp_ms_p50']:.1f} ms",
          file=sys.stderr)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
