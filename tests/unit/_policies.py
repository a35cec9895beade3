"""Policy documents for the operator's unit tests (a valid base and the shared invalid cases)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
CRD_PATH = ROOT / "crds" / "hermescachepolicy.yaml"
INVALID_PATH = Path(__file__).with_name("invalid_policies.yaml")


def deep_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in patch.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def policy_doc(name: str = "hermes-8b", namespace: str = "team-a", **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"model": {"name": "NousResearch/Hermes-3-Llama-3.1-8B"}}
    return {
        "apiVersion": "hermes-cache.dev/v1alpha1",
        "kind": "HermesCachePolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": deep_merge(base, spec),
    }


def example(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text())
    return doc


def invalid_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = yaml.safe_load(INVALID_PATH.read_text())
    return cases
