"""Pure builders: a validated policy -> the Kubernetes objects the operator applies.

Every function here is deterministic (same policy in, same bytes out) and does no I/O, so
``hermes-cache plan`` shows exactly what the operator will apply. ``spec.cacheVersion`` is read by
nothing in this module: a generation switch must never change the pod template (a test holds it).
The producer fingerprint (``fingerprint.py``) is in the pod template, not the ConfigMap, so each pod
of a rolling update keeps its own model's partition. It changes only with the model or the engine,
which change vLLM's arguments or image anyway, but for one case: a new ``spec.model.name`` over the
same ``spec.model.storage.path`` rolls the pods for the fingerprint alone (a new model, by its name).

Pod layout: vLLM listens on ``127.0.0.1:8000`` inside the pod; the sidecar is the only exposed port,
so no request reaches vLLM without the cache and its per-generation ``cache_salt``. Because kubelet
probes the pod IP, not its loopback, vLLM's startup and readiness probes are HTTP ``GET /health`` on
the sidecar port, which the sidecar passes through to vLLM unchanged (every path it does not serve
itself is passed through). vLLM's liveness probe runs inside the container against loopback instead,
so a restarting sidecar never gets the engine (and its minutes-long model load) killed.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import yaml

from hermes_sidecar.config import ConfigError, parse_config
from hermes_sidecar.contract import PRODUCER_ENV, policy_scope
from hermes_sidecar.errors import ConfigProblem

from .capacity import Capacity, Group, replica_group
from .fingerprint import producer_fingerprint
from .spec import API_VERSION, KIND, ApiKeySecretRef, Policy, SecretKeyRef, SpecError

Manifest = dict[str, Any]

FIELD_MANAGER = "hermes-cache-operator"
VLLM_PORT = 8000
VLLM_HOST = "127.0.0.1"
SIDECAR_CONFIG_DIR = "/etc/hermes-sidecar"
SIDECAR_CONFIG_FILE = "config.yaml"
# spec.semanticCache.redis.passwordSecretRef is mounted here in the sidecar (key -> file "password").
REDIS_PASSWORD_DIR = "/var/run/secrets/hermes-cache/redis"
REDIS_PASSWORD_FILE = f"{REDIS_PASSWORD_DIR}/password"
# spec.semanticCache.verifier.apiKeySecretRef is mounted here in the sidecar (key -> file "api-key").
VERIFIER_KEY_DIR = "/var/run/secrets/hermes-cache/verifier"
VERIFIER_KEY_FILE = f"{VERIFIER_KEY_DIR}/api-key"
# Fixed so that every pod of every policy seeds vLLM's prefix-block hashes alike (vLLM seeds the
# first block's hash from PYTHONHASHSEED, at random when it is unset), which keeps block hashes
# comparable across pods and restarts; tenants and generations are separated by cache_salt.
PYTHONHASHSEED = "0"
# Seconds between removal from Service endpoints and SIGTERM, so no new request lands on a pod that
# has started to drain.
PRESTOP_SLEEP_SECONDS = 5
# The sidecar image when neither the policy (spec.sidecar.image) nor the operator (--sidecar-image,
# which the chart sets to its own operator.image) names one: the tag `make image` also gives its build.
DEFAULT_SIDECAR_IMAGE_REF = "localhost/hermes-cache:0.1.0"
# spec.model.storage is mounted read-only here in the vLLM container; vLLM loads MODEL_MOUNT/<path>.
MODEL_MOUNT = "/models"
# Writable scratch for containers whose root filesystem is read-only.
TMP_DIR = "/tmp"
SIDECAR_UID = 65532  # the image's non-root user (Dockerfile)
# The producer fingerprint (fingerprint.py) on the pod template, for people; the sidecar reads the env.
PRODUCER_ANNOTATION = "hermes-cache.dev/producer"
# LeaderWorkerSet (kubernetes-sigs/lws, API leaderworkerset.x-k8s.io/v1): a replica whose GPUs span
# nodes is one group of pods, its leader (vLLM's API server + the sidecar) and workers (headless vLLM).
LWS_API_VERSION = "leaderworkerset.x-k8s.io/v1"
LWS_KIND = "LeaderWorkerSet"
# The kinds that run a policy's replicas: exactly one of them is rendered.
WORKLOAD_KINDS = ("Deployment", LWS_KIND)
ROLE_LABEL = "hermes-cache.dev/role"
# vLLM's native multi-node mode (torch.distributed rendezvous at the leader): the port every group's
# leader listens on for its workers (vLLM's default --master-port).
MASTER_PORT = 29501
QUEUE_METRIC = "vllm_num_requests_waiting"
KV_USAGE_METRIC = "vllm_kv_cache_usage_perc"


def labels(policy: Policy) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "hermes-cache",
        "app.kubernetes.io/instance": policy.name,
        "app.kubernetes.io/component": "inference",
        "app.kubernetes.io/part-of": "hermes-cache",
        "app.kubernetes.io/managed-by": FIELD_MANAGER,
    }


def selector_labels(policy: Policy) -> dict[str, str]:
    return {"app.kubernetes.io/name": "hermes-cache", "app.kubernetes.io/instance": policy.name}


def serving_selector(policy: Policy) -> dict[str, str]:
    """The pods that serve requests: every pod of a Deployment, the leaders of a LeaderWorkerSet."""
    if replica_group(policy.spec).multi_node:
        return {**selector_labels(policy), ROLE_LABEL: "leader"}
    return selector_labels(policy)


def selector_string(policy: Policy) -> str:
    """The label selector the scale subresource reports (``status.selector``): one pod per replica, so
    an HPA on the policy averages over replicas (the leaders, when a replica is a group)."""
    return ",".join(f"{k}={v}" for k, v in serving_selector(policy).items())


def pods_selector_string(policy: Policy) -> str:
    """Every pod of the policy (leaders and workers): what the status reads to say why one is stuck."""
    return ",".join(f"{k}={v}" for k, v in selector_labels(policy).items())


def served_name(policy: Policy) -> str:
    return policy.spec.model.servedName or policy.spec.model.name.rsplit("/", 1)[-1]


def _metadata(policy: Policy, name: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": policy.namespace, "labels": labels(policy)}
    if policy.uid:  # `plan` renders without a cluster, so without a uid to own children by
        meta["ownerReferences"] = [
            {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "name": policy.name,
                "uid": policy.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    return meta


def configmap_name(policy: Policy) -> str:
    return f"{policy.name}-sidecar"


def redis_url(policy: Policy) -> str | None:
    redis = policy.spec.semanticCache.redis
    return redis.url if redis else None


def sidecar_config(policy: Policy) -> dict[str, Any]:
    """The sidecar's config file (the contract in ``hermes_sidecar.config``), validated before use."""
    sc = policy.spec.semanticCache
    url = redis_url(policy)
    cache: dict[str, Any] = {
        "enabled": sc.enabled,
        "backend": "redis" if url else "memory",
        "similarityThreshold": sc.similarityThreshold,
        "ttlSeconds": sc.ttlSeconds,
        "maxEntries": sc.maxEntries,
        "storeTruncated": sc.storeTruncated,
        "scope": policy_scope(policy.namespace, policy.name),
    }
    if url:
        cache["redisUrl"] = url
    if sc.redis is not None and sc.redis.passwordSecretRef is not None:
        cache["redisPasswordFile"] = REDIS_PASSWORD_FILE
    if sc.verifier is not None:
        v = sc.verifier
        # served-model asks the pod's own vLLM (on loopback, as the sidecar's upstream) for the
        # policy's served model unless the policy names another server or model
        verifier: dict[str, Any] = {
            "kind": v.kind,
            "url": v.url or (f"http://{VLLM_HOST}:{VLLM_PORT}" if v.kind == "served-model" else None),
            "model": v.model or (served_name(policy) if v.kind == "served-model" else None),
            "minScore": v.minScore,
            "minSimilarity": v.minSimilarity,
            "timeoutSeconds": v.timeoutSeconds,
            "onError": v.onError,
            "overrule": list(v.overrule),
        }
        if v.scope is not None:
            verifier["scope"] = v.scope
        if v.overruleMinScore is not None:
            verifier["overruleMinScore"] = v.overruleMinScore
        if v.apiKeySecretRef is not None:
            verifier["apiKeyFile"] = VERIFIER_KEY_FILE
        cache["guard"] = {"verifier": verifier}
    if sc.decay is not None:
        d = sc.decay
        decay: dict[str, Any] = {"mode": d.mode, "ceiling": d.ceiling, "exact": d.exact}
        # only the length the mode reads: a policy switched to off or to the other mode keeps its
        # former setting without the sidecar refusing it
        if d.mode == "halfLife":
            decay["halfLifeSeconds"] = d.halfLifeSeconds
        if d.mode == "linear":
            decay["rampSeconds"] = d.rampSeconds
        cache["decay"] = decay
    if sc.toolPlans is not None:
        plans: dict[str, Any] = {"enabled": sc.toolPlans.enabled, "semantic": sc.toolPlans.semantic}
        if sc.toolPlans.similarityThreshold is not None:
            plans["similarityThreshold"] = sc.toolPlans.similarityThreshold
        cache["toolPlans"] = plans
    embedding: dict[str, Any] = {"provider": sc.embedding.provider}
    if sc.embedding.model:
        embedding["model"] = sc.embedding.model
    if sc.embedding.url:
        embedding["url"] = sc.embedding.url
    config = {
        "listen": f"0.0.0.0:{policy.spec.sidecar.port}",
        "upstream": {"kind": "openai", "url": f"http://{VLLM_HOST}:{VLLM_PORT}"},
        "cache": cache,
        "tenantHeader": sc.tenantHeader,
        "embedding": embedding,
    }
    config.update(_partition_config(policy))
    try:
        parse_config(config)
    except ConfigError as exc:
        # A policy the bundled sidecar cannot run is refused here, naming the policy field, rather
        # than deployed to crash-loop (or, for a Redis password, to run fail-open without its cache).
        raise SpecError(_sidecar_refusals(exc.problems)) from None
    return config


