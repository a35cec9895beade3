"""Typed model of a HermesCachePolicy, kept equal to ``crds/hermescachepolicy.yaml`` by a test.

The CRD is the source of truth. This module mirrors it twice:

* the pydantic models carry the same fields, types, defaults, enums and OpenAPI bounds
  (``tests/unit/test_crd.py`` walks both and fails on any difference);
* :data:`RULES` carries one Python counterpart for every CEL ``x-kubernetes-validations`` rule, with
  the *same message*, so ``hermes-cache plan`` refuses a file exactly where the API server would
  (``tests/unit/test_crd.py`` checks every CEL message has a counterpart here and vice versa).

:func:`parse_policy` is the only way in: it returns a :class:`Policy` or raises :class:`SpecError`
whose lines name the field path, the value and the rule that was broken.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hermes_sidecar.errors import HermesError

GROUP = "hermes-cache.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "HermesCachePolicy"
PLURAL = "hermescachepolicies"

DEFAULT_VLLM_IMAGE = "vllm/vllm-openai:v0.33.0"
# Empty: the sidecar runs the operator's own image (``hermes-cache run --sidecar-image``, which the
# chart sets to ``operator.image``), so the two always come from one build.
DEFAULT_SIDECAR_IMAGE = ""
# A Kubernetes object name (RFC 1123 subdomain), e.g. a PersistentVolumeClaim.
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
# A folder inside a volume: relative, and no '..' segment that would leave the volume.
VOLUME_PATH_PATTERN = r"^$|^[^/](.*[^/])?$"

# vLLM flags whose value the operator derives from spec fields (or that vLLM removed). extraArgs may
# not set them: two sources for one setting is how a cluster ends up running something nobody wrote
# down. vLLM accepts '_' for '-' in flag names, so the pattern does too. The CRD embeds
# OWNED_FLAGS_PATTERN verbatim (a test keeps them equal).
OWNED_FLAGS: dict[str, str] = {
    "--model": "spec.model.name",
    "--served-model-name": "spec.model.servedName",
    "--host": "(vLLM listens on the pod's loopback, behind the sidecar)",
    "--port": "(vLLM listens on the pod's loopback, behind the sidecar)",
    "--uds": "(vLLM listens on the pod's loopback, behind the sidecar)",
    "--tensor-parallel-size": "spec.engine.tensorParallelSize",
    "-tp": "spec.engine.tensorParallelSize",
    "--pipeline-parallel-size": "spec.engine.pipelineParallelSize",
    "-pp": "spec.engine.pipelineParallelSize",
    "--distributed-executor-backend": "(mp: vLLM's native multi-node mode, spec.engine.pipelineParallelSize)",
    "--nnodes": "(the nodes of a group, from spec.engine.pipelineParallelSize and spec.gpu.perNode)",
    "--node-rank": "(each pod's LWS_WORKER_INDEX in a LeaderWorkerSet group)",
    "--master-addr": "(the group leader's LWS_LEADER_ADDRESS)",
    "--master-port": "(fixed for a LeaderWorkerSet group)",
    "--headless": "(set on the workers of a LeaderWorkerSet group)",
    "--gpu-memory-utilization": "spec.engine.gpuMemoryUtilization",
    "--max-model-len": "spec.engine.maxModelLen",
    "--max-num-seqs": "spec.engine.maxNumSeqs",
    "--max-num-batched-tokens": "spec.engine.maxNumBatchedTokens",
    "--block-size": "spec.engine.blockSize",
    "--kv-cache-dtype": "spec.engine.kvCacheDtype",
    "--dtype": "spec.engine.dtype",
    "--enable-prefix-caching": "spec.engine.prefixCaching",
    "--no-enable-prefix-caching": "spec.engine.prefixCaching",
    "--prefix-caching-hash-algo": "(fixed to sha256 so every pod hashes prefixes alike)",
    "--kv-offloading-size": "spec.engine.kvOffloadGiB",
    "--kv-offloading-backend": "spec.engine.kvOffloadGiB",
    "--shutdown-timeout": "spec.engine.shutdownTimeoutSeconds",
    "--swap-space": "(removed from vLLM; use spec.engine.kvOffloadGiB for CPU KV offload)",
}


def _flag_regex(flag: str) -> str:
    dashes = len(flag) - len(flag.lstrip("-"))
    return flag[:dashes] + flag[dashes:].replace("-", "[-_]")


OWNED_FLAGS_PATTERN = "^(" + "|".join(_flag_regex(f) for f in OWNED_FLAGS) + ")(=.*)?$"
_OWNED_RE = re.compile(OWNED_FLAGS_PATTERN)
CACHE_VERSION_PATTERN = "^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
# A Redis URL carrying a password: redis://[user]:secret@host or unix:///path?password=secret.
URL_PASSWORD_PATTERN = "^[a-z]+://([^/@]*:[^/@]*@|[^?]*[?](.*&)?password=)"


def redact(url: str) -> str:
    """``redis://user:secret@host`` -> ``redis://user:***@host``: URLs end up in events and logs."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if at:
        user = creds.split(":", 1)[0]
        url = f"{scheme}{sep}{user}:***@{host}"
    return re.sub(r"([?&]password=)[^&]*", r"\1***", url)


