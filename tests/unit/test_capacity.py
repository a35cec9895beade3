"""Capacity planner numbers a platform engineer would check by hand."""

from __future__ import annotations

import pytest

from hermes_operator.capacity import PRESETS, Capacity, GiB, plan_capacity, preset_for
from hermes_operator.spec import parse_spec

H70 = "NousResearch/Hermes-3-Llama-3.1-70B"


def plan(name: str = H70, budget: int | None = None, gib: float = 80, **engine: object) -> Capacity:
    return plan_capacity(
        parse_spec({"model": {"name": name}, "engine": engine, "gpu": {"memoryGiB": gib}}), budget
    )


def test_70b_bf16_kv_bytes_per_token_counts_kv_heads_not_attention_heads() -> None:
    cap = plan(tensorParallelSize=4)
    assert cap.kvBytesPerToken == 327_680  # 2 x 80 layers x 8 KV heads x 128 x 2 bytes
    assert cap.kvBytesPerTokenPerGPU == 327_680 // 4


def test_70b_tp4_on_80gib_at_085_fits_two_to_three_point_six_sequences_of_128k() -> None:
    cap = plan(tensorParallelSize=4, gpuMemoryUtilization=0.85, maxModelLen=128_000)
    assert cap.fits
    assert 2 <= cap.maxConcurrentSequencesAtMaxLen <= 3.6
    assert cap.budgetBytesPerGPU == int(68 * GiB)
    # per-replica tokens agree with the per-GPU KV space
    assert cap.kvCacheTokensPerReplica * cap.kvBytesPerTokenPerGPU <= cap.kvCacheBytesPerGPU
    assert 256_000 <= cap.kvCacheTokensPerReplica <= 460_800


def test_70b_tp1_does_not_fit_and_says_needed_and_available_memory() -> None:
    cap = plan(tensorParallelSize=1, gpuMemoryUtilization=0.85, maxModelLen=128_000)
    assert not cap.fits
    assert cap.reason == "InsufficientMemory"
    assert cap.kvCacheTokensPerReplica == 0
    assert "needs 173.10 GiB per GPU" in cap.message
    assert "has 68.00 GiB" in cap.message
    assert "spec.engine.tensorParallelSize" in cap.message


def test_tensor_parallel_size_must_divide_attention_heads() -> None:
    cap = plan(tensorParallelSize=3)
    assert not cap.fits and cap.reason == "TensorParallelMismatch"
    assert "64 attention heads" in cap.message and "[1, 2, 4, 8]" in cap.message


def test_qwen_7b_tp8_refused_because_28_heads() -> None:
    cap = plan("Qwen/Qwen2.5-7B-Instruct", tensorParallelSize=8, maxModelLen=4096)
    assert cap.reason == "TensorParallelMismatch"


@pytest.mark.parametrize(
    ("name", "per_token"),
    [
        ("NousResearch/Hermes-3-Llama-3.1-8B", 131_072),
        ("meta-llama/Meta-Llama-3.1-8B-Instruct", 131_072),
        ("meta-llama/Llama-3.1-405B-Instruct", 516_096),
        ("NousResearch/Hermes-3-Llama-3.1-405B", 516_096),
        ("Qwen/Qwen2.5-7B-Instruct", 57_344),
        ("mistralai/Mistral-7B-Instruct-v0.3", 131_072),
        ("mistralai/Mixtral-8x7B-Instruct-v0.1", 131_072),
    ],
)
def test_kv_bytes_per_token_of_presets(name: str, per_token: int) -> None:
    assert preset_for(name) is not None
    assert (
        plan(name, maxModelLen=4096, tensorParallelSize=8 if "405B" in name else 1).kvBytesPerToken
        == per_token
    )


def test_fp8_kv_cache_halves_bytes_and_doubles_tokens() -> None:
    auto = plan(tensorParallelSize=4, gpuMemoryUtilization=0.85, maxModelLen=128_000)
    fp8 = plan(tensorParallelSize=4, gpuMemoryUtilization=0.85, maxModelLen=128_000, kvCacheDtype="fp8")
    assert fp8.kvBytesPerToken * 2 == auto.kvBytesPerToken
    assert abs(fp8.kvCacheTokensPerReplica - 2 * auto.kvCacheTokensPerReplica) <= 16


