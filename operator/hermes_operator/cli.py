"""``hermes-cache``: ``plan`` renders a policy file with no cluster; ``run`` runs the operator."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from .capacity import Capacity, GiB, plan_capacity, replica_group
from .fingerprint import producer_fingerprint
from .render import (
    DEFAULT_SIDECAR_IMAGE_REF,
    gpus_requested,
    group_vllm_args,
    model_path,
    render_all,
    served_name,
    vllm_args,
)
from .routing import routing_summary, routing_warning
from .spec import Policy, SpecError, parse_policy, redact


def _load(path: str) -> Any:
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    if len(docs) != 1:
        raise SpecError(
            [f"(file {path}): must hold exactly one HermesCachePolicy, found {len(docs)} documents"]
        )
    return docs[0]


def default_sidecar_image() -> str:
    """The operator's own image, given to it by the chart, else the tag `make image` also sets."""
    return os.environ.get("HERMES_SIDECAR_IMAGE") or DEFAULT_SIDECAR_IMAGE_REF


def plan_document(
    doc: Any, kv_budget_bytes: int | None = None, sidecar_image: str | None = None
) -> dict[str, Any]:
    """What the operator would create for one policy document: the JSON contract of ``plan``."""
    policy = parse_policy(doc)
    capacity = plan_capacity(policy.spec, kv_budget_bytes)
    resources = render_all(policy, capacity, sidecar_image or default_sidecar_image())
    return {"capacity": capacity.status(), "resources": resources}


def _table(policy: Policy, capacity: Capacity, resources: list[dict[str, Any]]) -> str:
    s = policy.spec

    def gib(n: int) -> str:
        return f"{n / GiB:,.2f} GiB"

    per = "per GPU" if s.device == "gpu" else "per replica"
    rows = [
        ("policy", f"{policy.namespace}/{policy.name}"),
        ("model", f"{s.model.name} (served as {served_name(policy)})"),
        *([("GPUs per replica",
             f"{capacity.gpusPerReplica or s.engine.tensorParallelSize} x {s.gpu.resource} "
             f"({s.gpu.memoryGiB:g} GiB)"),
           ("group", f"{capacity.nodesPerReplica} node(s) x {capacity.gpusPerNode} GPUs, "
                     f"{capacity.pipelineStages} pipeline stage(s) of {s.engine.tensorParallelSize} GPUs"
                     + (" (a LeaderWorkerSet group)" if capacity.nodesPerReplica > 1 else ""))]
          if s.device == "gpu" else
          [("CPU per replica", f"{s.cpu.cores:g} cores, {s.cpu.memoryGiB:g} GiB memory limit, "
                               f"{s.cpu.kvCacheGiB} GiB KV cache (no GPU)")]),
        *([("model volume", f"PVC {st.claimName}, vLLM loads {model_path(policy)}")]
          if (st := s.model.storage) is not None else []),
        ("replicas", f"{s.replicas} ({gpus_requested(policy, capacity)} GPUs)"
         + (f", autoscaled {s.autoscaling.minReplicas}-{s.autoscaling.maxReplicas} on {s.autoscaling.metric}"
            if s.autoscaling.enabled else "")),
        ("fits", f"{'yes' if capacity.fits else 'NO'} ({capacity.reason})"),
        (f"budget {per}", gib(capacity.budgetBytesPerGPU)),
        (f"weights {per}", gib(capacity.weightsBytesPerGPU)),
        (f"overhead {per}", gib(capacity.overheadBytesPerGPU)),
        (f"KV cache {per}", gib(capacity.kvCacheBytesPerGPU)),
        ("KV bytes per token", f"{capacity.kvBytesPerToken:,} ({capacity.kvBytesPerTokenPerGPU:,} per GPU)"),
        ("KV tokens per replica", f"{capacity.kvCacheTokensPerReplica:,}"),
        (f"sequences of {s.engine.maxModelLen:,}", f"{capacity.maxConcurrentSequencesAtMaxLen:g} at once"),
        ("semantic cache", ("off" if not s.semanticCache.enabled else
                            f"{'redis' if s.semanticCache.redis else 'in-pod memory'}, threshold "
                            f"{s.semanticCache.similarityThreshold:g}, generation {s.cacheVersion}")),
        *([("verifier", f"{v.kind}: {v.model or served_name(policy)} at "
                        f"{redact(v.url) if v.url else 'vLLM in the pod (loopback)'}: candidates from "
                        f"cosine {v.minSimilarity:g} (scope "
                        f"{v.scope or ('uncertain' if v.kind == 'served-model' else 'all')}), served at "
                        f"score >= {v.minScore:g}, {v.timeoutSeconds:g} s timeout, on error {v.onError}")]
          if (v := s.semanticCache.verifier) is not None and s.semanticCache.enabled else []),
        *([("decay", f"{d.mode}: " + (f"half-life {d.halfLifeSeconds} s" if d.mode == "halfLife" else
                                     f"linear over {d.rampSeconds} s")
                     + f", required similarity rises to {d.ceiling:g}"
                     + (", exact hits too" if d.exact else ", exact hits unaffected"))]
          if (d := s.semanticCache.decay) is not None and d.mode != "off" and s.semanticCache.enabled
          else []),
        *([("tool plans", f"on: a live-data question's tool calls reused "
                          f"{'exactly or semantically' if t.semantic else 'exactly'}"
                          + (f" (plans at similarity {t.similarityThreshold:g})"
                             if t.similarityThreshold is not None else "")
                          + "; answers from tool results only for identical results")]
          if (t := s.semanticCache.toolPlans) is not None and t.enabled and s.semanticCache.enabled else []),
        ("producer", f"{producer_fingerprint(s)} (partitions entries and cache_salt: model, image, "
                     "output-changing engine settings)"),
        ("trust groups", "; ".join(f"{g.name}: {', '.join(g.tenants)} share a cache_salt"
                                   for g in s.tenancy.trustGroups) or "none (every tenant has its own salt)"),
        *([("experiment", f"variants {', '.join(s.experiment.variants)}"
                          + (f" from header {s.experiment.header}" if s.experiment.header else "")
                          + (f", {len(s.experiment.assignments)} tenants assigned"
                             if s.experiment.assignments else ""))]
          if s.experiment.variants else []),
        ("routing", routing_summary(policy)),
        *([("warning", warning)] if (warning := routing_warning(policy)) else []),
        ("resources", ", ".join(f"{r['kind']}/{r['metadata']['name']}" for r in resources) or "none"),
    ]  # fmt: skip
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {v}" for k, v in rows]
    if not capacity.fits:
        lines.append(f"{'why':<{width}}  {capacity.message}")
    else:
        group = replica_group(policy.spec)
        if group.multi_node:
            for role in ("leader", "worker"):
                lines.append(
                    f"{role + ' args':<{width}}  vllm serve {' '.join(group_vllm_args(policy, group, role))}"
                )
        else:
            lines.append(f"{'vllm args':<{width}}  {' '.join(vllm_args(policy))}")
    return "\n".join(lines)