# Sidecar config keys -> the policy fields they are rendered from (longest prefix wins).
_CONFIG_SOURCES = {
    "cache.redisUrl": "spec.semanticCache.redis.url",
    "cache.redisPasswordFile": "spec.semanticCache.redis.passwordSecretRef",
    "cache.similarityThreshold": "spec.semanticCache.similarityThreshold",
    "cache.ttlSeconds": "spec.semanticCache.ttlSeconds",
    "cache.maxEntries": "spec.semanticCache.maxEntries",
    "cache.storeTruncated": "spec.semanticCache.storeTruncated",
    "cache.guard.verifier": "spec.semanticCache.verifier",
    "cache.guard.verifier.kind": "spec.semanticCache.verifier.kind",
    "cache.guard.verifier.scope": "spec.semanticCache.verifier.scope",
    "cache.guard.verifier.url": "spec.semanticCache.verifier.url",
    "cache.guard.verifier.model": "spec.semanticCache.verifier.model",
    "cache.guard.verifier.minScore": "spec.semanticCache.verifier.minScore",
    "cache.guard.verifier.minSimilarity": "spec.semanticCache.verifier.minSimilarity",
    "cache.guard.verifier.timeoutSeconds": "spec.semanticCache.verifier.timeoutSeconds",
    "cache.guard.verifier.apiKeyFile": "spec.semanticCache.verifier.apiKeySecretRef",
    "cache.guard.verifier.onError": "spec.semanticCache.verifier.onError",
    "cache.guard.verifier.overrule": "spec.semanticCache.verifier.overrule",
    "cache.guard.verifier.overruleMinScore": "spec.semanticCache.verifier.overruleMinScore",
    "cache.decay": "spec.semanticCache.decay",
    "cache.toolPlans": "spec.semanticCache.toolPlans",
    "cache": "spec.semanticCache",
    "embedding": "spec.semanticCache.embedding",
    "tenantHeader": "spec.semanticCache.tenantHeader",
    "tenancy": "spec.tenancy",
    "tenancy.trustGroups": "spec.tenancy.trustGroups",
    "experiment": "spec.experiment",
    "experiment.tenantVariants": "spec.experiment.assignments",
    "listen": "spec.sidecar.port",
}


