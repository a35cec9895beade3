"""The CRD is the source of truth: the typed model and the Python rules must say the same thing."""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, get_args, get_origin

import annotated_types
import pytest
import yaml
from _policies import CRD_PATH
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from hermes_operator import spec as S

CRD = yaml.safe_load(CRD_PATH.read_text())
VERSION = CRD["spec"]["versions"][0]
SCHEMA = VERSION["schema"]["openAPIV3Schema"]

_SCALARS = {bool: "boolean", int: "integer", float: "number", str: "string"}
_BOUNDS = {
    annotated_types.Ge: "minimum",
    annotated_types.Le: "maximum",
    annotated_types.MinLen: "min",
    annotated_types.MaxLen: "max",
}


def _unwrap_optional(ann: Any) -> tuple[Any, bool]:
    if get_origin(ann) in (typing.Union, types.UnionType):
        args = [a for a in get_args(ann) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return ann, False


def _bounds(field: Any, schema_type: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for meta in field.metadata:
        for cls, key in _BOUNDS.items():
            if isinstance(meta, cls):
                value = getattr(
                    meta, {"minimum": "ge", "maximum": "le", "min": "min_length", "max": "max_length"}[key]
                )
                if key in ("min", "max"):
                    key = {"string": f"{key}Length", "array": f"{key}Items"}[schema_type]
                out[key] = value
    return out


def _schema_bounds(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        k: schema[k]
        for k in ("minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems")
        if k in schema
    }


def _compare(
    model: type[BaseModel], schema: dict[str, Any], path: str, problems: list[str], status: bool
) -> None:
    props = schema.get("properties", {})
    if set(model.model_fields) != set(props):
        problems.append(f"{path}: fields differ: model {sorted(model.model_fields)} vs CRD {sorted(props)}")
        return
    required = set(schema.get("required", []))
    for name, field in model.model_fields.items():
        sub, where = props[name], f"{path}.{name}"
        ann, nullable = _unwrap_optional(field.annotation)
        if not status:
            if field.is_required() != (name in required):
                problems.append(
                    f"{where}: required in model={field.is_required()} but CRD={name in required}"
                )
            has_default = not field.is_required() and not nullable
            if has_default != ("default" in sub):
                problems.append(f"{where}: default in model={has_default} but CRD={'default' in sub}")
        origin = get_origin(ann)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            _expect(sub, "object", where, problems)
            if not status and "default" in sub:
                # an optional object left out (None in the model) is an absent key in the CRD default
                full = field.get_default(call_default_factory=True).model_dump(exclude_none=True)
                # {} lets nested defaults apply; an object with its own CEL rules needs them spelled
                # out, because kube-apiserver checks the default against the rules as written.
                wanted = full if sub.get("x-kubernetes-validations") else {}
                if sub["default"] != wanted:
                    problems.append(f"{where}: object default {sub['default']} vs {wanted}")
            _compare(ann, sub, where, problems, status)
            continue
        if origin is list:
            _expect(sub, "array", where, problems)
            (item,) = get_args(ann)
            if isinstance(item, type) and issubclass(item, BaseModel):
                _compare(item, sub["items"], f"{where}[]", problems, status)
            elif get_origin(item) is Literal:
                values = list(get_args(item))
                _expect(sub["items"], _SCALARS[type(values[0])], f"{where}[]", problems)
                if values != sub["items"].get("enum"):
                    problems.append(f"{where}[]: enum {values} vs CRD {sub['items'].get('enum')}")
            else:
                _expect(sub["items"], _SCALARS[item], f"{where}[]", problems)
            kind = "array"
        elif origin is dict:
            _expect(sub, "object", where, problems)
            _expect(sub["additionalProperties"], "string", f"{where}{{}}", problems)
            kind = "object"
        elif origin is Literal:
            values = list(get_args(ann))
            _expect(sub, _SCALARS[type(values[0])], where, problems)
            if (not status or "enum" in sub) and values != sub.get("enum"):
                problems.append(f"{where}: enum {values} vs CRD {sub.get('enum')}")
            kind = sub["type"]
        else:
            _expect(sub, _SCALARS[ann], where, problems)
            kind = sub["type"]
        if status:
            continue
        if "default" in sub and not isinstance(field.default, type(PydanticUndefined)):
            default = field.get_default(call_default_factory=True)
            if isinstance(default, BaseModel):
                default = default.model_dump()
            if default != sub["default"]:
                problems.append(f"{where}: default {default!r} vs CRD {sub['default']!r}")
        mine = _bounds(field, kind)
        if mine != _schema_bounds(sub):
            problems.append(f"{where}: bounds {mine} vs CRD {_schema_bounds(sub)}")


def _expect(schema: dict[str, Any], type_: str, where: str, problems: list[str]) -> None:
    if schema.get("type") != type_:
        problems.append(f"{where}: type {type_} in model vs {schema.get('type')} in CRD")


def test_spec_model_equals_crd_schema() -> None:
    problems: list[str] = []
    _compare(S.PolicySpec, SCHEMA["properties"]["spec"], "spec", problems, status=False)
    assert problems == []


def test_status_model_equals_crd_schema() -> None:
    problems: list[str] = []
    _compare(S.PolicyStatus, SCHEMA["properties"]["status"], "status", problems, status=True)
    assert problems == []


def test_comparison_notices_a_difference() -> None:
    """The walker above must be able to fail: a model with one bound changed differs."""
    tampered = yaml.safe_load(yaml.safe_dump(SCHEMA["properties"]["spec"]))
    tampered["properties"]["engine"]["properties"]["maxNumSeqs"]["minimum"] = 2
    tampered["properties"]["replicas"]["default"] = 3
    problems: list[str] = []
    _compare(S.PolicySpec, tampered, "spec", problems, status=False)
    assert len(problems) == 2


def _cel_rules(node: Any, path: str = "") -> list[tuple[str, str, str]]:
    found = []
    if isinstance(node, dict):
        for rule in node.get("x-kubernetes-validations", []):
            found.append((path, rule["rule"], rule["message"]))
        for key, value in node.items():
            if key == "properties":
                for name, sub in value.items():
                    found += _cel_rules(sub, f"{path}.{name}" if path else name)
            elif key == "items":
                found += _cel_rules(value, path)
    return found


RULES = _cel_rules(SCHEMA)


def test_every_cel_rule_has_a_python_counterpart_and_back() -> None:
    cel = {message for _, _, message in RULES}
    python = {r.message for r in S.RULES}
    assert cel == python


def test_every_cel_message_names_the_field_it_guards() -> None:
    for path, _, message in RULES:
        assert message.startswith(path), (path, message)


def test_cel_rules_use_the_python_patterns() -> None:
    rules = {path: rule for path, rule, _ in RULES}
    assert S.OWNED_FLAGS_PATTERN in rules["spec.engine.extraArgs"]
    assert S.CACHE_VERSION_PATTERN in rules["spec.cacheVersion"]
    assert S.URL_PASSWORD_PATTERN in rules["spec.semanticCache.redis"]


def test_strings_and_lists_under_cel_rules_are_bounded() -> None:
    """kube-apiserver estimates CEL cost from maxLength/maxItems; unbounded ones get a rule refused."""
    spec = SCHEMA["properties"]["spec"]["properties"]
    assert spec["engine"]["properties"]["extraArgs"]["maxItems"] <= 64
    assert spec["engine"]["properties"]["extraArgs"]["items"]["maxLength"] <= 512
    assert spec["cacheVersion"]["maxLength"] == 63
    assert spec["semanticCache"]["properties"]["redis"]["properties"]["url"]["maxLength"] <= 1024
    assert spec["semanticCache"]["properties"]["verifier"]["properties"]["url"]["maxLength"] <= 1024


def test_names_scale_and_columns() -> None:
    names = CRD["spec"]["names"]
    assert (CRD["spec"]["group"], VERSION["name"]) == ("hermes-cache.dev", "v1alpha1")
    assert (names["kind"], names["plural"], names["shortNames"]) == (S.KIND, S.PLURAL, ["hcp"])
    scale = VERSION["subresources"]["scale"]
    assert scale == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    assert "status" in VERSION["subresources"]
    columns = [c["name"] for c in VERSION["additionalPrinterColumns"]]
    for wanted in ("Model", "TP", "Replicas", "Ready", "Version", "Hit Rate", "Age"):
        assert wanted in columns


@pytest.mark.parametrize("path", [p for p, _, _ in RULES])
def test_python_rule_exists_for_path(path: str) -> None:
    assert any(r.path == path or r.path.startswith(path) or path.startswith(r.path) for r in S.RULES)
