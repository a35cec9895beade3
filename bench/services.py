"""The real services a measurement talks to, started through the project's own commands.

    python -m bench.services vllm-args POLICY.yaml     the vLLM arguments `hermes-cache plan` renders
                                                       for POLICY, minus the four start.sh sets itself

Redis and vLLM are started by scripts/bench.sh (scripts/redis/start.sh, scripts/vllm/start.sh); a
sidecar is started here, per measurement, as `hermes-sidecar serve --config FILE` in its own process,
exactly as the operator's pod runs it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import ROOT, Skip

POLICY = ROOT / "bench" / "policies" / "tiny-cpu.yaml"
BIN = Path(sys.executable).parent
# scripts/vllm/start.sh passes these for the local model folder and port; everything else is the operator's
_SET_BY_START_SH = {"--model", "--served-model-name", "--host", "--port"}


def plan(policy: Path = POLICY, kv_cache_space_gib: float | None = None) -> dict[str, Any]:
    """`hermes-cache plan POLICY -o json`: the operator's own rendering, through its CLI."""
    cmd = [str(BIN / "hermes-cache"), "plan", str(policy), "-o", "json"]
    if kv_cache_space_gib is not None:
        cmd += ["--kv-cache-space-gib", f"{kv_cache_space_gib:g}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise Skip(f"`{' '.join(cmd[1:])}` failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


def rendered_vllm_args(rendered: dict[str, Any]) -> list[str]:
    for res in rendered["resources"]:
        if res.get("kind") == "Deployment":
            for c in res["spec"]["template"]["spec"]["containers"]:
                if c.get("name") == "vllm":
                    return [str(a) for a in c.get("args", [])]
    raise Skip("`hermes-cache plan` rendered no Deployment with a container named vllm")


def local_vllm_args(args: list[str]) -> list[str]:
    """Drop the options scripts/vllm/start.sh sets for this machine (with their values)."""
    out: list[str] = []
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        name = a.split("=", 1)[0]
        if name in _SET_BY_START_SH:
            skip = "=" not in a
            continue
        out.append(a)
    return out


_KV_LINE = re.compile(r"KV cache size:\s*([\d,]+)\s*tokens")


def vllm_kv_tokens(log: Path) -> tuple[int, str] | None:
    """The last `... KV cache size: N tokens` line vLLM logged at start-up, and the line itself."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return None
    found = None
    for line in text.splitlines():
        m = _KV_LINE.search(line)
        if m:
            found = (int(m.group(1).replace(",", "")), line.strip())
    return found


# ---------------------------------------------------------------------------------------------- sidecar


class Sidecar:
    """`hermes-sidecar serve --config FILE` in its own process group; stopped on exit of the block."""

    def __init__(self, config: dict[str, Any], workdir: Path, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.config = {**config, "listen": f"127.0.0.1:{port}"}
        self.workdir = workdir
        self.log = workdir / f"sidecar-{port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Sidecar:
        self.workdir.mkdir(parents=True, exist_ok=True)
        cfg = self.workdir / f"sidecar-{self.port}.yaml"
        cfg.write_text(json.dumps(self.config, indent=2))  # JSON is YAML
        with self.log.open("wb") as logf:  # this run's log only
            self.proc = subprocess.Popen(
                [str(BIN / "hermes-sidecar"), "serve", "--config", str(cfg)],
                stdout=logf,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.workdir,
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Skip(f"hermes-sidecar exited with {self.proc.returncode} at start: {self.tail()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.__exit__()
        raise Skip(f"hermes-sidecar not ready on {self.url} after 120 s: {self.tail()}")

    def tail(self, n: int = 1500) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __exit__(self, *exc: object) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)


def vllm_model(vllm_url: str) -> str:
    try:
        data = httpx.get(vllm_url.rstrip("/") + "/v1/models", timeout=5).json()
    except (httpx.HTTPError, ValueError) as exc:
        raise Skip(f"vLLM does not answer on {vllm_url} ({exc}); scripts/bench.sh starts it") from None
    return str(data["data"][0]["id"])


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "vllm-args":
        print(" ".join(local_vllm_args(rendered_vllm_args(plan(Path(argv[1]))))))
        return 0
    print("usage: python -m bench.services vllm-args POLICY.yaml", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
