"""Shared by make_tiny_model.py and make_tiny_verifier.py: build a tiny model folder once, atomically.

A folder whose marker file names the current format (and holds model.safetensors) is reused as is;
otherwise the model is built next to it and renamed into place, so a crash never leaves half a model
where start.sh would serve it. Prints the folder.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path


def build_once(
    argv: list[str], usage: str, marker: str, format_version: str, build: Callable[[Path], None]
) -> int:
    if len(argv) != 2:
        print(usage, file=sys.stderr)
        return 2
    out = Path(argv[1]).resolve()
    if (out / marker).is_file():
        meta = json.loads((out / marker).read_text())
        if meta.get("format") == format_version and (out / "model.safetensors").is_file():
            print(out)
            return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp.", dir=out.parent))
    try:
        build(tmp)
        if out.exists():
            shutil.rmtree(out)
        tmp.chmod(0o755)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(out)
    return 0