def _sidecar_refusals(problems: tuple[ConfigProblem, ...]) -> list[str]:
    """The sidecar's config problems as SpecError lines naming the policy field behind each key."""
    out = []
    for p in problems:
        source = max(
            (k for k in _CONFIG_SOURCES if p.loc == k or p.loc.startswith(k + ".")), key=len, default=""
        )
        field = _CONFIG_SOURCES.get(source, "spec")
        hint = (
            "; this sidecar version has no such setting: run a sidecar that has it, or leave the field unset"
            if p.kind == "extra_forbidden"
            else ""
        )
        out.append(
            f"{field}: the bundled hermes-sidecar refuses the config rendered from it: "
            f"{p.loc}: {p.message}{hint}"
        )
    return out


def _partition_config(policy: Policy) -> dict[str, Any]:
    """The sidecar's ``tenancy`` and ``experiment`` (only when set, so other configs stay as they were).

    The producer fingerprint is not here but in the pod template (``render_pod_template``)."""
    out: dict[str, Any] = {}
    groups = policy.spec.tenancy.trustGroups
    if groups:
        out["tenancy"] = {"trustGroups": [{"name": g.name, "tenants": list(g.tenants)} for g in groups]}
    ex = policy.spec.experiment
    if ex.header or ex.variants:
        out["experiment"] = {
            "header": ex.header,
            "variants": list(ex.variants),
            "tenantVariants": {a.tenant: a.variant for a in ex.assignments},
        }
    return out


