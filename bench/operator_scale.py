"""6. Operator scale on the real control plane (kube-apiserver + etcd + controller-manager + scheduler,
kwok for the fake GPU nodes): create N policies at once and measure

- time from the first create until every policy reports Ready=True (its Deployment's pods Running
  and Ready on kwok nodes, as the operator reads them),
- apply-to-Deployment latency: create call sent -> the Deployment's ADDED event seen by a watch,
- the operator's memory: resident set size sampled every 200 ms, peak and at the end.

Each N gets a fresh namespace and a fresh `hermes-cache run --namespace NS` process, so the memory
figure is the operator's for that many policies. Fake GPU capacity comes from scripts/cluster-up.sh
(HERMES_E2E_NODES_PER_TYPE; scripts/bench.sh asks for enough nodes for the largest N).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.common import OUT, ROOT, Context, Skip, latency_summary
from bench.services import BIN

GROUP, VERSION, PLURAL = "hermes-cache.dev", "v1alpha1", "hermescachepolicies"
TARGET_READY_S = 120.0
TARGET_RSS_MB = 200.0


def _policy(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "HermesCachePolicy",
        "metadata": {"name": name},
        "spec": {
            "model": {"name": "NousResearch/Hermes-3-Llama-3.1-8B"},
            "engine": {"maxModelLen": 8192},
            "gpu": {
                "memoryGiB": 80,
                "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}],
            },
            "replicas": 1,
        },
    }


def _rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of one process in MB."""
    vals = {"VmRSS": 0.0, "VmHWM": 0.0}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key = line.split(":", 1)[0]
            if key in vals:
                vals[key] = int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return vals["VmRSS"], vals["VmHWM"]


