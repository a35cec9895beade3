"""GPU memory and KV-cache planner: pure functions from a policy spec to numbers.

Per GPU of one replica (a replica is one vLLM server over ``tensorParallelSize`` GPUs):

``budget``
    ``gpu.memoryGiB x engine.gpuMemoryUtilization``: what vLLM may use on each GPU.
``weights``
    ``parameterCount x dtype bytes / tensorParallelSize`` (bf16/fp16 = 2 bytes, fp32 = 4). Quantised
    weights are not modelled: the figure is an upper bound for them.
``overhead`` (an estimate; see :func:`overhead_bytes_per_gpu`)
    * non-torch memory: 1 GiB for the CUDA context, cuBLAS workspaces and allocator fragmentation,
      plus 0.5 GiB for NCCL and custom all-reduce buffers when ``tensorParallelSize > 1``;
    * CUDA graphs: 0.5 GiB (vLLM captures graphs for decode batch sizes up to ``maxNumSeqs``);
    * activations at the profiling peak: ``maxNumBatchedTokens x hiddenSize x 8 x dtype bytes``
      (the residual stream, the normed input, Q/K/V, the attention output and the MLP's gate and
      up projections, which are wider than ``hiddenSize`` but split over the GPUs);
    * sampler logits: ``maxNumSeqs x vocabSize x 4`` bytes (fp32 logits for one decode step).
``kv``
    ``budget - weights - overhead``. vLLM measures the first three at start-up instead of estimating
    them, so on a real GPU its number differs from this one by the overhead error (typically well
    under 1 GiB); the KV arithmetic that follows is vLLM's own.

KV bytes per token of a whole replica = 2 (K and V) x ``numLayers`` x ``numKVHeads`` x ``headDim`` x
KV-dtype bytes (fp8 = 1; ``auto`` = the model dtype). Tensor parallelism splits the KV heads over the
GPUs (each GPU keeps at least one head: with fewer KV heads than GPUs, heads are replicated). Like
vLLM (``vllm/v1/core/kv_cache_utils.py``: ``get_num_blocks`` and ``_report_kv_cache_config``), the
planner counts whole blocks: ``blocks = kv // (blockSize x bytes per token per GPU)``, ``tokens =
blocks x blockSize``, and sequences of ``maxModelLen`` that fit at once = ``blocks /
ceil(maxModelLen / blockSize)``. A replica *fits* when at least one such sequence fits.

Pipeline parallelism (``pipelineParallelSize`` stages of ``tensorParallelSize`` GPUs each) splits the
layers over the stages as vLLM does (``vllm/distributed/utils.py``, ``get_pp_indices``: the remainder
goes one layer each to the stages before the last), so the stage with the most layers,
``ceil(numLayers / stages)``, is the one planned (conservatively: it is assumed to also hold the
embedding or the LM head, which the first and last stage do): its weights are
those layers (``(parameterCount - 2 x vocabSize x hiddenSize) / numLayers`` each) plus one of the
embedding and the LM head (the first stage holds one, the last the other), divided over its
``tensorParallelSize`` GPUs; its KV bytes per token per GPU count only its layers, and vLLM takes the
smallest KV cache of all workers, which is this stage's. A replica of ``tensorParallelSize x
pipelineParallelSize`` GPUs that fits one node (``gpu.perNode``) is one pod; a larger one is a group
of ``GPUs / gpu.perNode`` pods on as many nodes (a LeaderWorkerSet), stages never straddling a node.
With one stage the plan is the formula above, unchanged.

With an explicit KV budget (``kv_budget_bytes``; vLLM on the CPU takes it from
``VLLM_CPU_KVCACHE_SPACE`` GiB) the weights and overhead are not subtracted, and the token count is
the one vLLM prints at start-up as ``KV cache size: N tokens``.

``spec.device: cpu`` plans host memory instead of GPUs: the KV budget is ``spec.cpu.kvCacheGiB``
(rendered as ``VLLM_CPU_KVCACHE_SPACE``), and weights + KV + the runtime (:data:`CPU_RUNTIME_BYTES`)
must fit the vLLM container's memory limit ``spec.cpu.memoryGiB``. The ``...PerGPU`` status fields
then describe the one CPU replica, and ``gpusPerReplica`` is 0.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from hermes_sidecar.errors import HermesError

from .spec import Architecture, CapacityStatus, PolicySpec

GiB = 1024**3

NON_TORCH_BYTES = 1 * GiB
NCCL_BYTES = GiB // 2
CUDA_GRAPH_BYTES = GiB // 2
ACTIVATION_TENSORS = 8
LOGITS_BYTES_PER_ELEMENT = 4

_DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}
# Resident memory of vLLM on the CPU besides weights and KV: the API server and the engine-core
# process, each with torch loaded. Measured in the operator's own pod on the real node
# (tests/e2e/test_real_pods.py records it): see docs/operator.md, "CPU profile".
CPU_RUNTIME_BYTES = 3 * GiB


@dataclass(frozen=True)
class Preset:
    """Architecture of a published model, from its Hugging Face ``config.json``."""

    numLayers: int
    numAttentionHeads: int
    numKVHeads: int
    headDim: int
    hiddenSize: int
    vocabSize: int
    parameterCount: int
    maxPositionEmbeddings: int
    dtype: str = "bfloat16"


_LLAMA31_8B = Preset(32, 32, 8, 128, 4096, 128256, 8_030_261_248, 131072)
_LLAMA31_70B = Preset(80, 64, 8, 128, 8192, 128256, 70_553_706_496, 131072)
_LLAMA31_405B = Preset(126, 128, 8, 128, 16384, 128256, 405_853_388_800, 131072)

# Keys are lower-case model names without the organisation; "-instruct" variants share the shape.
PRESETS: dict[str, Preset] = {
    "hermes-3-llama-3.1-8b": _LLAMA31_8B,
    "hermes-3-llama-3.1-70b": _LLAMA31_70B,
    "hermes-3-llama-3.1-405b": _LLAMA31_405B,
    "meta-llama-3.1-8b": _LLAMA31_8B,
    "meta-llama-3.1-70b": _LLAMA31_70B,
    "meta-llama-3.1-405b": _LLAMA31_405B,
    "llama-3.1-8b": _LLAMA31_8B,
    "llama-3.1-70b": _LLAMA31_70B,
    "llama-3.1-405b": _LLAMA31_405B,
    "qwen2.5-7b": Preset(28, 28, 4, 128, 3584, 152064, 7_615_616_512, 32768),
    "qwen2.5-72b": Preset(80, 64, 8, 128, 8192, 152064, 72_706_203_648, 32768),
    "mistral-7b-v0.3": Preset(32, 32, 8, 128, 4096, 32768, 7_248_023_552, 32768),
    "mixtral-8x7b-v0.1": Preset(32, 32, 8, 128, 4096, 32000, 46_702_792_704, 32768),
    # The tiny random-weight Llama the integration tests serve with vLLM on the CPU:
    # LlamaConfig(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2,
    # num_key_value_heads=1) -> head_dim 64, 512 KV bytes per token in bf16/fp16.
    "hermes-tiny-llama": Preset(2, 2, 1, 64, 128, 512, 426_624, 4096),
}
# scripts/vllm serves it as "tiny-llama" from the folder "tiny-llama-v1"
PRESETS["tiny-llama"] = PRESETS["tiny-llama-v1"] = PRESETS["hermes-tiny-llama"]


def preset_for(model_name: str) -> Preset | None:
    """Find the preset for ``org/Model-Name`` (case-insensitive; an ``-Instruct`` suffix is ignored)."""
    base = model_name.rsplit("/", 1)[-1].lower()
    for candidate in (base, base.removesuffix("-instruct")):
        if candidate in PRESETS:
            return PRESETS[candidate]
    # "Mistral-7B-Instruct-v0.3" style: the suffix sits before the version
    return PRESETS.get(base.replace("-instruct", ""))


class Capacity(CapacityStatus):
    """What one replica of a policy holds: ``status.capacity`` (:meth:`status`) and why, in words.

    ``reason`` is CamelCase, used as the CapacityOK condition's reason; ``message`` is its message.
    """

    message: str

    def status(self) -> dict[str, object]:
        return self.model_dump(exclude={"message"})


class ArchitectureError(HermesError, ValueError):
    """The model is unknown and ``spec.model.architecture`` does not fill the gaps."""


def resolve_architecture(spec: PolicySpec) -> Preset:
    """The preset for ``spec.model.name`` with every field ``spec.model.architecture`` sets overriding it."""
    preset = preset_for(spec.model.name)
    override = spec.model.architecture or Architecture()
    given = {k: v for k, v in override.model_dump().items() if v is not None}
    if preset is not None:
        base = asdict(preset)
    else:
        base = {"maxPositionEmbeddings": 0}
        missing = [
            f
            for f in (
                "numLayers",
                "numAttentionHeads",
                "numKVHeads",
                "headDim",
                "hiddenSize",
                "vocabSize",
                "parameterCount",
            )
            if f not in given
        ]
        if missing:
            raise ArchitectureError(
                f"spec.model.name {spec.model.name!r} has no built-in preset (known: "
                f"{', '.join(sorted(PRESETS))}); set spec.model.architecture.{{{', '.join(missing)}}}"
            )
    base.update(given)
    return Preset(**base)


def model_dtype(spec: PolicySpec, arch: Preset) -> str:
    return arch.dtype if spec.engine.dtype == "auto" else spec.engine.dtype


def kv_bytes_per_token(arch: Preset, kv_dtype_bytes: int) -> int:
    """2 (K and V) x layers x KV heads x head_dim x bytes: grouped-query attention counts KV heads."""
    return 2 * arch.numLayers * arch.numKVHeads * arch.headDim * kv_dtype_bytes


def kv_dtype_bytes(spec: PolicySpec, arch: Preset) -> int:
    if spec.engine.kvCacheDtype.startswith("fp8"):
        return 1
    return _DTYPE_BYTES[model_dtype(spec, arch)]


def overhead_bytes_per_gpu(spec: PolicySpec, arch: Preset) -> int:
    """Estimated non-weight, non-KV memory per GPU (model in the module docstring)."""
    tp = spec.engine.tensorParallelSize
    distributed = tp > 1 or spec.engine.pipelineParallelSize > 1
    dtype_bytes = _DTYPE_BYTES[model_dtype(spec, arch)]
    activations = spec.engine.maxNumBatchedTokens * arch.hiddenSize * ACTIVATION_TENSORS * dtype_bytes
    logits = spec.engine.maxNumSeqs * arch.vocabSize * LOGITS_BYTES_PER_ELEMENT
    return NON_TORCH_BYTES + (NCCL_BYTES if distributed else 0) + CUDA_GRAPH_BYTES + activations + logits


@dataclass(frozen=True)
class Group:
    """How one replica lays out: ``stages`` of ``tp`` GPUs over ``nodes`` pods of ``gpus_per_node``."""

    tp: int
    stages: int
    nodes: int
    gpus_per_node: int

    @property
    def gpus(self) -> int:
        return self.tp * self.stages

    @property
    def multi_node(self) -> bool:
        return self.nodes > 1


def replica_group(spec: PolicySpec) -> Group:
    """The replica's group: one pod when its GPUs fit one node (``gpu.perNode``), else whole nodes."""
    tp, pp = spec.engine.tensorParallelSize, spec.engine.pipelineParallelSize
    if spec.device == "cpu":
        return Group(tp, pp, 1, 0)
    gpus, per_node = tp * pp, spec.gpu.perNode
    if gpus <= per_node:
        return Group(tp, pp, 1, gpus)
    return Group(tp, pp, math.ceil(gpus / per_node), per_node)