def render_configmap(policy: Policy) -> Manifest:
    text = yaml.safe_dump(sidecar_config(policy), sort_keys=False)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(policy, configmap_name(policy)),
        "data": {SIDECAR_CONFIG_FILE: text},
    }


def model_path(policy: Policy) -> str:
    """What vLLM loads: a folder of the mounted model volume, else the Hugging Face id to download."""
    storage = policy.spec.model.storage
    if storage is None:
        return policy.spec.model.name
    return f"{MODEL_MOUNT}/{storage.path or policy.spec.model.name}".rstrip("/")


def vllm_args(policy: Policy) -> list[str]:
    e = policy.spec.engine
    args = [
        "--model", model_path(policy),
        "--served-model-name", served_name(policy),
        "--host", VLLM_HOST,
        "--port", str(VLLM_PORT),
        "--tensor-parallel-size", str(e.tensorParallelSize),
        *(["--pipeline-parallel-size", str(e.pipelineParallelSize)] if e.pipelineParallelSize > 1 else []),
        "--gpu-memory-utilization", f"{e.gpuMemoryUtilization:g}",
        "--max-model-len", str(e.maxModelLen),
        "--max-num-seqs", str(e.maxNumSeqs),
        "--max-num-batched-tokens", str(e.maxNumBatchedTokens),
        "--block-size", str(e.blockSize),
        "--kv-cache-dtype", e.kvCacheDtype,
        "--dtype", e.dtype,
        "--enable-prefix-caching" if e.prefixCaching else "--no-enable-prefix-caching",
        "--prefix-caching-hash-algo", "sha256",
        "--shutdown-timeout", str(e.shutdownTimeoutSeconds),
    ]  # fmt: skip
    if e.kvOffloadGiB > 0:
        args += ["--kv-offloading-size", f"{e.kvOffloadGiB:g}", "--kv-offloading-backend", "native"]
    return args + list(e.extraArgs)


def config_hash(policy: Policy) -> str:
    """Hash of the sidecar config: a change rolls the pods, since the sidecar reads its file at start."""
    return hashlib.sha256(json.dumps(sidecar_config(policy), sort_keys=True).encode()).hexdigest()[:16]


def _probe(path: str, port: int | str, period: int, failures: int, timeout: int = 5) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": timeout,
    }