def _other_operators() -> list[str]:
    """`hermes-cache run` processes not started here: they may reconcile the benchmark's policies too."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if "hermes-cache run" in cmd:
            found.append(f"pid {proc.name}: {cmd[:200]}")
    return found


def _kubectl(ctx: Context) -> list[str]:
    kubectl = ROOT / ".e2e" / "bin" / "kubectl"
    return [str(kubectl if kubectl.exists() else "kubectl"), "--kubeconfig", str(ctx.kubeconfig)]


def _gpus(core: Any) -> int:
    total = 0
    for node in core.list_node().items:
        alloc = (node.status.allocatable or {}).get("nvidia.com/gpu")
        total += int(alloc) if alloc else 0
    return total


def _one_size(ctx: Context, n: int, api: Any, core: Any, apps: Any, watch_mod: Any) -> dict[str, Any]:
    ns = f"hermes-bench-scale-{n}"
    kubectl = _kubectl(ctx)
    subprocess.run(
        [*kubectl, "delete", "namespace", ns, "--ignore-not-found", "--wait=true", "--timeout=300s"],
        capture_output=True,
        check=False,
    )
    subprocess.run([*kubectl, "create", "namespace", ns], capture_output=True, check=True)

    log = OUT / f"operator-{n}.log"
    env = {**os.environ, "KUBECONFIG": str(ctx.kubeconfig)}
    with log.open("wb") as logf:
        op = subprocess.Popen(
            [str(BIN / "hermes-cache"), "run", "--namespace", ns, "--metrics-port", "0", "--liveness", ""],
            stdout=logf,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    sent: dict[str, float] = {}
    deployed: dict[str, float] = {}
    ready: dict[str, float] = {}
    rss_samples: list[float] = []
    stop = threading.Event()
    lock = threading.Lock()

    def sample_rss() -> None:
        while not stop.is_set():
            rss, _ = _rss_mb(op.pid)
            if rss:
                rss_samples.append(rss)
            time.sleep(0.2)

    def watch_deployments() -> None:
        w = watch_mod.Watch()
        while not stop.is_set():
            for ev in w.stream(apps.list_namespaced_deployment, ns, timeout_seconds=5):
                name = ev["object"].metadata.name
                with lock:
                    deployed.setdefault(name, time.monotonic())
                if stop.is_set():
                    w.stop()

    def watch_policies() -> None:
        w = watch_mod.Watch()
        while not stop.is_set():
            for ev in w.stream(
                api.list_namespaced_custom_object, GROUP, VERSION, ns, PLURAL, timeout_seconds=5
            ):
                obj = ev["object"]
                conds = (obj.get("status") or {}).get("conditions") or []
                if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds):
                    with lock:
                        ready.setdefault(obj["metadata"]["name"], time.monotonic())
                if stop.is_set():
                    w.stop()

    threads = [
        threading.Thread(target=f, daemon=True) for f in (sample_rss, watch_deployments, watch_policies)
    ]
    for t in threads:
        t.start()
    # Let the operator connect and list its (empty) namespace before the clock starts.
    time.sleep(5)
    if op.poll() is not None:
        stop.set()
        raise Skip(f"`hermes-cache run` exited with {op.returncode}: {log.read_text()[-800:]}")
    rss_idle = rss_samples[-1] if rss_samples else 0.0

    names = [f"p{i:04d}" for i in range(n)]

    def create(name: str) -> None:
        t = time.monotonic()
        api.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, _policy(name))
        with lock:
            sent[name] = t

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(create, names))
    created_s = time.monotonic() - t0
    timeout = max(180.0, n * 0.6)
    while time.monotonic() - t0 < timeout and len(ready) < n:
        time.sleep(0.5)
    all_ready_s = (max(ready.values()) - t0) if len(ready) == n else None
    time.sleep(1)
    stop.set()
    rss_end, hwm = _rss_mb(op.pid)
    # Clean up while the operator still runs: it removes its finalizers as the policies go, then the
    # garbage collector removes their children with the namespace.
    subprocess.run([*kubectl, "-n", ns, "delete", PLURAL, "--all", "--wait=true", "--timeout=900s"],
                   capture_output=True, check=False)  # fmt: skip
    os.killpg(op.pid, signal.SIGTERM)
    try:
        op.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(op.pid, signal.SIGKILL)
        op.wait()
    for t in threads:
        t.join(timeout=10)
    subprocess.run([*kubectl, "delete", "namespace", ns, "--wait=true", "--timeout=600s"],
                   capture_output=True, check=False)  # fmt: skip

    apply_to_deploy = [deployed[k] - sent[k] for k in names if k in deployed and k in sent]
    apply_to_ready = [ready[k] - sent[k] for k in names if k in ready and k in sent]
    return {
        "policies": n,
        "create_seconds": created_s,
        "ready": len(ready),
        "deployments": len(deployed),
        "all_ready_seconds": all_ready_s,
        "timeout_seconds": timeout,
        "apply_to_deployment": latency_summary(apply_to_deploy) if apply_to_deploy else None,
        "apply_to_ready": latency_summary(apply_to_ready) if apply_to_ready else None,
        "rss_idle_mb": rss_idle,
        "rss_peak_mb": max([*rss_samples, hwm]) if rss_samples else hwm,
        "rss_end_mb": rss_end,
        "operator_log": os.path.relpath(log, ROOT),
    }


def _remove_crds(ctx: Context, names: set[str]) -> None:
    for name in sorted(names):
        subprocess.run([*_kubectl(ctx), "delete", name, "--wait=true", "--timeout=120s"],
                       capture_output=True, check=False)  # fmt: skip


def _cluster(ctx: Context, policies: int, installed: set[str]) -> tuple[Any, Any, Any, int]:
    """(Re)assert the control plane with enough fake GPUs for `policies` (scripts/cluster-up.sh is
    idempotent and only adds nodes; the cluster is shared with the e2e tests, which may have recreated
    it with fewer), install the CRD if it is missing (its name goes into ``installed``), and return fresh
    API clients and the GPU count."""
    from kubernetes import client, config

    per_type = -(-policies // 16) + 1  # 8 GPUs per node, two node types, one spare each
    env = {**os.environ, "HERMES_E2E_NODES_PER_TYPE": str(per_type), "HERMES_CLUSTER_CHECK": "0"}
    up = subprocess.run(["bash", str(ROOT / "scripts" / "cluster-up.sh")], env=env, capture_output=True,
                        text=True, check=False)  # fmt: skip
    if up.returncode != 0:
        raise Skip(f"scripts/cluster-up.sh failed: {up.stderr.strip()[-600:]}")
    crd_name = f"crd/{PLURAL}.{GROUP}"
    present = subprocess.run([*_kubectl(ctx), "get", crd_name], capture_output=True, check=False)
    if present.returncode != 0:
        # Installed here only when missing, and removed at the end (_remove_crds): a CRD left owned by
        # this field manager would stop the e2e tests' `helm install` from adopting it.
        crd_file = str(ROOT / "crds" / "hermescachepolicy.yaml")
        apply = [*_kubectl(ctx), "apply", "--server-side", "-f", crd_file]
        crd = subprocess.run(apply, capture_output=True, text=True, check=False)
        if crd.returncode != 0:
            raise Skip(f"cannot install the CRD: {crd.stderr.strip()[-500:]}")
        installed.add(crd_name)
    established = [
        *_kubectl(ctx),
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        crd_name,
    ]
    subprocess.run(established, capture_output=True, check=False)
    # the port changes if the cluster was recreated
    config.load_kube_config(config_file=str(ctx.kubeconfig))  # type: ignore[no-untyped-call]
    core = client.CoreV1Api()
    return client.CustomObjectsApi(), core, client.AppsV1Api(), _gpus(core)


def run(ctx: Context) -> dict[str, Any]:
    if ctx.kubeconfig is None:
        raise Skip("no control plane (HERMES_BENCH_KUBECONFIG); scripts/bench.sh runs scripts/cluster-up.sh")
    from kubernetes import watch

    sizes = []
    gpus = 0
    others = _other_operators()
    installed: set[str] = set()
    try:
        for n in ctx.sizes.operator_policies:
            api, core, apps, gpus = _cluster(ctx, n, installed)
            if gpus < n:
                skipped = f"the cluster has {gpus} fake GPUs, fewer than {n} policies need"
                sizes.append({"policies": n, "skipped": skipped})
                continue
            others = sorted(set(others) | set(_other_operators()))
            sizes.append(_one_size(ctx, n, api, core, apps, watch))
    finally:
        _remove_crds(ctx, installed)
    return {
        "other_operators": others,
        "gpus_in_cluster": gpus,
        "sizes": sizes,
        "target_ready_seconds": TARGET_READY_S,
        "target_rss_mb": TARGET_RSS_MB,
    }
