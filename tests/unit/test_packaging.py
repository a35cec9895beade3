"""The image installs the project with a plain (non-editable) `pip install .` (Dockerfile).

An editable install in .venv can hide a packaging mistake: a package or data file missing from the
wheel, or a console script pointing nowhere. Build the real wheel and look inside it.
"""

from __future__ import annotations

import configparser
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",  # the locked setuptools of this venv, not one resolved today
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (path,) = out.glob("hermes_cache-*.whl")
    return zipfile.ZipFile(path)


def test_wheel_holds_both_packages_and_their_type_markers(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for module in (
        "hermes_operator/cli.py",
        "hermes_operator/render.py",
        "hermes_sidecar/app.py",
        "hermes_sidecar/store/redis.py",
    ):
        assert module in names, f"{module} missing from the wheel"
    assert {"hermes_operator/py.typed", "hermes_sidecar/py.typed"} <= names
    assert not any(n.startswith(("tests/", "bench/")) for n in names)


def test_console_scripts_point_at_real_functions(wheel: zipfile.ZipFile) -> None:
    (ep_name,) = [n for n in wheel.namelist() if n.endswith("entry_points.txt")]
    parser = configparser.ConfigParser()
    parser.read_string(wheel.read(ep_name).decode())
    scripts = dict(parser["console_scripts"])
    assert set(scripts) == {"hermes-cache", "hermes-sidecar"}
    for target in scripts.values():
        module, func = target.split(":")
        source = wheel.read(module.replace(".", "/") + ".py").decode()
        assert re.search(rf"^def {func}\(", source, re.MULTILINE), target


def test_dockerfile_copies_what_the_build_needs() -> None:
    text = (ROOT / "Dockerfile").read_text()
    copied = re.findall(r"^COPY (?!--from)(.+?) \S+$", text, re.MULTILINE)
    for line in copied:
        for src in line.split():
            if src.startswith("models/"):
                # staged into the build context by scripts/image/build.sh from scripts/models/install.sh
                continue
            assert (ROOT / src).exists(), f"Dockerfile copies {src}, which does not exist"
    # the default command is the sidecar config path the operator mounts
    from hermes_operator.render import SIDECAR_CONFIG_DIR, SIDECAR_CONFIG_FILE

    assert f"{SIDECAR_CONFIG_DIR}/{SIDECAR_CONFIG_FILE}" in text