def vllm_env(policy: Policy) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": "PYTHONHASHSEED", "value": PYTHONHASHSEED},
        {"name": "VLLM_NO_USAGE_STATS", "value": "1"},
    ]
    if policy.spec.device == "cpu":
        # vLLM's CPU backend sizes its KV cache from this (whole GiB), not from gpuMemoryUtilization.
        env.append({"name": "VLLM_CPU_KVCACHE_SPACE", "value": str(policy.spec.cpu.kvCacheGiB)})
    if policy.spec.model.storage is not None:
        # The weights are on the mounted volume: never reach for the Hugging Face hub.
        env += [{"name": "HF_HUB_OFFLINE", "value": "1"}, {"name": "TRANSFORMERS_OFFLINE", "value": "1"}]
    if policy.spec.model.hfTokenSecret:
        # Gated models (meta-llama/*) download only with a token; it stays in a Secret, never in the spec.
        env.append(
            {
                "name": "HF_TOKEN",
                "valueFrom": {"secretKeyRef": {"name": policy.spec.model.hfTokenSecret, "key": "token"}},
            }
        )
    return env


def _quantity_gib(gib: float) -> str:
    return f"{round(gib * 1024)}Mi"


def vllm_resources(policy: Policy) -> dict[str, Any]:
    spec = policy.spec
    if spec.device == "cpu":
        # A memory limit (weights + KV + runtime, planned by capacity.py) but no CPU limit: CFS
        # throttling would stretch every token, and requests alone already reserve the cores.
        memory = _quantity_gib(spec.cpu.memoryGiB)
        return {
            "requests": {"cpu": f"{round(spec.cpu.cores * 1000)}m", "memory": memory},
            "limits": {"memory": memory},
        }
    # one node's share of the replica: tensorParallelSize x pipelineParallelSize GPUs up to gpu.perNode
    gpus = str(replica_group(spec).gpus_per_node)
    return {"requests": {spec.gpu.resource: gpus}, "limits": {spec.gpu.resource: gpus}}


def _placement(policy: Policy) -> tuple[dict[str, str], list[Any]]:
    """Node selector and tolerations of the device the policy runs on."""
    dev = policy.spec.cpu if policy.spec.device == "cpu" else policy.spec.gpu
    return dict(sorted(dev.nodeSelector.items())), list(dev.tolerations)