class _Spec(BaseModel):
    # Unknown keys are refused: the API server prunes them silently, `plan` tells the user instead.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Architecture(_Spec):
    """Model shape for the capacity planner; each field overrides the built-in preset's value."""

    numLayers: int | None = Field(default=None, ge=1, le=1024)
    numAttentionHeads: int | None = Field(default=None, ge=1, le=4096)
    numKVHeads: int | None = Field(default=None, ge=1, le=4096)
    headDim: int | None = Field(default=None, ge=1, le=4096)
    hiddenSize: int | None = Field(default=None, ge=1, le=1048576)
    vocabSize: int | None = Field(default=None, ge=1, le=16777216)
    parameterCount: int | None = Field(default=None, ge=1)
    maxPositionEmbeddings: int | None = Field(default=None, ge=1)


class ModelStorage(_Spec):
    """Weights from a PersistentVolumeClaim, filled once and mounted read-only by every replica."""

    claimName: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
    # Folder in the volume that holds config.json and the weights; empty means spec.model.name.
    path: str = Field(default="", max_length=512, pattern=VOLUME_PATH_PATTERN)


class ModelSpec(_Spec):
    name: str = Field(min_length=1, max_length=253)
    servedName: str = Field(default="", max_length=253)
    hfTokenSecret: str = Field(default="", max_length=253)
    architecture: Architecture | None = None
    storage: ModelStorage | None = None


class EngineSpec(_Spec):
    image: str = Field(default=DEFAULT_VLLM_IMAGE, min_length=1, max_length=512)
    tensorParallelSize: int = 1
    # Stages of tensorParallelSize GPUs each; stages beyond one node (spec.gpu.perNode) run on further
    # nodes of a LeaderWorkerSet group.
    pipelineParallelSize: int = Field(default=1, ge=1, le=64)
    gpuMemoryUtilization: float = 0.9
    maxModelLen: int = Field(default=8192, ge=1)
    maxNumSeqs: int = Field(default=256, ge=1)
    maxNumBatchedTokens: int = Field(default=8192, ge=1)
    blockSize: Literal[8, 16, 32, 64, 128] = 16
    kvCacheDtype: Literal["auto", "fp8", "fp8_e4m3", "fp8_e5m2"] = "auto"
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    prefixCaching: bool = True
    kvOffloadGiB: float = Field(default=0.0, ge=0)
    shutdownTimeoutSeconds: int = Field(default=60, ge=0, le=3600)
    extraArgs: list[str] = Field(default_factory=list, max_length=32)


class Toleration(_Spec):
    key: str = Field(default="", max_length=316)
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str = Field(default="", max_length=63)
    effect: Literal["", "NoSchedule", "PreferNoSchedule", "NoExecute"] = ""


class GPUSpec(_Spec):
    resource: str = Field(default="nvidia.com/gpu", min_length=1, max_length=253)
    memoryGiB: float = 80.0
    # GPUs of one node: tensor parallelism stays within it, a group of more GPUs spans whole nodes.
    perNode: int = Field(default=8, ge=1, le=64)
    nodeSelector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list, max_length=16)


class CPUSpec(_Spec):
    """Resources of a replica when ``spec.device`` is ``cpu``: vLLM on host memory, no GPU requested."""

    cores: float = 1.0
    memoryGiB: float = 6.0
    kvCacheGiB: int = Field(default=1, ge=1, le=4096)
    nodeSelector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list, max_length=16)


class AutoscalingSpec(_Spec):
    enabled: bool = False
    minReplicas: int = Field(default=1, ge=1)
    maxReplicas: int = Field(default=4, ge=1)
    metric: Literal["queue", "kvCacheUsage"] = "queue"
    target: float = 5.0