def cmd_plan(args: argparse.Namespace) -> int:
    budget = int(args.kv_cache_space_gib * GiB) if args.kv_cache_space_gib is not None else None
    try:
        doc = _load(args.file)
        out = plan_document(doc, budget, args.sidecar_image)
    except (OSError, yaml.YAMLError) as exc:
        print(f"hermes-cache plan: cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    except SpecError as exc:
        print(f"hermes-cache plan: {args.file}: {exc}", file=sys.stderr)
        return 1
    if args.output == "json":
        print(json.dumps(out, indent=2))
    elif args.output == "yaml":
        print(yaml.safe_dump(out, sort_keys=False), end="")
    else:
        policy = parse_policy(doc)
        print(_table(policy, plan_capacity(policy.spec, budget), out["resources"]))
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def cmd_run(args: argparse.Namespace) -> int:
    import asyncio

    import kopf
    from prometheus_client import start_http_server

    from .env import Env
    from .generations import RedisGenerationStore
    from .kube import KubeClient
    from .metrics import OperatorMetrics
    from .wiring import register

    # kopf's formatter prefixes object messages with [namespace/name]; json suits log collectors.
    kopf.configure(verbose=False, log_format=kopf.LogFormat[args.log_format.upper()], log_prefix=True)
    logging.getLogger().setLevel(logging.INFO)
    if args.standalone and args.peering:
        print("hermes-cache run: --standalone and --peering exclude each other", file=sys.stderr)
        return 2
    if not args.all_namespaces and not args.namespace:
        print("hermes-cache run: give --namespace NS (repeatable) or --all-namespaces", file=sys.stderr)
        return 2
    metrics = OperatorMetrics()
    stores: dict[str, RedisGenerationStore] = {}

    def store_for(url: str) -> RedisGenerationStore:
        if url not in stores:
            stores[url] = RedisGenerationStore(url)
        return stores[url]

    env = Env(kube=KubeClient(), stores=store_for, metrics=metrics, sidecar_image=args.sidecar_image)
    registry = kopf.OperatorRegistry()
    register(env, registry, args.drift_interval, args.deployment_debounce, args.workers)

    # A registry of our own does not get kopf's default login handlers: the same KUBECONFIG (or
    # in-cluster ServiceAccount) the kubernetes client uses, so kopf and KubeClient act as one identity.
    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> Any:
        return kopf.login_via_client(**kwargs)

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        # kopf's own bookkeeping goes into annotations under our prefix (status stays ours and
        # schema-checked); only warnings become Events, so a restart posts nothing.
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="hermes-cache.dev")
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix="hermes-cache.dev", key="last-handled-configuration"
        )
        settings.posting.level = logging.WARNING
        # kopf starts one worker per object with pending events, without limit, and keeps it for
        # idle_timeout (5 s) after its last event. A burst of 1,000 new policies (and then their
        # Deployments' status events) had ~1,000 workers alive at once; the memory they peaked at
        # stays with the process: 239 MB at 1,000 policies. With 50 at a time, each let go 1 s after
        # its last event, the peak was 158 MB and all were Ready as fast (docs/benchmarks.md).
        # Objects beyond the limit wait in the watch stream.
        settings.queueing.worker_limit = args.concurrent_objects
        settings.queueing.idle_timeout = 1.0
        if args.peering:
            settings.peering.name = args.peering

    if args.metrics_port:
        start_http_server(args.metrics_port, addr=args.metrics_addr, registry=metrics.registry)
    asyncio.run(
        kopf.operator(
            registry=registry,
            standalone=not args.peering,
            clusterwide=args.all_namespaces,
            namespaces=args.namespace or (),
            liveness_endpoint=args.liveness or None,
        )
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hermes-cache", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    plan = sub.add_parser("plan", help="render a HermesCachePolicy file without a cluster")
    plan.add_argument("file", help="policy YAML file, or - for stdin")
    plan.add_argument("--output", "-o", choices=("json", "yaml", "table"), default="table")
    plan.add_argument(
        "--kv-cache-space-gib",
        type=float,
        default=None,
        help="plan with this KV-cache budget instead of the GPU estimate "
        "(vLLM on the CPU: VLLM_CPU_KVCACHE_SPACE)",
    )
    sidecar_help = (
        "image of the sidecar container when a policy's spec.sidecar.image is empty "
        "(default: $HERMES_SIDECAR_IMAGE, which the chart sets to the operator's image, "
        f"else {DEFAULT_SIDECAR_IMAGE_REF})"
    )
    plan.add_argument("--sidecar-image", default=None, help=sidecar_help)
    plan.set_defaults(func=cmd_plan)

    run = sub.add_parser("run", help="run the operator (honours KUBECONFIG; in a pod, its ServiceAccount)")
    run.add_argument(
        "--namespace", "-n", action="append", default=[], help="watch this namespace (repeatable)"
    )
    run.add_argument("--all-namespaces", "-A", action="store_true", help="watch every namespace")
    run.add_argument(
        "--standalone",
        action="store_true",
        help="run without peering (the default unless --peering is given); run one replica",
    )
    run.add_argument(
        "--peering",
        default="",
        help="kopf peering object name for several replicas (needs kopf's peering CRDs); default standalone",
    )
    run.add_argument("--metrics-port", type=int, default=9090, help="Prometheus metrics port (0: off)")
    run.add_argument("--metrics-addr", default="0.0.0.0")
    run.add_argument(
        "--liveness", default="http://0.0.0.0:8081/healthz", help="kopf liveness endpoint ('' off)"
    )
    run.add_argument(
        "--drift-interval", type=float, default=60.0, help="seconds between drift/stats reconciles"
    )
    run.add_argument(
        "--deployment-debounce",
        type=float,
        default=1.0,
        help="seconds after the last change to a child Deployment before its policy is reconciled",
    )
    run.add_argument(
        "--workers",
        type=_positive_int,
        default=8,
        help="threads for reconciles: every one (policy changes, child Deployments, drift) runs on them",
    )
    run.add_argument(
        "--concurrent-objects",
        type=_positive_int,
        default=50,
        help="policies (and, separately, Deployments) handled at once; more wait in the watch stream",
    )
    run.add_argument("--log-format", choices=("full", "plain", "json"), default="full")
    run.add_argument("--sidecar-image", default=default_sidecar_image(), help=sidecar_help)
    run.set_defaults(func=cmd_run)

    args = parser.parse_args(argv)
    rc: int = args.func(args)
    return rc


if __name__ == "__main__":
    sys.exit(main())
