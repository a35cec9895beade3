"""Fixtures for the end-to-end tier: a real Kubernetes control plane started by `make cluster-up`.

The cluster (kube-apiserver, kube-controller-manager, kube-scheduler, etcd, kwok with fake GPU
nodes) is started by scripts/cluster-up.sh, which writes `.e2e/kubeconfig` and puts matching
`kubectl` and `helm` into `.e2e/bin/`. These fixtures only connect to it: `KUBECONFIG` when it is
set and reachable, else `.e2e/kubeconfig`. Every test under tests/e2e is marked `e2e`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
E2E_DIR = REPO_ROOT / ".e2e"
E2E_BIN = E2E_DIR / "bin"
DEFAULT_KUBECONFIG = E2E_DIR / "kubeconfig"
E2E_TESTS_DIR = Path(__file__).resolve().parent

CLUSTER_UP_HINT = "start the local cluster first: `make cluster-up` (then `make test` / `make e2e`)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test collected from tests/e2e with `e2e`."""
    for item in items:
        if E2E_TESTS_DIR in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.e2e)


def tool_path(name: str) -> str:
    """Path of a cluster tool: `.e2e/bin/<name>` (built by cluster-up), else one on PATH."""
    local = E2E_BIN / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found:
        return found
    raise RuntimeError(f"{name} not found in {E2E_BIN} or on PATH; {CLUSTER_UP_HINT}")


