"""The built container images, run with podman (tier `image`: ``pytest tests/image -m image``).

Session fixtures ``hermes_image`` and ``vllm_image`` are image refs from ``scripts/image/build.sh``,
which builds only what is missing (a warm call takes about a second; a cold one builds the Debian base,
then the image: ~3 min for the project image, more for vLLM's, see docs/images.md). Every test here is
marked ``image``; the marker is registered here too, so this folder needs nothing from pyproject.toml.
``HERMES_TEST_HERMES_IMAGE`` / ``HERMES_TEST_VLLM_IMAGE`` name images to test instead of building.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "scripts" / "image" / "build.sh"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "image: builds and runs the container images with podman")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.image)


@pytest.fixture(scope="session", autouse=True)
def _podman() -> None:
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed: apt-get install podman runc (scripts/install-system.sh)")
    # The project's podman settings (runc, cgroupfs, ulimits): the same file the build script uses.
    os.environ.setdefault("CONTAINERS_CONF", str(ROOT / "scripts" / "image" / "containers.conf"))


def _build(target: str, var: str) -> str:
    override = os.environ.get(f"HERMES_TEST_{var}")
    if override:
        return override
    out = subprocess.run(
        ["bash", str(BUILD), target], check=False, capture_output=True, text=True, timeout=3600
    )
    if out.returncode != 0:
        pytest.fail(f"scripts/image/build.sh {target} failed:\n{out.stderr[-3000:]}")
    refs = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    assert var in refs, f"build.sh {target} printed no {var}=: {out.stdout!r}"
    return refs[var]


@pytest.fixture(scope="session")
def hermes_image(_podman: None) -> str:
    return _build("hermes", "HERMES_IMAGE")


@pytest.fixture(scope="session")
def vllm_image(_podman: None) -> str:
    return _build("vllm", "VLLM_IMAGE")
