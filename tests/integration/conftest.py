"""Real servers for the integration tier, started by the project's own scripts.

Session fixtures:

- ``redis_url``: Redis 7.4 with RediSearch (vector search) and RedisJSON, started by
  ``scripts/redis/start.sh`` on a free loopback port and stopped at the end of the session, unless
  ``HERMES_TEST_REDIS_URL`` names a server to use instead.
- ``vllm_url``: base URL (no ``/v1``) of vLLM's OpenAI server on the CPU serving the tiny random model
  as ``tiny-llama``, started once per session by ``scripts/vllm/start.sh`` (a minute or more; the
  first run on a machine also installs vLLM, several minutes), unless ``HERMES_TEST_VLLM_URL`` is set.
  Started with ``HERMES_VLLM_DEV_MODE=1`` (``POST /reset_prefix_cache`` works) unless the environment
  says otherwise, and with ``HERMES_VLLM_TOOLS=1`` (tool calling and structured outputs, for
  test_sidecar_tool_plans.py; a server named by ``HERMES_TEST_VLLM_URL`` needs them too).
- ``embedder``: the sidecar's default local embedder (bge-small int8 on ONNX Runtime), loaded once;
  tests hand it to ``create_app(cfg, embedder=...)``.
- ``verifier_url``: base URL (no ``/v1``) of vLLM serving the tiny random cross-encoder as
  ``tiny-verifier`` (``POST /rerank``; scores are a sigmoid, about 0.49 whatever the texts), started
  once per session by ``HERMES_VLLM_KIND=verifier scripts/vllm/start.sh`` (about 45 s), unless
  ``HERMES_TEST_VERIFIER_URL`` is set.

Server objects (skip the test when the URL came from the environment, as that server is not ours):

- ``redis_server``: the server behind ``redis_url``; ``stop()`` / ``start()`` it on the same port (a
  restart starts empty: no persistence, as a fresh pod without a volume), ``kill()`` for SIGKILL.
  Whatever a test does, the server runs again after it.
- ``vllm_server``: the server behind ``vllm_url`` (``log`` is its log file).

Nothing here is marked; test modules mark themselves ``pytest.mark.integration``.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hermes_sidecar.embed import LocalEmbedder

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = REPO_ROOT / "scripts"


def free_port() -> int:
    """A free loopback port below the ephemeral range, so that no client socket takes it while a
    test has the server stopped."""
    low = 32768
    with contextlib.suppress(OSError, ValueError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, max(20001, min(low, 32768)))
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port found on 127.0.0.1")


@dataclass
class ScriptServer:
    """A server run by scripts/<kind>/start.sh and stop.sh on 127.0.0.1:port."""

    kind: str
    port: int
    state_dir: Path
    env: dict[str, str] = field(default_factory=dict)

    def _script(self, name: str) -> None:
        script = SCRIPTS / self.kind / name
        proc = subprocess.run(
            ["bash", str(script), str(self.port), str(self.state_dir)],
            env={**os.environ, **self.env},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"{script.relative_to(REPO_ROOT)} {self.port} failed with exit code {proc.returncode}\n"
                f"{proc.stderr.strip()}\n(state dir: {self.state_dir})"
            )

    def start(self) -> None:
        """Start it (a no-op while it runs); returns when it answers."""
        self._script("start.sh")

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL); a no-op when it is not running."""
        self._script("stop.sh")

    @property
    def pidfile(self) -> Path:
        return self.state_dir / f"{self.kind}.pid"

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs (a killed server is a zombie until reaped: not running)."""
        try:
            pid = int(self.pidfile.read_text().strip())
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, ValueError, IndexError):
            return None
        return None if state == "Z" else pid

    def is_running(self) -> bool:
        return self.pid is not None

    def kill(self) -> None:
        """SIGKILL, as a crash would; start() brings it back."""
        pid = self.pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)  # the server leads its own process group
            deadline = time.monotonic() + 10
            while self.is_running() and time.monotonic() < deadline:
                time.sleep(0.02)  # dying: let the kernel finish before stop.sh looks at it
        self.stop()  # reaps what is left and removes the pid file

    @property
    def log(self) -> Path:
        return self.state_dir / f"{self.kind}.log"


@dataclass
class RedisServer(ScriptServer):
    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@dataclass
class VllmServer(ScriptServer):
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="session")
def _redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer | None]:
    if os.environ.get("HERMES_TEST_REDIS_URL"):
        yield None
        return
    server = RedisServer("redis", free_port(), tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_url(_redis: RedisServer | None) -> str:
    """URL of a Redis with vector search: ours, or HERMES_TEST_REDIS_URL."""
    return _redis.url if _redis is not None else os.environ["HERMES_TEST_REDIS_URL"]


@pytest.fixture
def redis_server(_redis: RedisServer | None) -> Iterator[RedisServer]:
    """The Redis behind ``redis_url``, to stop and start; running again after the test."""
    if _redis is None:
        pytest.skip("HERMES_TEST_REDIS_URL is set: that Redis is not ours to stop")
    _redis.start()
    try:
        yield _redis
    finally:
        _redis.start()


def _own_vllm(
    override: str, tmp_path_factory: pytest.TempPathFactory, name: str, env: dict[str, str]
) -> Iterator[VllmServer | None]:
    """A vLLM started by scripts/vllm/start.sh for the session, or None when ``override`` (an
    environment variable) names a server to use instead."""
    if os.environ.get(override):
        yield None
        return
    server = VllmServer("vllm", free_port(), tmp_path_factory.mktemp(name), env)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def _vllm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VllmServer | None]:
    env = {
        "HERMES_VLLM_DEV_MODE": os.environ.get("HERMES_VLLM_DEV_MODE", "1"),
        "HERMES_VLLM_TOOLS": os.environ.get("HERMES_VLLM_TOOLS", "1"),
    }
    yield from _own_vllm("HERMES_TEST_VLLM_URL", tmp_path_factory, "vllm", env)


@pytest.fixture(scope="session")
def vllm_url(_vllm: VllmServer | None) -> str:
    """Base URL (no /v1) of a vLLM OpenAI server serving ``tiny-llama``: ours, or HERMES_TEST_VLLM_URL."""
    return _vllm.url if _vllm is not None else os.environ["HERMES_TEST_VLLM_URL"].rstrip("/")


@pytest.fixture(scope="session")
def vllm_server(_vllm: VllmServer | None) -> VllmServer:
    """The vLLM behind ``vllm_url`` (for its log), when this session started it."""
    if _vllm is None:
        pytest.skip("HERMES_TEST_VLLM_URL is set: that vLLM is not ours")
    return _vllm


@pytest.fixture(scope="session")
def _verifier(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VllmServer | None]:
    yield from _own_vllm(
        "HERMES_TEST_VERIFIER_URL", tmp_path_factory, "verifier", {"HERMES_VLLM_KIND": "verifier"}
    )


@pytest.fixture(scope="session")
def verifier_url(_verifier: VllmServer | None) -> str:
    """Base URL (no /v1) of a vLLM serving the cross-encoder ``tiny-verifier`` on /rerank: ours, or
    HERMES_TEST_VERIFIER_URL."""
    return _verifier.url if _verifier is not None else os.environ["HERMES_TEST_VERIFIER_URL"].rstrip("/")


@pytest.fixture(scope="session")
def embedder() -> LocalEmbedder:
    return LocalEmbedder()