def stage_layers(arch: Preset, stages: int) -> int:
    """Layers of the largest pipeline stage."""
    return math.ceil(arch.numLayers / stages)


def weights_bytes_per_gpu(spec: PolicySpec, arch: Preset, stages: int) -> int:
    """Weights on one GPU of the largest stage (module docstring); one stage: parameters / TP."""
    dtype_bytes = _DTYPE_BYTES[model_dtype(spec, arch)]
    tp = spec.engine.tensorParallelSize
    if stages == 1:
        return math.ceil(arch.parameterCount * dtype_bytes / tp)
    embedding = arch.vocabSize * arch.hiddenSize
    per_layer = max(arch.parameterCount - 2 * embedding, 0) / arch.numLayers
    stage = stage_layers(arch, stages) * per_layer + embedding
    return math.ceil(stage * dtype_bytes / tp)


def _gib(n: int) -> str:
    return f"{n / GiB:.2f} GiB"


def plan_capacity(spec: PolicySpec, kv_budget_bytes: int | None = None) -> Capacity:
    """Plan one replica of ``spec``. ``kv_budget_bytes`` replaces the GPU estimate (vLLM on the CPU)."""
    tp = spec.engine.tensorParallelSize
    block = spec.engine.blockSize
    max_len = spec.engine.maxModelLen
    try:
        arch = resolve_architecture(spec)
    except ArchitectureError as exc:
        return Capacity(
            fits=False, reason="UnknownModel", message=str(exc), kvBytesPerToken=0, kvBytesPerTokenPerGPU=0,
            gpusPerReplica=tp, budgetBytesPerGPU=0, weightsBytesPerGPU=0, overheadBytesPerGPU=0,
            kvCacheBytesPerGPU=0, kvCacheTokensPerReplica=0, maxConcurrentSequencesAtMaxLen=0.0,
        )  # fmt: skip

    group = replica_group(spec)
    stages = group.stages
    kv_bytes = kv_dtype_bytes(spec, arch)
    per_token = kv_bytes_per_token(arch, kv_bytes)
    kv_heads_per_gpu = max(1, arch.numKVHeads // tp)
    per_token_gpu = 2 * stage_layers(arch, stages) * kv_heads_per_gpu * arch.headDim * kv_bytes
    shape = {
        "pipelineStages": stages,
        "nodesPerReplica": group.nodes,
        "gpusPerNode": group.gpus_per_node,
    }

    def refuse(reason: str, message: str, **numbers: int) -> Capacity:
        base = {
            "budgetBytesPerGPU": 0,
            "weightsBytesPerGPU": 0,
            "overheadBytesPerGPU": 0,
            "kvCacheBytesPerGPU": 0,
        }
        base.update(numbers)
        return Capacity(
            fits=False, reason=reason, message=message, kvBytesPerToken=per_token,
            kvBytesPerTokenPerGPU=per_token_gpu, gpusPerReplica=0 if spec.device == "cpu" else group.gpus,
            **base, kvCacheTokensPerReplica=0, maxConcurrentSequencesAtMaxLen=0.0, **shape,
        )  # fmt: skip

    if arch.numAttentionHeads % tp:
        divisors = [d for d in range(1, 9) if arch.numAttentionHeads % d == 0]
        return refuse(
            "TensorParallelMismatch",
            f"spec.engine.tensorParallelSize {tp} does not divide the model's {arch.numAttentionHeads} "
            f"attention heads; use one of {divisors}",
        )
    if arch.numKVHeads >= tp and arch.numKVHeads % tp:
        return refuse(
            "TensorParallelMismatch",
            f"spec.engine.tensorParallelSize {tp} does not divide the model's {arch.numKVHeads} KV heads",
        )
    if stages > arch.numLayers:
        return refuse(
            "PipelineParallelMismatch",
            f"spec.engine.pipelineParallelSize {stages} is more than the model's {arch.numLayers} layers: "
            f"each stage needs at least one; use at most {arch.numLayers}",
        )
    if arch.maxPositionEmbeddings and max_len > arch.maxPositionEmbeddings:
        return refuse(
            "MaxModelLenTooLong",
            f"spec.engine.maxModelLen {max_len} exceeds the model's context of {arch.maxPositionEmbeddings} "
            f"tokens; use at most {arch.maxPositionEmbeddings}",
        )

    cpu = spec.device == "cpu"
    if cpu:
        budget = int(spec.cpu.memoryGiB * GiB)
        weights = math.ceil(arch.parameterCount * _DTYPE_BYTES[model_dtype(spec, arch)])
        overhead = CPU_RUNTIME_BYTES
        kv = spec.cpu.kvCacheGiB * GiB
        if weights + overhead + kv > budget:
            return refuse(
                "InsufficientMemory",
                f"needs {_gib(weights + overhead + kv)} of host memory per replica ({_gib(weights)} "
                f"weights + {_gib(overhead)} vLLM runtime + {_gib(kv)} spec.cpu.kvCacheGiB) but "
                f"spec.cpu.memoryGiB is {spec.cpu.memoryGiB:g}: raise spec.cpu.memoryGiB to at least "
                f"{math.ceil((weights + overhead + kv) / GiB)} or lower spec.cpu.kvCacheGiB",
                budgetBytesPerGPU=budget, weightsBytesPerGPU=weights, overheadBytesPerGPU=overhead,
                kvCacheBytesPerGPU=kv,
            )  # fmt: skip
    elif kv_budget_bytes is not None:
        budget, weights, overhead, kv = kv_budget_bytes, 0, 0, kv_budget_bytes
    else:
        budget = int(spec.gpu.memoryGiB * GiB * spec.engine.gpuMemoryUtilization)
        weights = weights_bytes_per_gpu(spec, arch, stages)
        overhead = overhead_bytes_per_gpu(spec, arch)
        kv = budget - weights - overhead

    numbers = {
        "budgetBytesPerGPU": budget,
        "weightsBytesPerGPU": weights,
        "overheadBytesPerGPU": overhead,
        "kvCacheBytesPerGPU": max(kv, 0),
    }
    blocks = max(kv, 0) // (block * per_token_gpu)
    tokens = blocks * block
    sequences = math.floor(blocks / math.ceil(max_len / block) * 100) / 100
    need_one = math.ceil(max_len / block) * block * per_token_gpu
    if sequences < 1 and cpu:
        return refuse(
            "InsufficientMemory",
            f"spec.cpu.kvCacheGiB {spec.cpu.kvCacheGiB} holds {tokens:,} tokens, less than one sequence "
            f"of spec.engine.maxModelLen {max_len}: raise spec.cpu.kvCacheGiB to "
            f"{math.ceil(need_one / GiB)} or lower spec.engine.maxModelLen",
            **numbers,
        )
    if sequences < 1:
        where = f" of stage 1 of {stages} ({stage_layers(arch, stages)} layers)" if stages > 1 else ""
        return refuse(
            "InsufficientMemory",
            f"needs {_gib(weights + overhead + need_one)} per GPU{where} ({_gib(weights)} weights + "
            f"{_gib(overhead)} overhead + {_gib(need_one)} KV cache for one sequence of "
            f"spec.engine.maxModelLen {max_len} tokens) "
            f"but has {_gib(budget)} ({spec.gpu.memoryGiB:g} GiB x gpuMemoryUtilization "
            f"{spec.engine.gpuMemoryUtilization:g}): {_what_would_fit(spec, arch)}",
            **numbers,
        )
    if cpu:
        where = "in host memory (spec.device cpu)"
    elif group.multi_node:
        where = (
            f"per GPU x {group.gpus} GPUs: {stages} stages of {tp} GPUs on {group.nodes} nodes of "
            f"{group.gpus_per_node} GPUs"
        )
    elif stages > 1:
        where = f"per GPU x {group.gpus} GPUs: {stages} stages of {tp} GPUs on one node"
    else:
        where = f"per GPU x {tp} GPU(s)"
    return Capacity(
        fits=True,
        reason="Fits",
        message=f"{tokens:,} KV tokens per replica: {sequences:.2f} sequences of {max_len:,} tokens at once "
        f"({_gib(max(kv, 0))} KV cache {where})",
        kvBytesPerToken=per_token,
        kvBytesPerTokenPerGPU=per_token_gpu,
        gpusPerReplica=0 if cpu else group.gpus,
        **numbers,
        kvCacheTokensPerReplica=tokens,
        maxConcurrentSequencesAtMaxLen=sequences,
        **shape,
    )


def _fits_one_sequence(spec: PolicySpec, arch: Preset, tp: int, stages: int) -> bool:
    """Whether ``tp`` GPUs x ``stages`` hold the weights and one maxModelLen sequence (per GPU)."""
    trial = spec.model_copy(
        update={
            "engine": spec.engine.model_copy(
                update={"tensorParallelSize": tp, "pipelineParallelSize": stages}
            )
        }
    )
    budget = int(spec.gpu.memoryGiB * GiB * spec.engine.gpuMemoryUtilization)
    kv = budget - weights_bytes_per_gpu(trial, arch, stages) - overhead_bytes_per_gpu(trial, arch)
    kv_bytes = kv_dtype_bytes(spec, arch)
    per_token_gpu = 2 * stage_layers(arch, stages) * max(1, arch.numKVHeads // tp) * arch.headDim * kv_bytes
    blocks_one = math.ceil(spec.engine.maxModelLen / spec.engine.blockSize)
    return kv >= blocks_one * spec.engine.blockSize * per_token_gpu


def _what_would_fit(spec: PolicySpec, arch: Preset) -> str:
    """The advice of an InsufficientMemory refusal: the smallest layout that fits, in spec fields.

    Tensor parallelism first (up to one node's GPUs, dividing the attention heads), then pipeline
    stages of a whole node each: the layout vLLM's multi-node guide recommends.
    """
    per_node = spec.gpu.perNode
    tps = [t for t in range(1, per_node + 1) if per_node % t == 0 and arch.numAttentionHeads % t == 0]
    tps = [t for t in tps if arch.numKVHeads < t or arch.numKVHeads % t == 0]
    for tp in tps:
        if tp >= spec.engine.tensorParallelSize and _fits_one_sequence(spec, arch, tp, 1):
            return (
                f"raise spec.engine.tensorParallelSize to {tp}, lower spec.engine.maxModelLen or set "
                f"spec.engine.kvCacheDtype to fp8"
            )
    tp = max(tps)
    for stages in range(2, arch.numLayers + 1):
        gpus = tp * stages
        if gpus > per_node and gpus % per_node:
            continue
        if _fits_one_sequence(spec, arch, tp, stages):
            nodes = math.ceil(gpus / per_node)
            return (
                f"set spec.engine.tensorParallelSize {tp} and spec.engine.pipelineParallelSize {stages} "
                f"({gpus} GPUs on {nodes} node(s) of spec.gpu.perNode {per_node}), lower "
                f"spec.engine.maxModelLen or set spec.engine.kvCacheDtype to fp8"
            )
    return (
        f"no layout of {per_node}-GPU nodes holds it: lower spec.engine.maxModelLen, set "
        f"spec.engine.kvCacheDtype to fp8 or use GPUs with more memory"
    )
