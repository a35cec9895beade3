"""The images as the pods run them: non-root, read-only root fs, no network, nothing downloaded."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# The pods' conditions: a read-only root fs (without the tmpfs podman would add on its own) and no
# network (nothing may be downloaded at run time).
LOCKED_DOWN = ("--read-only", "--read-only-tmpfs=false", "--network", "none")


def podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], check=False, capture_output=True, text=True, timeout=timeout)


GET = """
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
    print(r.status, r.read().decode())
"""


def get_inside(cid: str, url: str) -> subprocess.CompletedProcess[str] | None:
    """GET url from inside the container (which has no network but its own loopback); None when podman
    itself did not answer in time (it waits on its storage lock while another build commits)."""
    try:
        return podman("exec", cid, "python3", "-c", GET, url, timeout=60)
    except subprocess.TimeoutExpired:
        return None


def run(
    image: str, argv: Sequence[str], *opts: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`podman run --rm` locked down, ``argv[0]`` as the entry point (as a pod's ``command`` sets it)."""
    cmd = ["run", "--rm", *LOCKED_DOWN, *opts, "--entrypoint", argv[0], image, *argv[1:]]
    return podman(*cmd, timeout=timeout)


EMBED = """
import json, os
from hermes_sidecar.embed import LocalEmbedder
e = LocalEmbedder()  # the default local model: bge-small-en-v1.5 int8, from $HERMES_MODEL_DIR
v = e.embed_sync(["How do I install Python 3.11 on Ubuntu?"])
print(json.dumps({"model": e.name, "shape": list(v.shape), "norm": float((v * v).sum()),
                  "model_dir": os.environ["HERMES_MODEL_DIR"]}))
"""


def test_runs_as_uid_65532(hermes_image: str) -> None:
    out = run(hermes_image, ["id", "-u"])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "65532"
    user = podman("image", "inspect", "--format", "{{.Config.User}}", hermes_image).stdout.strip()
    assert user.split(":")[0] == "65532", "the image must declare the uid (runAsNonRoot checks it)"


@pytest.mark.parametrize("command", ["hermes-cache", "hermes-sidecar"])
def test_both_entry_points_answer(hermes_image: str, command: str) -> None:
    out = run(hermes_image, [command, "--help"])
    assert out.returncode == 0, out.stderr
    assert f"usage: {command}" in out.stdout


def test_default_embedder_loads_offline(hermes_image: str) -> None:
    out = run(hermes_image, ["python3", "-c", EMBED])
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["model"] == "bge-small-en-v1.5-int8"
    assert got["shape"] == [1, 384]
    assert got["norm"] == pytest.approx(1.0, abs=1e-4)
    assert got["model_dir"] == "/opt/hermes/models"


def test_sidecar_serves_healthz(hermes_image: str, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text('listen: "127.0.0.1:8080"\ncache:\n  backend: memory\n')
    config.chmod(0o644)
    started = podman(
        "run", "-d", *LOCKED_DOWN,
        "-v", f"{config}:/etc/hermes-sidecar/config.yaml:ro,Z",
        "--entrypoint", "hermes-sidecar", hermes_image,
        "serve", "--config", "/etc/hermes-sidecar/config.yaml",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    cid = started.stdout.strip()
    try:
        deadline = time.monotonic() + 60
        while True:
            got = get_inside(cid, "http://127.0.0.1:8080/healthz")
            if (got is not None and got.returncode == 0) or time.monotonic() > deadline:
                break
            state = podman("inspect", "--format", "{{.State.Running}}", cid).stdout.strip()
            assert state == "true", "the sidecar exited:\n" + podman("logs", cid).stderr[-3000:]
            time.sleep(0.5)
        assert got is not None, "podman exec did not answer"
        assert got.returncode == 0, got.stderr + podman("logs", cid).stderr[-3000:]
        status, body = got.stdout.strip().split(" ", 1)
        assert status == "200"
        assert json.loads(body)["status"] == "ok"
    finally:
        podman("rm", "-f", "-t", "0", cid)


def test_vllm_api_server_cli(vllm_image: str) -> None:
    # The operator's command for the engine container, with the pod's /tmp emptyDir as a tmpfs.
    out = run(
        vllm_image,
        ["sh", "-c", 'id -u && command -v python3 && exec python3 -m vllm.entrypoints.openai.api_server "$@"',
         "sh", "--help"],
        "--tmpfs", "/tmp:rw,mode=1777",
        timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    uid, python, *help_text = out.stdout.splitlines()
    assert uid == "65532"
    assert python == "/opt/vllm/bin/python3", "python3 on PATH must be the venv with vLLM"
    assert "--served-model-name" in "\n".join(help_text)


CHAT = """
import json, urllib.request
body = {"model": "tiny-llama", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}
req = urllib.request.Request("http://127.0.0.1:8000/v1/chat/completions", data=json.dumps(body).encode(),
                             headers={"content-type": "application/json"})
with urllib.request.urlopen(req, timeout=120) as r:
    print(json.dumps(json.load(r)["usage"]))
"""


def test_vllm_serves_the_tiny_model_locked_down(vllm_image: str, tmp_path: Path) -> None:
    """The engine as a pod runs it: non-root, read-only root, /tmp and /dev/shm in memory, no network.
    About 1-2 minutes: most of it is torch.compile at start-up (its cache goes under /tmp)."""
    tmp_path.chmod(0o777)  # the image's uid 65532 writes the model here
    made = podman(
        "run", "--rm", "--network", "none",
        "-v", f"{ROOT / 'scripts' / 'vllm'}:/s:ro,Z", "-v", f"{tmp_path}:/out:Z",
        "--entrypoint", "python3", vllm_image, "/s/make_tiny_model.py", "/out/tiny-llama",
        timeout=300,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr[-3000:]
    started = podman(
        "run", "-d", *LOCKED_DOWN, "--tmpfs", "/tmp:rw,mode=1777,size=2g",
        # vLLM's engine wants 160 MiB of /dev/shm even with one worker; runtimes give 64 MiB.
        "--shm-size", "1g",
        "-v", f"{tmp_path / 'tiny-llama'}:/models/tiny:ro,Z",
        "-e", "VLLM_CPU_KVCACHE_SPACE=1", "-e", "PYTHONHASHSEED=0",
        "--entrypoint", "python3", vllm_image, "-m", "vllm.entrypoints.openai.api_server",
        "--model", "/models/tiny", "--served-model-name", "tiny-llama", "--host", "127.0.0.1",
        "--port", "8000", "--max-model-len", "2048", "--enable-prefix-caching",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    cid = started.stdout.strip()
    try:
        deadline = time.monotonic() + 600
        while True:
            got = get_inside(cid, "http://127.0.0.1:8000/health")
            if got is not None and got.returncode == 0:
                break
            state = podman("inspect", "--format", "{{.State.Running}}", cid).stdout.strip()
            assert state == "true", "vLLM exited:\n" + podman("logs", cid).stderr[-4000:]
            assert time.monotonic() < deadline, (
                "vLLM not healthy in 600 s:\n" + podman("logs", cid).stderr[-4000:]
            )
            time.sleep(2)
        chat = podman("exec", cid, "python3", "-c", CHAT, timeout=150)
        assert chat.returncode == 0, chat.stderr[-3000:]
        assert json.loads(chat.stdout)["completion_tokens"] > 0
    finally:
        podman("rm", "-f", "-t", "0", cid)