def _reachable(kubeconfig: Path) -> tuple[bool, str]:
    if not kubeconfig.is_file():
        return False, f"{kubeconfig} does not exist"
    try:
        kubectl = tool_path("kubectl")
    except RuntimeError as exc:
        return False, str(exc)
    try:
        proc = subprocess.run(
            [kubectl, "--kubeconfig", str(kubeconfig), "get", "--raw", "/readyz", "--request-timeout=5s"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False, f"{kubeconfig}: API server did not answer within 20 s"
    if proc.returncode != 0:
        return False, f"{kubeconfig}: {proc.stderr.strip() or proc.stdout.strip()}"
    return True, ""


@dataclass
class Kube:
    """A reachable cluster plus helpers that run the project's kubectl and helm against it."""

    kubeconfig: Path

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["PATH"] = f"{E2E_BIN}{os.pathsep}{env.get('PATH', '')}"
        return env

    def _run(
        self,
        tool: str,
        args: Sequence[str],
        *,
        input: str | None = None,
        check: bool = True,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        cmd = [tool_path(tool), *args]
        proc = subprocess.run(
            cmd, input=input, capture_output=True, text=True, env=self.env, timeout=timeout, check=False
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"`{' '.join(cmd)}` exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run `.e2e/bin/kubectl` with this cluster's kubeconfig."""
        return self._run(
            "kubectl",
            ["--kubeconfig", str(self.kubeconfig), *args],
            input=input,
            check=check,
            timeout=timeout,
        )

    def wait_established(self, crd: str, timeout: float = 60) -> None:
        """Wait until the API server serves ``crd``. `kubectl wait --for=condition=Established` exits at
        once ("status.conditions accessor error: <nil>") while a CRD created a moment before has no
        conditions yet, which a loaded machine shows (as knative/operator#2338 and epinio#829 saw), so
        this polls the condition itself."""
        deadline = time.monotonic() + timeout
        query = '{.status.conditions[?(@.type=="Established")].status}'
        while True:
            proc = self.kubectl("get", f"crd/{crd}", "-o", f"jsonpath={query}", check=False)
            if proc.returncode == 0 and proc.stdout.strip() == "True":
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"CRD {crd} not Established after {timeout:.0f}s: {proc.stdout!r} {proc.stderr!r}"
                )
            time.sleep(0.5)

    def helm(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """Run `.e2e/bin/helm` with this cluster's kubeconfig."""
        return self._run(
            "helm", ["--kubeconfig", str(self.kubeconfig), *args], input=input, check=check, timeout=timeout
        )

    def get_json(self, *args: str) -> Any:
        """`kubectl get ... -o json`, parsed."""
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def apply(self, manifest: str, namespace: str | None = None) -> None:
        """`kubectl apply -f -` of a YAML/JSON manifest string."""
        ns = ["-n", namespace] if namespace else []
        self.kubectl(*ns, "apply", "-f", "-", input=manifest)

    def server_version(self) -> str:
        info = json.loads(self.kubectl("version", "-o", "json").stdout)
        return str(info["serverVersion"]["gitVersion"])

    def wait_for(
        self,
        predicate: Callable[[], bool],
        *,
        timeout: float = 60,
        interval: float = 0.5,
        what: str = "condition",
    ) -> None:
        """Poll `predicate` until it returns True or fail after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            if predicate():
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(interval)

    def service_account_kubeconfig(
        self, namespace: str, name: str, path: Path, *, duration: str = "1h"
    ) -> Path:
        """Write a kubeconfig at `path` that authenticates as ServiceAccount `namespace/name` with a
        freshly minted token (`kubectl create token`) and nothing else, so RBAC applies to it."""
        token = self.kubectl(
            "-n", namespace, "create", "token", name, f"--duration={duration}"
        ).stdout.strip()
        current = json.loads(self.kubectl("config", "view", "--raw", "--minify", "-o", "json").stdout)
        cluster = current["clusters"][0]["cluster"]
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "e2e", "cluster": cluster}],
            "users": [{"name": f"{namespace}-{name}", "user": {"token": token}}],
            "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": f"{namespace}-{name}"}}],
            "current-context": "e2e",
        }
        path.write_text(json.dumps(config))
        path.chmod(0o600)
        return path

    def as_service_account(self, namespace: str, name: str, path: Path, *, duration: str = "1h") -> Kube:
        """A `Kube` acting as ServiceAccount `namespace/name` (see `service_account_kubeconfig`)."""
        return Kube(kubeconfig=self.service_account_kubeconfig(namespace, name, path, duration=duration))

    def api_client(self) -> Any:
        """A `kubernetes.client.ApiClient` for this cluster (the Python client is a project dependency)."""
        from kubernetes import client, config

        return config.new_client_from_config(
            config_file=str(self.kubeconfig), client_configuration=client.Configuration()
        )


@pytest.fixture(scope="session")
def kube() -> Kube:
    """The e2e cluster: `KUBECONFIG` if set and reachable, else `.e2e/kubeconfig`; fails when neither is."""
    tried: list[str] = []
    candidates: list[Path] = []
    env_kubeconfig = os.environ.get("KUBECONFIG", "")
    if env_kubeconfig:
        # Only a single-file KUBECONFIG is supported (as kubectl --kubeconfig takes one file).
        candidates.append(Path(env_kubeconfig.split(os.pathsep)[0]))
    candidates.append(DEFAULT_KUBECONFIG)
    for path in candidates:
        ok, why = _reachable(path)
        if ok:
            return Kube(kubeconfig=path.resolve())
        tried.append(why)
    pytest.fail(
        "no reachable Kubernetes cluster for the e2e tests:\n  "
        + "\n  ".join(tried)
        + f"\n{CLUSTER_UP_HINT}",
        pytrace=False,
    )


def _namespace_name(node_name: str) -> str:
    base = re.sub(r"[^a-z0-9-]+", "-", node_name.lower()).strip("-")[:40].strip("-") or "test"
    return f"e2e-{base}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def namespace(kube: Kube, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards (without waiting for finalization)."""
    name = _namespace_name(request.node.name)
    kube.kubectl("create", "namespace", name)
    # The ServiceAccount admission plugin needs the namespace's `default` ServiceAccount before
    # pods can be created; the controller-manager creates it within a moment.
    kube.wait_for(
        lambda: kube.kubectl("-n", name, "get", "serviceaccount", "default", check=False).returncode == 0,
        timeout=30,
        what=f"ServiceAccount default in {name}",
    )
    try:
        yield name
    finally:
        kube.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


CRD_RELEASE, CRD_RELEASE_NS = "hermes-cache", "hermes-system"


@pytest.fixture(scope="session")
def crd_release(kube: Kube) -> tuple[str, str]:
    """The chart installed without the operator: the CRD, the ServiceAccount and RBAC.

    Every test module that needs the CRD shares this release (the CRD can have one owner), and a
    module that runs an operator in the cluster installs a second release with ``crds.enabled=false``.
    """
    kube.helm("upgrade", "--install", CRD_RELEASE, str(REPO_ROOT / "charts/hermes-cache"),
              "-n", CRD_RELEASE_NS, "--create-namespace", "--set", "operator.enabled=false",
              "--wait", "--timeout", "2m")  # fmt: skip
    kube.wait_established("hermescachepolicies.hermes-cache.dev")
    return CRD_RELEASE, CRD_RELEASE_NS