def render_pod_template(policy: Policy, sidecar_image: str = DEFAULT_SIDECAR_IMAGE_REF) -> Manifest:
    spec = policy.spec
    e = spec.engine
    volumes: list[dict[str, Any]] = [
        {"name": "sidecar-config", "configMap": {"name": configmap_name(policy)}},
        {"name": "sidecar-tmp", "emptyDir": {"sizeLimit": "64Mi"}},
    ]
    storage = spec.model.storage
    vllm_mounts: list[dict[str, Any]]
    if storage is None:
        # Downloaded at every start into the pod's own disk: spec.model.storage avoids that.
        vllm_mounts = [{"name": "model-cache", "mountPath": "/root/.cache/huggingface"}]
        volumes.insert(0, {"name": "model-cache", "emptyDir": {}})
    else:
        vllm_mounts = [{"name": "model-store", "mountPath": MODEL_MOUNT, "readOnly": True}]
        volumes.insert(
            0,
            {
                "name": "model-store",
                "persistentVolumeClaim": {"claimName": storage.claimName, "readOnly": True},
            },
        )
    if e.tensorParallelSize * e.pipelineParallelSize > 1 or spec.device == "cpu":
        # NCCL exchanges tensors between the GPU worker processes through /dev/shm; the container
        # runtime's 64 MiB default makes TP > 1 fail or crawl. vLLM's CPU backend refuses to start
        # below 160 MiB of /dev/shm (its engine and worker processes share buffers there). Memory-
        # backed, so it counts against the container's memory limit: only as much as is used.
        size = "16Gi" if spec.device == "gpu" else "1Gi"
        volumes.append({"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": size}})
        vllm_mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
    vllm = {
        "name": "vllm",
        "image": e.image,
        "command": ["python3", "-m", "vllm.entrypoints.openai.api_server"],
        "args": vllm_args(policy),
        "env": vllm_env(policy),
        "resources": vllm_resources(policy),
        # The port opens before the model is loaded: /health, not TCP, and up to 30 minutes to load.
        # By number: a probe resolves a port *name* among its own container's ports, and "http" is
        # the sidecar's (kubelet: 'strconv.Atoi: parsing "http"', the probe never succeeds).
        "startupProbe": _probe("/health", spec.sidecar.port, period=10, failures=180),
        "readinessProbe": _probe("/health", spec.sidecar.port, period=5, failures=3),
        "livenessProbe": {
            "exec": {
                "command": [
                    "python3",
                    "-c",
                    f"import urllib.request; urllib.request.urlopen('http://{VLLM_HOST}:{VLLM_PORT}/health', "
                    "timeout=5)",
                ]
            },
            "periodSeconds": 30,
            "failureThreshold": 4,
            "timeoutSeconds": 10,
        },
        "lifecycle": {"preStop": {"sleep": {"seconds": PRESTOP_SLEEP_SECONDS}}},
        # A crash leaves its last log lines as the termination message, which the policy's Ready
        # condition quotes (podstatus.py): "no config.json in /models/x" instead of just "exit code 1".
        "terminationMessagePolicy": "FallbackToLogsOnError",
        # vLLM images write caches under $HOME and /tmp (torch.compile, Triton), so their root stays
        # writable; nothing else is needed: no privilege escalation, no capabilities.
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": vllm_mounts,
    }
    sidecar_mounts = [
        {"name": "sidecar-config", "mountPath": SIDECAR_CONFIG_DIR, "readOnly": True},
        {"name": "sidecar-tmp", "mountPath": TMP_DIR},
    ]

    def mount_secret(name: str, ref: SecretKeyRef | ApiKeySecretRef, path: str, directory: str) -> None:
        """One key of a Secret as a file in the sidecar (the config names the file, never the value)."""
        volumes.append(
            {"name": name, "secret": {"secretName": ref.name, "items": [{"key": ref.key, "path": path}]}}
        )
        sidecar_mounts.append({"name": name, "mountPath": directory, "readOnly": True})

    redis = spec.semanticCache.redis
    if redis is not None and redis.passwordSecretRef is not None:
        mount_secret("redis-password", redis.passwordSecretRef, "password", REDIS_PASSWORD_DIR)
    verifier = spec.semanticCache.verifier
    if verifier is not None and verifier.apiKeySecretRef is not None:
        mount_secret("verifier-api-key", verifier.apiKeySecretRef, "api-key", VERIFIER_KEY_DIR)
    sidecar = {
        "name": "sidecar",
        "image": spec.sidecar.image or sidecar_image,
        "command": ["hermes-sidecar", "serve", "--config", f"{SIDECAR_CONFIG_DIR}/{SIDECAR_CONFIG_FILE}"],
        "ports": [{"name": "http", "containerPort": spec.sidecar.port, "protocol": "TCP"}],
        "readinessProbe": _probe("/readyz", "http", period=5, failures=3),
        "livenessProbe": _probe("/healthz", "http", period=10, failures=3),
        "lifecycle": {"preStop": {"sleep": {"seconds": PRESTOP_SLEEP_SECONDS}}},
        # A crash leaves its last log lines as the termination message, which the policy's Ready
        # condition quotes (podstatus.py): "no config.json in /models/x" instead of just "exit code 1".
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": SIDECAR_UID,
            "runAsGroup": SIDECAR_UID,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": sidecar_mounts,
        # Per pod, not in the shared ConfigMap: during a rolling update an old pod (even one whose
        # sidecar restarts) keeps its old model's partition, a new pod starts in the new one.
        "env": [{"name": PRODUCER_ENV, "value": producer_fingerprint(spec)}],
    }
    pod_spec: dict[str, Any] = {
        "containers": [vllm, sidecar],
        # preStop pause + vLLM's own drain (--shutdown-timeout) + 10 s to exit
        "terminationGracePeriodSeconds": PRESTOP_SLEEP_SECONDS + e.shutdownTimeoutSeconds + 10,
        "volumes": volumes,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        # The pod talks to vLLM over loopback and to Redis by URL: no Service environment variables
        # (hundreds of them in a busy namespace) are wanted in either container.
        "enableServiceLinks": False,
    }
    node_selector, tolerations = _placement(policy)
    if node_selector:
        pod_spec["nodeSelector"] = node_selector
    if tolerations:
        pod_spec["tolerations"] = [{k: v for k, v in t.model_dump().items() if v != ""} for t in tolerations]
    return {
        "metadata": {
            "labels": labels(policy),
            "annotations": {
                "hermes-cache.dev/sidecar-config-hash": config_hash(policy),
                PRODUCER_ANNOTATION: producer_fingerprint(spec),
            },
        },
        "spec": pod_spec,
    }


