"""values.yaml and values.schema.json: every value documented, the schema strict, typos refused."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from test_chart_common import CHART, render_text

VALUES_TEXT = (CHART / "values.yaml").read_text()
VALUES = yaml.safe_load(VALUES_TEXT)
SCHEMA = json.loads((CHART / "values.schema.json").read_text())


def _is_strict(node: dict[str, Any]) -> bool:
    return node.get("type") == "object" and node.get("additionalProperties") is False


def _schema_paths(node: dict[str, Any], prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    out: set[tuple[str, ...]] = set()
    for key, child in node.get("properties", {}).items():
        out.add((*prefix, key))
        out |= _schema_paths(child, (*prefix, key))
    return out


def _documented_keys() -> list[tuple[tuple[str, ...], bool]]:
    """(path, has a comment right above it) for each key line of values.yaml."""
    out: list[tuple[tuple[str, ...], bool]] = []
    stack: list[tuple[int, str]] = []
    previous = ""
    for line in VALUES_TEXT.splitlines():
        m = re.match(r"^( *)([A-Za-z0-9_./-]+):(\s|$)", line)
        if m:
            indent = len(m.group(1))
            while stack and stack[-1][0] >= indent:
                stack.pop()
            stack.append((indent, m.group(2)))
            out.append((tuple(k for _, k in stack), previous.strip().startswith("#")))
        if line.strip():
            previous = line
    return out


def _schema_node(path: tuple[str, ...]) -> dict[str, Any] | None:
    node: dict[str, Any] | None = SCHEMA
    for key in path:
        node = (node or {}).get("properties", {}).get(key)
    return node


def test_every_value_has_a_comment() -> None:
    # A key inside a strict group is a value the user sets, so it needs a comment; a key that is
    # itself a strict group (operator:, image:) is a heading; keys inside free-form maps
    # (resources, securityContext, selector labels) are example content of a commented value.
    missing = []
    for path, commented in _documented_keys():
        parent = _schema_node(path[:-1]) if len(path) > 1 else SCHEMA
        node = _schema_node(path)
        if parent is None or not _is_strict(parent) or node is None or _is_strict(node):
            continue
        if not commented:
            missing.append(".".join(path))
    assert missing == []


def test_schema_and_values_name_the_same_keys() -> None:
    def value_paths(v: Any, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
        out: set[tuple[str, ...]] = set()
        node = _schema_node(prefix) if prefix else SCHEMA
        if isinstance(v, dict) and node is not None and "properties" in node:
            for k, child in v.items():
                out.add((*prefix, k))
                out |= value_paths(child, (*prefix, k))
        return out

    assert value_paths(VALUES) == _schema_paths(SCHEMA)


def test_every_group_of_the_schema_refuses_unknown_keys() -> None:
    def groups(node: dict[str, Any], path: str) -> list[str]:
        out = []
        if "properties" in node and node.get("additionalProperties") is not False:
            out.append(path or "(top level)")
        for key, child in node.get("properties", {}).items():
            out += groups(child, f"{path}.{key}".lstrip("."))
        return out

    assert groups(SCHEMA, "") == []


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"operator": {"enabeld": False}}, "enabeld"),
        ({"monitoring": {"podMonitor": {"enabled": True, "intervall": "15s"}}}, "intervall"),
        ({"redis": {"persistance": {"enabled": True}}}, "persistance"),
        ({"crd": {"enabled": False}}, "crd"),
    ],
)
def test_a_typo_in_a_key_fails_and_names_it(values: dict[str, Any], named: str) -> None:
    proc = render_text(values, check=False)
    assert proc.returncode != 0
    assert named in proc.stderr
    assert "additional properties" in proc.stderr.lower()


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"redis": {"port": "6379x"}}, "port"),
        ({"monitoring": {"prometheusRule": {"alerts": {"kvCacheSaturation": {"usage": 95}}}}}, "usage"),
        ({"monitoring": {"prometheusRule": {"alerts": {"queueGrowing": {"for": "ten minutes"}}}}}, "for"),
        ({"operator": {"image": {"pullPolicy": "Sometimes"}}}, "pullPolicy"),
        ({"redis": {"maxmemoryPolicy": "lru"}}, "maxmemoryPolicy"),
    ],
)
def test_a_bad_value_fails_and_names_the_field(values: dict[str, Any], named: str) -> None:
    proc = render_text(values, check=False)
    assert proc.returncode != 0
    assert named in proc.stderr


def test_the_defaults_render() -> None:
    assert render_text().returncode == 0