def test_more_gpu_memory_utilization_means_more_tokens() -> None:
    low = plan(tensorParallelSize=4, gpuMemoryUtilization=0.8)
    high = plan(tensorParallelSize=4, gpuMemoryUtilization=0.95)
    assert high.kvCacheTokensPerReplica > low.kvCacheTokensPerReplica


def test_cpu_budget_predicts_vllm_kv_cache_size_log_line() -> None:
    """vLLM on the CPU, VLLM_CPU_KVCACHE_SPACE=1, tiny model: 'KV cache size: 2,097,152 tokens'."""
    cap = plan("hermes-tiny-llama", budget=1 * GiB, maxModelLen=2048)
    assert cap.kvBytesPerToken == 512
    assert cap.kvCacheTokensPerReplica == 2_097_152


def test_tokens_are_whole_blocks() -> None:
    # 1 GiB + 100 bytes: the remainder is less than one block, vLLM drops it
    cap = plan("hermes-tiny-llama", budget=GiB + 100, maxModelLen=2048, blockSize=128)
    assert cap.kvCacheTokensPerReplica == 2_097_152
    assert cap.kvCacheTokensPerReplica % 128 == 0


def test_fewer_kv_heads_than_gpus_replicates_heads() -> None:
    tp1 = plan("hermes-tiny-llama", budget=GiB, maxModelLen=2048)
    tp2 = plan("hermes-tiny-llama", budget=GiB, maxModelLen=2048, tensorParallelSize=2)
    assert tp2.kvBytesPerTokenPerGPU == tp1.kvBytesPerTokenPerGPU == 512


def test_max_model_len_beyond_model_context_is_refused() -> None:
    cap = plan("Qwen/Qwen2.5-7B-Instruct", maxModelLen=65536)
    assert cap.reason == "MaxModelLenTooLong" and "32768" in cap.message


def test_unknown_model_needs_architecture_and_says_which_fields() -> None:
    spec = parse_spec({"model": {"name": "acme/secret-model", "architecture": {"numLayers": 4}}})
    cap = plan_capacity(spec)
    assert cap.reason == "UnknownModel"
    assert "spec.model.architecture" in cap.message and "numKVHeads" in cap.message
    assert "numLayers" not in cap.message.split("set spec.model.architecture")[1]


def test_architecture_overrides_preset() -> None:
    spec = parse_spec(
        {"model": {"name": H70, "architecture": {"numKVHeads": 16}}, "engine": {"tensorParallelSize": 4}}
    )
    assert plan_capacity(spec).kvBytesPerToken == 2 * 327_680


def test_full_architecture_for_unknown_model() -> None:
    arch = {
        "numLayers": 2,
        "numAttentionHeads": 2,
        "numKVHeads": 1,
        "headDim": 64,
        "hiddenSize": 128,
        "vocabSize": 512,
        "parameterCount": 1_000_000,
    }
    spec = parse_spec({"model": {"name": "acme/tiny", "architecture": arch}, "engine": {"maxModelLen": 1024}})
    cap = plan_capacity(spec)
    assert cap.fits and cap.kvBytesPerToken == 512


def test_405b_bf16_needs_more_than_eight_80gib_gpus() -> None:
    on_h100 = plan("NousResearch/Hermes-3-Llama-3.1-405B", tensorParallelSize=8, maxModelLen=4096)
    on_h200 = plan("NousResearch/Hermes-3-Llama-3.1-405B", gib=141, tensorParallelSize=8, maxModelLen=4096)
    assert not on_h100.fits and on_h200.fits


def test_every_preset_plans_on_some_gpu_count() -> None:
    for name, preset in PRESETS.items():
        tp = 8 if preset.parameterCount > 100e9 else 4 if preset.parameterCount > 20e9 else 1
        gib = 141 if preset.parameterCount > 100e9 else 80
        cap = plan(name, gib=gib, tensorParallelSize=tp, maxModelLen=min(4096, preset.maxPositionEmbeddings))
        assert cap.fits, (name, cap.message)