class SecretKeyRef(_Spec):
    name: str = Field(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    key: str = Field(default="password", min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")


class RedisSpec(_Spec):
    url: str = Field(min_length=1, max_length=512)
    passwordSecretRef: SecretKeyRef | None = None


class EmbeddingSpec(_Spec):
    provider: Literal["local", "openai"] = "local"
    model: str = Field(default="", max_length=253)
    url: str = Field(default="", max_length=512)


class ApiKeySecretRef(_Spec):
    name: str = Field(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    key: str = Field(default="api-key", min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")


GuardRuleName = Literal["negation", "number", "date", "direction", "entity", "scope", "edit"]


class VerifierSpec(_Spec):
    """A pairwise model that confirms semantic candidates: a cross-encoder behind a rerank endpoint
    (kind rerank), or the policy's own model asked a yes/no question (kind served-model).

    Rendered into the sidecar's ``cache.guard.verifier``; the fields keep the sidecar's names.
    """

    kind: Literal["rerank", "served-model"] = "rerank"
    # rerank: required; served-model: default the pod's own vLLM on loopback
    url: str | None = Field(default=None, min_length=1, max_length=512)
    # rerank: required; served-model: default the policy's served model name
    model: str | None = Field(default=None, min_length=1, max_length=253)
    minScore: float = 0.5
    minSimilarity: float = 0.7
    # uncertain | all; unset: the sidecar's default for the kind (rerank all, served-model uncertain)
    scope: Literal["uncertain", "all"] | None = None
    timeoutSeconds: float = 1.0
    onError: Literal["threshold", "miss"] = "threshold"
    # guard rules whose veto the verifier may overturn (the sidecar's GuardRule names)
    overrule: list[GuardRuleName] = Field(default_factory=list, max_length=7)
    # the score a candidate an overruled rule refused needs; unset: minScore
    overruleMinScore: float | None = None
    apiKeySecretRef: ApiKeySecretRef | None = None


class DecaySpec(_Spec):
    """Similarity decay: the similarity an entry needs rises with its age (the sidecar's cache.decay)."""

    mode: Literal["off", "halfLife", "linear"]
    halfLifeSeconds: int | None = Field(default=None, ge=1)
    rampSeconds: int | None = Field(default=None, ge=1)
    ceiling: float = 0.98
    exact: bool = False


class ToolPlansSpec(_Spec):
    """Partial caching of live-data questions for tool-using agents (the sidecar's cache.toolPlans)."""

    enabled: bool = True
    semantic: bool = True
    similarityThreshold: float | None = None


class SemanticCacheSpec(_Spec):
    enabled: bool = True
    redis: RedisSpec | None = None
    similarityThreshold: float = 0.85
    ttlSeconds: int = Field(default=3600, ge=1)
    maxEntries: int = Field(default=100000, ge=1)
    storeTruncated: bool = False
    tenantHeader: str = Field(default="x-tenant-id", min_length=1, max_length=128)
    embedding: EmbeddingSpec = Field(default_factory=EmbeddingSpec)
    verifier: VerifierSpec | None = None
    decay: DecaySpec | None = None
    toolPlans: ToolPlansSpec | None = None


class SidecarSpec(_Spec):
    image: str = Field(default=DEFAULT_SIDECAR_IMAGE, max_length=512)
    port: int = Field(default=8080, ge=1024, le=65535)


TENANT_ID_RE = re.compile(r"^(h:.+|c:.+|anonymous)$")
VARIANT_NAME_PATTERN = "^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$"
TRUST_GROUP_NAME_PATTERN = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class TrustGroupSpec(_Spec):
    name: str = Field(min_length=1, max_length=63, pattern=TRUST_GROUP_NAME_PATTERN)
    # tenant ids as the sidecar sees them: h:<tenant header value>, c:<credential hash>, anonymous
    tenants: list[str] = Field(min_length=1, max_length=64)


class TenancySpec(_Spec):
    """Trust groups: their members share vLLM's cache_salt (rendered into the sidecar's ``tenancy``)."""

    trustGroups: list[TrustGroupSpec] = Field(default_factory=list, max_length=8)


class VariantAssignment(_Spec):
    tenant: str = Field(min_length=1, max_length=128)
    variant: str = Field(min_length=1, max_length=63)


class ExperimentSpec(_Spec):
    """A/B variants: each has its own cache partition and salt (rendered into the sidecar's
    ``experiment``)."""

    header: str = Field(default="", max_length=128)
    variants: list[str] = Field(default_factory=list, max_length=16)
    assignments: list[VariantAssignment] = Field(default_factory=list, max_length=64)


# The Endpoint Picker of the Gateway API Inference Extension, pinned with scripts/k8s/versions.env
# (GIE_VERSION): the last release whose cmd/epp scores endpoints (docs/routing.md says why).
DEFAULT_EPP_IMAGE = "registry.k8s.io/gateway-api-inference-extension/epp:v1.5.0"


class RoutingWeights(_Spec):
    """Weights of the EPP's scorers (upstream's defaults: 2/2/3, so a full prefix match outweighs
    the shortest queue)."""

    queue: int = Field(default=2, ge=0, le=100)
    kvCacheUtilization: int = Field(default=2, ge=0, le=100)
    prefixCache: int = Field(default=3, ge=0, le=100)


class EndpointPickerSpec(_Spec):
    image: str = Field(default=DEFAULT_EPP_IMAGE, min_length=1, max_length=512)
    # How often the EPP reads each pod's vLLM metrics (through the sidecar); upstream's default 50 ms.
    metricsIntervalMilliseconds: int = Field(default=50, ge=10, le=10000)


class GatewayRef(_Spec):
    """The Gateway (gateway.networking.k8s.io) whose HTTPRoute sends requests to the InferencePool."""

    name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
    namespace: str = Field(default="", max_length=63)
    sectionName: str = Field(default="", max_length=253)


class RoutingSpec(_Spec):
    """Prefix-aware routing across replicas: an InferencePool and its Endpoint Picker (docs/routing.md)."""

    enabled: bool = False
    failureMode: Literal["FailOpen", "FailClose"] = "FailOpen"
    endpointPicker: EndpointPickerSpec = Field(default_factory=EndpointPickerSpec)
    weights: RoutingWeights = Field(default_factory=RoutingWeights)
    gateway: GatewayRef | None = None


class PolicySpec(_Spec):
    model: ModelSpec
    device: Literal["gpu", "cpu"] = "gpu"
    engine: EngineSpec = Field(default_factory=EngineSpec)
    gpu: GPUSpec = Field(default_factory=GPUSpec)
    cpu: CPUSpec = Field(default_factory=CPUSpec)
    replicas: int = 1
    autoscaling: AutoscalingSpec = Field(default_factory=AutoscalingSpec)
    semanticCache: SemanticCacheSpec = Field(default_factory=SemanticCacheSpec)
    sidecar: SidecarSpec = Field(default_factory=SidecarSpec)
    tenancy: TenancySpec = Field(default_factory=TenancySpec)
    experiment: ExperimentSpec = Field(default_factory=ExperimentSpec)
    cacheVersion: str = Field(default="v1", min_length=1, max_length=63)
    routing: RoutingSpec = Field(default_factory=RoutingSpec)


# Status models: what the operator writes (kept equal to the CRD's status schema by the same test).


class Condition(_Spec):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    observedGeneration: int = 0
    lastTransitionTime: str


class CapacityStatus(_Spec):
    fits: bool
    reason: str
    kvBytesPerToken: int
    kvBytesPerTokenPerGPU: int
    gpusPerReplica: int
    budgetBytesPerGPU: int
    weightsBytesPerGPU: int
    overheadBytesPerGPU: int
    kvCacheBytesPerGPU: int
    kvCacheTokensPerReplica: int
    maxConcurrentSequencesAtMaxLen: float
    # The group one replica is: pipeline stages over nodes of gpusPerNode GPUs (1 node: a Deployment).
    pipelineStages: int = 1
    nodesPerReplica: int = 1
    gpusPerNode: int = 0


class SemanticCacheStatus(_Spec):
    hitRate: str = ""
    requests: int = 0
    entries: int = 0


class PolicyStatus(_Spec):
    observedGeneration: int = 0
    conditions: list[Condition] = Field(default_factory=list)
    replicas: int = 0
    readyReplicas: int = 0
    selector: str = ""
    cacheVersion: str = ""
    cacheVersionSwitchedAt: str = ""
    capacity: CapacityStatus | None = None
    semanticCache: SemanticCacheStatus | None = None


@dataclass(frozen=True)
class Policy:
    """A parsed policy: its identity plus the validated spec."""

    name: str
    namespace: str
    spec: PolicySpec
    uid: str = ""
    generation: int = 0


@dataclass(frozen=True)
class Rule:
    """Python counterpart of one CEL rule: same field path, same message, same verdict."""

    path: str
    message: str
    ok: Callable[[PolicySpec], bool]
    value: Callable[[PolicySpec], object]


def _verifier_rule(
    message: str, ok: Callable[[VerifierSpec], bool], value: Callable[[VerifierSpec], object]
) -> Rule:
    """A rule on spec.semanticCache.verifier as a whole, which holds when there is no verifier."""
    return Rule(
        "spec.semanticCache.verifier",
        message,
        lambda s: s.semanticCache.verifier is None or ok(s.semanticCache.verifier),
        lambda s: value(s.semanticCache.verifier) if s.semanticCache.verifier else None,
    )


def _owned_flags_in(args: list[str]) -> list[str]:
    return [a for a in args if _OWNED_RE.match(a)]


def _tenants_in_two_groups(s: PolicySpec) -> list[str]:
    seen: dict[str, str] = {}
    twice: list[str] = []
    for g in s.tenancy.trustGroups:
        for t in dict.fromkeys(g.tenants):
            if t in seen and seen[t] != g.name and t not in twice:
                twice.append(t)
            seen.setdefault(t, g.name)
    return twice


def _variant_name_ok(v: str) -> bool:
    return re.fullmatch(VARIANT_NAME_PATTERN, v) is not None and v not in ("default", "unknown")


RULES: tuple[Rule, ...] = (
    Rule(
        "spec.engine.tensorParallelSize",
        "spec.engine.tensorParallelSize must be between 1 and 8 (GPUs of one node): tensor parallelism "
        "stays within a node; span nodes with spec.engine.pipelineParallelSize",
        lambda s: 1 <= s.engine.tensorParallelSize <= 8,
        lambda s: s.engine.tensorParallelSize,
    ),
    Rule(
        "spec.engine.gpuMemoryUtilization",
        "spec.engine.gpuMemoryUtilization must be in (0, 1]: the share of each GPU's memory vLLM may use, "
        "for example 0.9",
        lambda s: 0 < s.engine.gpuMemoryUtilization <= 1,
        lambda s: s.engine.gpuMemoryUtilization,
    ),
    Rule(
        "spec.engine",
        "spec.engine.maxModelLen must be >= spec.engine.blockSize (one KV block holds blockSize tokens)",
        lambda s: s.engine.maxModelLen >= s.engine.blockSize,
        lambda s: s.engine.maxModelLen,
    ),
    Rule(
        "spec.engine.extraArgs",
        "spec.engine.extraArgs may not set flags the operator owns (--model, --served-model-name, --host, "
        "--port, --tensor-parallel-size, --gpu-memory-utilization, --max-model-len, --max-num-seqs, "
        "--block-size, --kv-cache-dtype, --dtype, --enable-prefix-caching, --kv-offloading-size, "
        "--shutdown-timeout, ...) or removed ones (--swap-space): set the matching spec.engine field",
        lambda s: not _owned_flags_in(s.engine.extraArgs),
        lambda s: _owned_flags_in(s.engine.extraArgs),
    ),
    Rule(
        "spec.gpu.memoryGiB",
        "spec.gpu.memoryGiB must be > 0: the memory of one GPU in GiB, for example 80 for an H100 80GB",
        lambda s: s.gpu.memoryGiB > 0,
        lambda s: s.gpu.memoryGiB,
    ),
    Rule(
        "spec.cpu.cores",
        "spec.cpu.cores must be > 0: the CPU cores one replica requests, for example 2 or 0.5",
        lambda s: s.cpu.cores > 0,
        lambda s: s.cpu.cores,
    ),
    Rule(
        "spec.cpu.memoryGiB",
        "spec.cpu.memoryGiB must be > 0: the memory limit of one replica's vLLM container in GiB, "
        "for example 6",
        lambda s: s.cpu.memoryGiB > 0,
        lambda s: s.cpu.memoryGiB,
    ),
    Rule(
        "spec.engine.tensorParallelSize",
        "spec.engine.tensorParallelSize must be 1 when spec.device is cpu: a CPU replica is one vLLM "
        "process; add replicas instead",
        lambda s: s.device != "cpu" or s.engine.tensorParallelSize == 1,
        lambda s: s.engine.tensorParallelSize,
    ),
    Rule(
        "spec.engine.pipelineParallelSize",
        "spec.engine.pipelineParallelSize must be 1 when spec.device is cpu: a CPU replica is one vLLM "
        "process; add replicas instead",
        lambda s: s.device != "cpu" or s.engine.pipelineParallelSize == 1,
        lambda s: s.engine.pipelineParallelSize,
    ),
    Rule(
        "spec.engine.tensorParallelSize",
        "spec.engine.tensorParallelSize must divide spec.gpu.perNode when a replica spans nodes: tensor "
        "parallelism stays within a node, and each node holds whole stages (on 8-GPU nodes: 1, 2, 4 or 8)",
        lambda s: (
            s.device == "cpu"
            or s.engine.tensorParallelSize * s.engine.pipelineParallelSize <= s.gpu.perNode
            or s.gpu.perNode % s.engine.tensorParallelSize == 0
        ),
        lambda s: (s.engine.tensorParallelSize, s.gpu.perNode),
    ),
    Rule(
        "spec.engine.pipelineParallelSize",
        "spec.engine.tensorParallelSize x spec.engine.pipelineParallelSize must fit one node "
        "(spec.gpu.perNode GPUs) or fill whole nodes: a multiple of spec.gpu.perNode, for example "
        "tensorParallelSize 8 x pipelineParallelSize 2 on 8-GPU nodes",
        lambda s: (
            s.device == "cpu"
            or s.engine.tensorParallelSize * s.engine.pipelineParallelSize <= s.gpu.perNode
            or s.engine.tensorParallelSize * s.engine.pipelineParallelSize % s.gpu.perNode == 0
        ),
        lambda s: (s.engine.tensorParallelSize, s.engine.pipelineParallelSize, s.gpu.perNode),
    ),
    Rule(
        "spec.engine.kvOffloadGiB",
        "spec.engine.kvOffloadGiB must be 0 when spec.device is cpu: the KV cache is already in host "
        "memory (size it with spec.cpu.kvCacheGiB)",
        lambda s: s.device != "cpu" or s.engine.kvOffloadGiB == 0,
        lambda s: s.engine.kvOffloadGiB,
    ),
    Rule(
        "spec.engine.image",
        f"spec.engine.image must name a CPU build of vLLM when spec.device is cpu: the default "
        f"{DEFAULT_VLLM_IMAGE} needs a GPU; build one with `make image-vllm` (docs/images.md)",
        lambda s: s.device != "cpu" or s.engine.image != DEFAULT_VLLM_IMAGE,
        lambda s: s.engine.image,
    ),
    Rule(
        "spec.engine.blockSize",
        "spec.engine.blockSize must be a multiple of 32 when spec.device is cpu: vLLM's CPU attention "
        "kernel refuses smaller blocks ('No common block size for 16'); set 32, 64 or 128",
        lambda s: s.device != "cpu" or s.engine.blockSize % 32 == 0,
        lambda s: s.engine.blockSize,
    ),
    Rule(
        "spec.model.storage.path",
        "spec.model.storage.path must stay inside the volume: a relative folder with no '..' segment, "
        "for example models/hermes-3-8b",
        lambda s: s.model.storage is None or ".." not in s.model.storage.path.split("/"),
        lambda s: s.model.storage.path if s.model.storage else None,
    ),
    Rule(
        "spec.replicas",
        "spec.replicas must be >= 0",
        lambda s: s.replicas >= 0,
        lambda s: s.replicas,
    ),
    Rule(
        "spec.autoscaling",
        "spec.autoscaling.minReplicas must be <= spec.autoscaling.maxReplicas",
        lambda s: s.autoscaling.minReplicas <= s.autoscaling.maxReplicas,
        lambda s: (s.autoscaling.minReplicas, s.autoscaling.maxReplicas),
    ),
    Rule(
        "spec.autoscaling.target",
        "spec.autoscaling.target must be > 0: waiting requests per pod (metric queue, e.g. 5) or a "
        "KV-cache usage fraction (metric kvCacheUsage, e.g. 0.8)",
        lambda s: s.autoscaling.target > 0,
        lambda s: s.autoscaling.target,
    ),
    Rule(
        "spec.autoscaling",
        "spec.autoscaling.target must be in (0, 1] when spec.autoscaling.metric is kvCacheUsage, "
        "for example 0.8",
        lambda s: s.autoscaling.metric != "kvCacheUsage" or 0 < s.autoscaling.target <= 1,
        lambda s: s.autoscaling.target,
    ),
    Rule(
        "spec.semanticCache.similarityThreshold",
        "spec.semanticCache.similarityThreshold must be in (0, 1]: the cosine similarity a cached "
        "answer needs, for example 0.85",
        lambda s: 0 < s.semanticCache.similarityThreshold <= 1,
        lambda s: s.semanticCache.similarityThreshold,
    ),
    Rule(
        "spec.semanticCache.redis.url",
        "spec.semanticCache.redis.url must start with redis://, rediss:// or unix://",
        lambda s: (
            s.semanticCache.redis is None
            or s.semanticCache.redis.url.startswith(("redis://", "rediss://", "unix://"))
        ),
        lambda s: redact(s.semanticCache.redis.url) if s.semanticCache.redis else None,
    ),
    Rule(
        "spec.semanticCache.redis",
        "spec.semanticCache.redis: the password is given twice, in url and in passwordSecretRef; keep it "
        "only in the Secret, for example url: redis://redis.cache.svc:6379/0",
        lambda s: (
            s.semanticCache.redis is None
            or s.semanticCache.redis.passwordSecretRef is None
            or re.search(URL_PASSWORD_PATTERN, s.semanticCache.redis.url) is None
        ),
        lambda s: redact(s.semanticCache.redis.url) if s.semanticCache.redis else None,
    ),
    Rule(
        "spec.semanticCache",
        "spec.semanticCache.verifier.minSimilarity must be <= spec.semanticCache.similarityThreshold: "
        "the verifier is asked about candidates from minSimilarity up, so a higher value would check "
        "fewer candidates than the threshold alone serves; lower it, for example to 0.7",
        lambda s: (
            s.semanticCache.verifier is None
            or s.semanticCache.verifier.minSimilarity <= s.semanticCache.similarityThreshold
        ),
        lambda s: (
            (s.semanticCache.verifier.minSimilarity, s.semanticCache.similarityThreshold)
            if s.semanticCache.verifier
            else None
        ),
    ),
    Rule(
        "spec.semanticCache.verifier.url",
        "spec.semanticCache.verifier.url must start with http:// or https://: the base URL of a rerank "
        "endpoint, for example http://verifier.ml.svc:8000",
        lambda s: (
            s.semanticCache.verifier is None
            or s.semanticCache.verifier.url is None
            or s.semanticCache.verifier.url.startswith(("http://", "https://"))
        ),
        lambda s: redact(s.semanticCache.verifier.url or "") if s.semanticCache.verifier else None,
    ),
    _verifier_rule(
        "spec.semanticCache.verifier.kind rerank needs url and model (a rerank endpoint and the "
        "cross-encoder it serves, for example http://verifier.ml.svc:8000 and BAAI/bge-reranker-v2-m3); "
        "kind served-model asks the policy's own model and needs neither",
        lambda v: v.kind == "served-model" or (v.url is not None and v.model is not None),
        lambda v: (v.kind, v.url, v.model),
    ),
    _verifier_rule(
        "spec.semanticCache.verifier.overruleMinScore must be >= minScore: overturning a guard rule's veto "
        "needs at least the confidence that confirming a candidate the rules passed does; raise it, for "
        "example to 0.99, or leave it unset to use minScore",
        lambda v: v.overruleMinScore is None or v.overruleMinScore >= v.minScore,
        lambda v: (v.overruleMinScore, v.minScore),
    ),
    _verifier_rule(
        "spec.semanticCache.verifier.overruleMinScore needs overrule: it is the score a candidate refused by "
        "an overruled rule must reach; name the rules in overrule, for example [number, date, scope], or "
        "drop overruleMinScore",
        lambda v: v.overruleMinScore is None or len(v.overrule) > 0,
        lambda v: (v.overruleMinScore, v.overrule),
    ),
    Rule(
        "spec.semanticCache.verifier.minSimilarity",
        "spec.semanticCache.verifier.minSimilarity must be in (0, 1]: the cosine similarity from which "
        "candidates go to the verifier, for example 0.7",
        lambda s: s.semanticCache.verifier is None or 0 < s.semanticCache.verifier.minSimilarity <= 1,
        lambda s: s.semanticCache.verifier.minSimilarity if s.semanticCache.verifier else None,
    ),
    Rule(
        "spec.semanticCache.verifier.timeoutSeconds",
        "spec.semanticCache.verifier.timeoutSeconds must be > 0: how long a semantic hit may wait for "
        "the verifier, for example 1",
        lambda s: s.semanticCache.verifier is None or s.semanticCache.verifier.timeoutSeconds > 0,
        lambda s: s.semanticCache.verifier.timeoutSeconds if s.semanticCache.verifier else None,
    ),
    Rule(
        "spec.tenancy.trustGroups",
        "spec.tenancy.trustGroups: each group needs a name of its own; merge the groups that share a name",
        lambda s: len({g.name for g in s.tenancy.trustGroups}) == len(s.tenancy.trustGroups),
        lambda s: [g.name for g in s.tenancy.trustGroups],
    ),
    Rule(
        "spec.tenancy.trustGroups",
        "spec.tenancy.trustGroups: a tenant may be in one trust group at most; merge the groups whose "
        "members all trust each other, or take the tenant out of one of them",
        lambda s: not _tenants_in_two_groups(s),
        _tenants_in_two_groups,
    ),
    Rule(
        "spec.tenancy.trustGroups.tenants",
        "spec.tenancy.trustGroups.tenants must be tenant ids as the sidecar sees them: h:<tenant header "
        "value>, c:<credential hash> or anonymous, for example h:acme",
        lambda s: all(TENANT_ID_RE.match(t) for g in s.tenancy.trustGroups for t in g.tenants),
        lambda s: [t for g in s.tenancy.trustGroups for t in g.tenants if not TENANT_ID_RE.match(t)],
    ),
    Rule(
        "spec.experiment.header",
        "spec.experiment.header needs spec.experiment.variants: the names the header's values may take "
        "(other values pass through uncached), for example [control, candidate]",
        lambda s: s.experiment.header == "" or len(s.experiment.variants) > 0,
        lambda s: s.experiment.header,
    ),
    Rule(
        "spec.experiment.assignments",
        "spec.experiment.assignments must name variants listed in spec.experiment.variants",
        lambda s: all(a.variant in s.experiment.variants for a in s.experiment.assignments),
        lambda s: [a.variant for a in s.experiment.assignments if a.variant not in s.experiment.variants],
    ),
    Rule(
        "spec.experiment.variants",
        "spec.experiment.variants must be label-like names: lower-case letters, digits, '-', '_' or '.', "
        "not 'default' or 'unknown' (the metric's names for no variant and for a value outside the "
        "list), for example candidate",
        lambda s: all(_variant_name_ok(v) for v in s.experiment.variants),
        lambda s: [v for v in s.experiment.variants if not _variant_name_ok(v)],
    ),
    Rule(
        "spec.experiment.assignments.tenant",
        "spec.experiment.assignments.tenant must be a tenant id as the sidecar sees it: h:<tenant header "
        "value>, c:<credential hash> or anonymous, for example h:acme",
        lambda s: all(TENANT_ID_RE.match(a.tenant) for a in s.experiment.assignments),
        lambda s: [a.tenant for a in s.experiment.assignments if not TENANT_ID_RE.match(a.tenant)],
    ),
    Rule(
        "spec.semanticCache",
        "spec.semanticCache.decay.ceiling must be above spec.semanticCache.similarityThreshold: the "
        "required similarity climbs from the threshold to the ceiling; raise it, for example to 0.98",
        lambda s: (
            s.semanticCache.decay is None
            or s.semanticCache.decay.mode == "off"
            or s.semanticCache.decay.ceiling > s.semanticCache.similarityThreshold
        ),
        lambda s: (
            (s.semanticCache.decay.ceiling, s.semanticCache.similarityThreshold)
            if s.semanticCache.decay
            else None
        ),
    ),
    Rule(
        "spec.semanticCache.decay",
        "spec.semanticCache.decay.halfLifeSeconds is required when mode is halfLife: every half-life the "
        "gap between the required similarity and the ceiling halves, for example 3600",
        lambda s: (
            s.semanticCache.decay is None
            or s.semanticCache.decay.mode != "halfLife"
            or s.semanticCache.decay.halfLifeSeconds is not None
        ),
        lambda s: s.semanticCache.decay.mode if s.semanticCache.decay else None,
    ),
    Rule(
        "spec.semanticCache.decay",
        "spec.semanticCache.decay.rampSeconds is required when mode is linear: the age at which the "
        "required similarity reaches the ceiling, for example 86400",
        lambda s: (
            s.semanticCache.decay is None
            or s.semanticCache.decay.mode != "linear"
            or s.semanticCache.decay.rampSeconds is not None
        ),
        lambda s: s.semanticCache.decay.mode if s.semanticCache.decay else None,
    ),
    Rule(
        "spec.semanticCache.decay.ceiling",
        "spec.semanticCache.decay.ceiling must be in (0, 1]: the highest cosine similarity an old entry "
        "needs, for example 0.98",
        lambda s: s.semanticCache.decay is None or 0 < s.semanticCache.decay.ceiling <= 1,
        lambda s: s.semanticCache.decay.ceiling if s.semanticCache.decay else None,
    ),
    Rule(
        "spec.semanticCache.toolPlans.similarityThreshold",
        "spec.semanticCache.toolPlans.similarityThreshold must be in (0, 1]: the cosine similarity a "
        "paraphrase needs to be served a plan, for example 0.93",
        lambda s: (
            s.semanticCache.toolPlans is None
            or s.semanticCache.toolPlans.similarityThreshold is None
            or 0 < s.semanticCache.toolPlans.similarityThreshold <= 1
        ),
        lambda s: s.semanticCache.toolPlans.similarityThreshold if s.semanticCache.toolPlans else None,
    ),
    Rule(
        "spec.routing",
        "spec.routing.gateway needs spec.routing.enabled: true: the HTTPRoute sends the gateway's "
        "requests to the InferencePool, which exists only with routing on",
        lambda s: s.routing.gateway is None or s.routing.enabled,
        lambda s: s.routing.enabled,
    ),
    Rule(
        "spec.routing.weights",
        "spec.routing.weights: at least one scorer weight must be > 0 (with all at 0 the endpoint "
        "picker chooses at random), for example prefixCache: 3",
        lambda s: sum(s.routing.weights.model_dump().values()) > 0,
        lambda s: s.routing.weights.model_dump(),
    ),
    Rule(
        "spec.cacheVersion",
        "spec.cacheVersion must be a label-like string: letters, digits, '-', '_' or '.', starting and "
        "ending with a letter or digit, at most 63 characters, for example v2 or 2026-01-15",
        lambda s: re.fullmatch(CACHE_VERSION_PATTERN, s.cacheVersion) is not None,
        lambda s: s.cacheVersion,
    ),
)


class SpecError(HermesError, ValueError):
    """A policy breaks the schema or a rule; ``problems`` holds one ``path: rule (got value)`` line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid HermesCachePolicy:\n  " + "\n  ".join(problems))


def _pydantic_problems(exc: ValidationError) -> list[str]:
    lines = []
    for err in exc.errors():
        loc = ".".join(["spec", *(str(p) for p in err["loc"])])
        if err["type"] == "extra_forbidden":
            lines.append(
                f"{loc}: unknown field (check the spelling against the CRD: kubectl explain hcp.spec)"
            )
        elif err["type"] == "missing":
            lines.append(f"{loc}: required field is missing")
        else:
            lines.append(f"{loc}: {err['msg']} (got {err.get('input')!r})")
    return lines


def parse_spec(data: Any) -> PolicySpec:
    """Validate a ``spec`` mapping against the schema and every CEL counterpart in :data:`RULES`."""
    if not isinstance(data, dict):
        raise SpecError([f"spec: must be a mapping, got {type(data).__name__}"])
    try:
        spec = PolicySpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_pydantic_problems(exc)) from None
    problems = [f"{r.path}: {r.message} (got {r.value(spec)!r})" for r in RULES if not r.ok(spec)]
    if problems:
        raise SpecError(problems)
    return spec


def parse_policy(doc: Any) -> Policy:
    """Validate a whole HermesCachePolicy document (as read from a file or from the API server)."""
    if not isinstance(doc, dict):
        raise SpecError([f"(document): must be a mapping, got {type(doc).__name__}"])
    problems = []
    if doc.get("apiVersion") != API_VERSION:
        problems.append(f"apiVersion: must be {API_VERSION} (got {doc.get('apiVersion')!r})")
    if doc.get("kind") != KIND:
        problems.append(f"kind: must be {KIND} (got {doc.get('kind')!r})")
    meta = doc.get("metadata") or {}
    name = meta.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[a-z]([-a-z0-9]{0,50}[a-z0-9])?", name):
        problems.append(
            f"metadata.name: must be a DNS label starting with a letter, at most 52 characters (child "
            f"objects append suffixes), for example hermes-70b (got {name!r})"
        )
    if problems:
        raise SpecError(problems)
    spec = parse_spec(doc.get("spec"))
    return Policy(
        name=str(name),
        namespace=str(meta.get("namespace") or "default"),
        spec=spec,
        uid=str(meta.get("uid") or ""),
        generation=int(meta.get("generation") or 0),
    )
