"""The leader and worker commands of a LeaderWorkerSet group, parsed by the real vLLM.

The operator renders `vllm serve` with vLLM's native multi-node flags (`--nnodes`, `--node-rank`,
`--master-addr`, `--master-port`, `--headless` on workers). These tests hand the rendered
arguments, with the `$(LWS_...)` references expanded as the kubelet would, to the `vllm serve`
parser of the vLLM that scripts/vllm/install.sh installs (its own venv), run its own validation of
serve arguments, and build its EngineArgs from them: a flag vLLM renamed or dropped fails here.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from hermes_operator.capacity import plan_capacity
from hermes_operator.render import render_all
from hermes_operator.spec import parse_policy

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "hermes-405b-multinode.yaml"

# Runs inside vLLM's venv: parse like `vllm serve` does (vllm/entrypoints/cli/main.py builds one
# FlexibleArgumentParser with a subparser per command), validate, and report what vLLM understood.
PARSE = r"""
import json, sys
from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.entrypoints.cli.serve import ServeSubcommand
from vllm.utils.argparse_utils import FlexibleArgumentParser

parser = FlexibleArgumentParser(prog="vllm")
subparsers = parser.add_subparsers(dest="subparser")
serve = ServeSubcommand()
serve.subparser_init(subparsers)
out = {}
for role, argv in json.load(sys.stdin).items():
    args = parser.parse_args(argv)
    if args.model_tag is not None:  # what `vllm serve` itself does first (ServeSubcommand.cmd)
        args.model = args.model_tag
    serve.validate(args)
    engine = AsyncEngineArgs.from_cli_args(args)
    out[role] = {
        "subparser": args.subparser, "headless": args.headless, "host": args.host, "port": args.port,
        "model": engine.model, "tp": engine.tensor_parallel_size, "pp": engine.pipeline_parallel_size,
        "backend": engine.distributed_executor_backend, "nnodes": engine.nnodes,
        "node_rank": engine.node_rank, "master_addr": engine.master_addr, "master_port": engine.master_port,
        "max_model_len": engine.max_model_len, "enforce_eager": engine.enforce_eager,
    }
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def vllm_python() -> str:
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts/vllm/install.sh")],
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


def _expand(args: list[str], env: dict[str, str]) -> list[str]:
    """The kubelet's $(VAR) expansion of container args."""
    out = []
    for a in args:
        for k, v in env.items():
            a = a.replace(f"$({k})", v)
        out.append(a)
    return out


def _group_commands(doc: dict[str, Any]) -> dict[str, list[str]]:
    policy = parse_policy(doc)
    lws = next(o for o in render_all(policy, plan_capacity(policy.spec)) if o["kind"] == "LeaderWorkerSet")
    tmpl = lws["spec"]["leaderWorkerTemplate"]
    leader_addr = f"{lws['metadata']['name']}-0.{lws['metadata']['name']}.default"
    out = {}
    for role, key, index in (("leader", "leaderTemplate", "0"), ("worker", "workerTemplate", "1")):
        vllm = tmpl[key]["spec"]["containers"][0]
        assert vllm["command"] == ["vllm", "serve"]
        env = {
            "LWS_LEADER_ADDRESS": leader_addr,
            "LWS_WORKER_INDEX": index,
            "LWS_GROUP_SIZE": str(tmpl["size"]),
        }
        out[role] = ["serve", *_expand(vllm["args"], env)]
    return out


def _parse(python: str, commands: dict[str, list[str]]) -> dict[str, Any]:
    proc = subprocess.run(
        [python, "-c", PARSE],
        input=json.dumps(commands),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    parsed: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return parsed


def test_the_example_groups_commands_are_accepted_by_vllm_serve(vllm_python: str) -> None:
    doc = yaml.safe_load(EXAMPLE.read_text())
    parsed = _parse(vllm_python, _group_commands(doc))
    leader, worker = parsed["leader"], parsed["worker"]
    for got in (leader, worker):
        assert got["subparser"] == "serve"
        assert got["model"] == doc["spec"]["model"]["name"]
        assert (got["tp"], got["pp"], got["nnodes"]) == (8, 2, 2)
        assert got["backend"] == "mp"
        assert got["master_addr"] == "hermes-405b-group-0.hermes-405b-group.default"
        assert got["master_port"] == 29501
        assert got["max_model_len"] == 32768
    assert (leader["node_rank"], leader["headless"]) == (0, False)
    assert (worker["node_rank"], worker["headless"]) == (1, True)
    # the API server (leader only) stays on the pod's loopback, behind the sidecar
    assert (leader["host"], leader["port"]) == ("127.0.0.1", 8000)


def test_extra_args_reach_every_pod_of_the_group(vllm_python: str) -> None:
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["spec"]["engine"]["extraArgs"] = ["--enforce-eager"]
    doc["spec"]["engine"]["pipelineParallelSize"] = 4
    parsed = _parse(vllm_python, _group_commands(doc))
    assert all(p["enforce_eager"] and p["nnodes"] == 4 and p["pp"] == 4 for p in parsed.values())
