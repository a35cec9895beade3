"""The capacity planner's KV arithmetic against what a real vLLM (CPU build) reports at start-up.

scripts/vllm/start.sh serves the tiny Llama with VLLM_CPU_KVCACHE_SPACE GiB of KV cache and
max-model-len 2048; vLLM logs "CPU KV cache size: N tokens, Maximum concurrency for 2,048 tokens per
request: Cx". `hermes-cache plan --kv-cache-space-gib` must predict N and C from the architecture.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

import pytest

from hermes_operator.capacity import GiB, plan_capacity
from hermes_operator.spec import parse_spec

if TYPE_CHECKING:
    from conftest import VllmServer

pytestmark = pytest.mark.integration

LINE = re.compile(
    r"KV cache size: ([\d,]+) tokens, Maximum concurrency for ([\d,]+) tokens per request: ([\d.]+)x"
)


def test_planner_predicts_vllm_kv_cache_size(vllm_url: str, vllm_server: VllmServer) -> None:
    found = LINE.findall(vllm_server.log.read_text())
    assert found, f"no 'KV cache size' line in {vllm_server.log}"
    tokens, max_len, concurrency = found[-1]
    budget = float(os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")) * GiB
    spec = parse_spec(
        {"model": {"name": "tiny-llama"}, "engine": {"maxModelLen": int(max_len.replace(",", ""))}}
    )
    cap = plan_capacity(spec, kv_budget_bytes=int(budget))
    assert cap.kvBytesPerToken == 512
    assert cap.kvCacheTokensPerReplica == int(tokens.replace(",", ""))
    assert cap.maxConcurrentSequencesAtMaxLen == pytest.approx(float(concurrency), abs=0.01)