def render_deployment(policy: Policy, sidecar_image: str = DEFAULT_SIDECAR_IMAGE_REF) -> Manifest:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(policy, policy.name),
        "spec": {
            "replicas": policy.spec.replicas,
            "selector": {"matchLabels": selector_labels(policy)},
            # A GPU replica cannot surge onto GPUs that are not there: replace one pod at a time.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
            "template": render_pod_template(policy, sidecar_image),
        },
    }


def group_vllm_args(policy: Policy, group: Group, role: str) -> list[str]:
    """vLLM's native multi-node mode (``--nnodes``/``--node-rank``/``--master-addr``, ``--headless`` on
    the workers): every pod of a group runs ``vllm serve`` with the same engine flags; the leader's
    engine holds the first stages and its API server, the workers join it through torch.distributed.
    ``$(VAR)`` is expanded by the kubelet from the variables the LWS webhook puts into each container.
    The model is ``vllm serve``'s positional argument (its ``--model`` option is deprecated there)."""
    base = vllm_args(policy)[: -len(policy.spec.engine.extraArgs) or None]
    args = [
        model_path(policy),
        *base[2:],  # vllm_args starts with "--model", model_path(policy)
        "--distributed-executor-backend", "mp",
        "--nnodes", str(group.nodes),
        "--node-rank", "$(LWS_WORKER_INDEX)",
        "--master-addr", "$(LWS_LEADER_ADDRESS)",
        "--master-port", str(MASTER_PORT),
    ]  # fmt: skip
    if role == "worker":
        args.append("--headless")
    return args + list(policy.spec.engine.extraArgs)


def render_group_pod_template(
    policy: Policy, group: Group, role: str, sidecar_image: str = DEFAULT_SIDECAR_IMAGE_REF
) -> Manifest:
    """The leader's or a worker's pod of a group: the Deployment's pod with the group's vLLM command.

    The leader keeps the sidecar and the probes (its API server's /health fails when the engine,
    workers included, is gone). A worker runs headless vLLM only: no sidecar, no HTTP probes, and
    nothing to read the sidecar's config, so a config change rolls the group through the leader's
    template alone.
    """
    template = render_pod_template(policy, sidecar_image)
    template["metadata"]["labels"] = {**template["metadata"]["labels"], ROLE_LABEL: role}
    pod = template["spec"]
    vllm = next(c for c in pod["containers"] if c["name"] == "vllm")
    vllm["command"] = ["vllm", "serve"]
    vllm["args"] = group_vllm_args(policy, group, role)
    vllm["ports"] = [{"name": "dist", "containerPort": MASTER_PORT, "protocol": "TCP"}]
    if role == "worker":
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            vllm.pop(probe, None)
        pod["containers"] = [vllm]
        used = {m["name"] for m in vllm["volumeMounts"]}
        pod["volumes"] = [v for v in pod["volumes"] if v["name"] in used]
        template["metadata"].pop("annotations", None)
    return template


