"""`hermes-cache plan`: the command a user runs before touching a cluster."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from _policies import EXAMPLES

from hermes_operator.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(["plan", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def test_70b_tp4_json_shows_the_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, str(EXAMPLES / "hermes-70b-tp4.yaml"), "--output", "json")
    assert rc == 0
    doc = json.loads(out)
    assert set(doc) == {"capacity", "resources"}
    cap = doc["capacity"]
    assert cap["kvBytesPerToken"] == 327_680
    assert cap["fits"] is True
    assert 2 <= cap["maxConcurrentSequencesAtMaxLen"] <= 3.6
    assert {"kvBytesPerToken", "kvCacheTokensPerReplica", "maxConcurrentSequencesAtMaxLen", "fits"} <= set(
        cap
    )
    kinds = [r["kind"] for r in doc["resources"]]
    assert kinds == ["ConfigMap", "Deployment", "Service", "PodDisruptionBudget"]


def test_70b_tp1_renders_no_deployment(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, str(EXAMPLES / "hermes-70b-tp1.yaml"), "-o", "json")
    assert rc == 0
    doc = json.loads(out)
    assert doc["capacity"]["fits"] is False
    assert doc["resources"] == []


def test_gpu_memory_utilization_17_is_refused_naming_the_field(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    doc = yaml.safe_load((EXAMPLES / "hermes-70b-tp4.yaml").read_text())
    doc["spec"]["engine"]["gpuMemoryUtilization"] = 1.7
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(doc))
    rc, out, err = run(capsys, str(bad), "-o", "json")
    assert rc != 0 and out == ""
    assert "spec.engine.gpuMemoryUtilization" in err and "(0, 1]" in err and "1.7" in err


def test_yaml_output_equals_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    f = str(EXAMPLES / "hermes-8b-semantic-autoscaled.yaml")
    _, js, _ = run(capsys, f, "-o", "json")
    _, ym, _ = run(capsys, f, "-o", "yaml")
    assert json.loads(js) == yaml.safe_load(ym)
    assert "HorizontalPodAutoscaler" in [r["kind"] for r in json.loads(js)["resources"]]


def test_table_summarises_capacity_gpus_and_args(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, str(EXAMPLES / "hermes-70b-tp4.yaml"))
    assert rc == 0
    assert "327,680" in out and "4 x nvidia.com/gpu" in out and "--tensor-parallel-size 4" in out
    rc, out, _ = run(capsys, str(EXAMPLES / "hermes-70b-tp1.yaml"), "-o", "table")
    assert "NO (InsufficientMemory)" in out and "resources              none" in out


def test_cpu_kv_budget_flag(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    f = tmp_path / "tiny.yaml"
    f.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "hermes-cache.dev/v1alpha1",
                "kind": "HermesCachePolicy",
                "metadata": {"name": "tiny"},
                "spec": {"model": {"name": "hermes-tiny-llama"}, "engine": {"maxModelLen": 2048}},
            }
        )
    )
    rc, out, _ = run(capsys, str(f), "-o", "json", "--kv-cache-space-gib", "1")
    assert rc == 0
    assert json.loads(out)["capacity"]["kvCacheTokensPerReplica"] == 2_097_152


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_every_example_plans(capsys: pytest.CaptureFixture[str], name: str) -> None:
    rc, out, _ = run(capsys, str(EXAMPLES / name), "-o", "json")
    assert rc == 0 and json.loads(out)["capacity"]


def test_unreadable_and_multi_document_files(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rc, _, err = run(capsys, str(tmp_path / "missing.yaml"))
    assert rc == 2 and "cannot read" in err
    two = tmp_path / "two.yaml"
    two.write_text("a: 1\n---\nb: 2\n")
    rc, _, err = run(capsys, str(two))
    assert rc == 1 and "exactly one HermesCachePolicy" in err


def test_table_shows_the_verifier_when_a_policy_has_one(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, str(EXAMPLES / "hermes-8b-verifier.yaml"))
    assert rc == 0
    line = next(ln for ln in out.splitlines() if ln.startswith("verifier "))
    assert "BAAI/bge-reranker-v2-m3 at http://reranker:8000" in line and "cosine 0.7" in line
    rc, out, _ = run(capsys, str(EXAMPLES / "hermes-8b-semantic-autoscaled.yaml"))
    assert rc == 0 and not any(ln.startswith("verifier ") for ln in out.splitlines())


@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_run_refuses_a_concurrency_that_is_not_a_positive_number(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["run", "--namespace", "ns", "--concurrent-objects", value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --concurrent-objects: {value!r} is not a whole number of at least 1" in err


def test_table_shows_decay_and_tool_plans_only_when_on(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    doc = yaml.safe_load((EXAMPLES / "hermes-cpu.yaml").read_text())
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump(doc))
    rc, out, _ = run(capsys, str(f))
    assert rc == 0 and "decay" not in out and "tool plans" not in out
    doc["spec"].setdefault("semanticCache", {}).update(
        decay={"mode": "linear", "rampSeconds": 36000, "ceiling": 0.95}, toolPlans={"semantic": False}
    )
    f.write_text(yaml.safe_dump(doc))
    rc, out, _ = run(capsys, str(f))
    assert rc == 0
    assert "linear over 36000 s, required similarity rises to 0.95, exact hits unaffected" in out
    assert "tool calls reused exactly;" in out