def render_leaderworkerset(policy: Policy, sidecar_image: str = DEFAULT_SIDECAR_IMAGE_REF) -> Manifest:
    """A replica of more GPUs than one node has: ``spec.replicas`` groups of ``nodesPerReplica`` pods.

    ``RecreateGroupOnPodRestart``: a pod of a group that restarts (or is deleted) takes the whole
    group down and up again, since vLLM's torch.distributed ranks cannot rejoin a running engine.
    ``LeaderCreated``: workers start with their leader, which waits for them to rendezvous (with
    ``LeaderReady`` the leader could never become ready).
    """
    group = replica_group(policy.spec)
    return {
        "apiVersion": LWS_API_VERSION,
        "kind": LWS_KIND,
        "metadata": _metadata(policy, lws_name(policy)),
        "spec": {
            "replicas": policy.spec.replicas,
            "startupPolicy": "LeaderCreated",
            # A group holds several nodes' GPUs: no surge, replace one group at a time.
            "rolloutStrategy": {
                "type": "RollingUpdate",
                "rollingUpdateConfiguration": {"maxUnavailable": 1, "maxSurge": 0},
            },
            "leaderWorkerTemplate": {
                "size": group.nodes,
                "restartPolicy": "RecreateGroupOnPodRestart",
                "leaderTemplate": render_group_pod_template(policy, group, "leader", sidecar_image),
                "workerTemplate": render_group_pod_template(policy, group, "worker", sidecar_image),
            },
        },
    }


def workload_ref(policy: Policy) -> tuple[str, str, str]:
    """``(apiVersion, kind, name)`` of the object :func:`render_workload` renders for ``policy``."""
    if replica_group(policy.spec).multi_node:
        return LWS_API_VERSION, LWS_KIND, lws_name(policy)
    return "apps/v1", "Deployment", policy.name


def lws_name(policy: Policy) -> str:
    """``<policy>-group``: the LWS controller creates a headless Service named after the
    LeaderWorkerSet (its pods' DNS subdomain), which must not take the policy's own Service name."""
    return f"{policy.name}-group"


def render_workload(policy: Policy, sidecar_image: str = DEFAULT_SIDECAR_IMAGE_REF) -> Manifest:
    """The object that runs the replicas: a LeaderWorkerSet when one spans nodes, else a Deployment."""
    if replica_group(policy.spec).multi_node:
        return render_leaderworkerset(policy, sidecar_image)
    return render_deployment(policy, sidecar_image)


def render_service(policy: Policy) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(policy, policy.name),
        "spec": {
            "type": "ClusterIP",
            "selector": serving_selector(policy),
            "ports": [
                {"name": "http", "port": policy.spec.sidecar.port, "targetPort": "http", "protocol": "TCP"}
            ],
        },
    }


def render_pdb(policy: Policy) -> Manifest:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(policy, policy.name),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector_labels(policy)}},
    }


def render_hpa(policy: Policy) -> Manifest:
    """HPA on the policy's scale subresource, fed by per-pod vLLM metrics through prometheus-adapter."""
    a = policy.spec.autoscaling
    if a.metric == "queue":
        metric, target = QUEUE_METRIC, f"{round(a.target * 1000)}m"
    else:
        metric, target = KV_USAGE_METRIC, f"{round(a.target * 1000)}m"
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(policy, policy.name),
        "spec": {
            "scaleTargetRef": {"apiVersion": API_VERSION, "kind": KIND, "name": policy.name},
            "minReplicas": a.minReplicas,
            "maxReplicas": a.maxReplicas,
            "metrics": [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": metric},
                        "target": {"type": "AverageValue", "averageValue": target},
                    },
                }
            ],
            # A new replica loads a model for minutes: scale down slowly so load spikes do not thrash.
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 600}},
        },
    }


def render_all(
    policy: Policy, capacity: Capacity, sidecar_image: str = DEFAULT_SIDECAR_IMAGE_REF
) -> list[Manifest]:
    """Everything the operator applies for ``policy``: nothing at all when a replica does not fit.

    ``sidecar_image`` is used when ``spec.sidecar.image`` is empty (the operator passes its own).
    """
    if not capacity.fits:
        return []
    objs = [
        render_configmap(policy),
        render_workload(policy, sidecar_image),
        render_service(policy),
        render_pdb(policy),
    ]
    if policy.spec.autoscaling.enabled:
        objs.append(render_hpa(policy))
    # spec.routing: the InferencePool and its Endpoint Picker (routing.py builds on this module).
    from .routing import render_routing

    return objs + render_routing(policy)


def gpus_requested(policy: Policy, capacity: Capacity) -> int:
    if not capacity.fits or policy.spec.device == "cpu":
        return 0
    return policy.spec.replicas * replica_group(policy.spec).gpus
