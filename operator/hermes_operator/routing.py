"""Pure builders for ``spec.routing``: an InferencePool over the serving pods and its Endpoint Picker.

Prefix-aware routing is the Gateway API Inference Extension's (GIE) job, not ours: the gateway asks
the Endpoint Picker (EPP) over Envoy's ext_proc for every request, and the EPP scores the pool's
pods by queue length, KV-cache usage and how much of the prompt each pod has probably cached. This
module renders what upstream's ``inferencepool`` Helm chart renders (GIE v1.5.0,
``config/charts/inferencepool``, ``config/charts/epplib``), from the policy, without vendoring it:

* ``InferencePool`` (``inference.networking.k8s.io/v1``): selects the serving pods (the leaders of
  a LeaderWorkerSet) and targets the sidecar's port, so routed requests still pass the cache and
  its per-tenant ``cache_salt``.
* the EPP: ServiceAccount and a RoleBinding to the chart's ClusterRole (pods, the pool, the
  optional alpha kinds it looks for), a ConfigMap holding its ``EndpointPickerConfig``, a
  Deployment and a Service (ext_proc 9002, metrics 9090).
* optionally an ``HTTPRoute`` from a Gateway the user names to the pool.

The EPP reads vLLM's metrics through the sidecar (``/upstream/metrics`` on the pool's target port):
set as parameters of the ``metrics-data-source`` plugin, since upstream deprecated the
``--model-server-metrics-*`` flags.
"""

from __future__ import annotations

import hashlib
from typing import Any

import yaml

from .render import FIELD_MANAGER, Manifest, _metadata, serving_selector
from .spec import Policy
from .status import Cond

POOL_API_VERSION = "inference.networking.k8s.io/v1"
POOL_KIND = "InferencePool"
POOL_GROUP = "inference.networking.k8s.io"
CONFIG_API_VERSION = "inference.networking.x-k8s.io/v1alpha1"
HTTPROUTE_API_VERSION = "gateway.networking.k8s.io/v1"
# The EPP's ports (upstream defaults: --grpc-port, --grpc-health-port, --metrics-port).
EXT_PROC_PORT = 9002
HEALTH_PORT = 9003
METRICS_PORT = 9090
EPP_CONFIG_DIR = "/config"
EPP_CONFIG_FILE = "config.yaml"
# The sidecar passes vLLM's own /metrics through here (the EPP needs vllm:num_requests_waiting,
# vllm:kv_cache_usage_perc and vllm:cache_config_info).
UPSTREAM_METRICS_PATH = "/upstream/metrics"
# Upstream: "this timeout should mirror the longest grace period of the pods within the pool".
EPP_GRACE_SECONDS = 130
EPP_UID = 65532  # upstream's image is distroless nonroot

# The ClusterRole the chart ships (templates/gie-epp-rbac.yaml) that every EPP is bound to.
EPP_CLUSTER_ROLE = "hermes-cache-endpoint-picker"
# The condition a routed policy carries (only then): True when routing can choose between pods.
ROUTING = "Routing"

# The kinds spec.routing renders, in apply order (the pool last: the EPP it names comes first).
ROUTING_KINDS: tuple[tuple[str, str], ...] = (
    ("v1", "ServiceAccount"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("v1", "ConfigMap"),
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    (POOL_API_VERSION, POOL_KIND),
    (HTTPROUTE_API_VERSION, "HTTPRoute"),
)


def pool_name(policy: Policy) -> str:
    return policy.name


def epp_name(policy: Policy) -> str:
    return f"{policy.name}-epp"


def epp_selector(policy: Policy) -> dict[str, str]:
    # Not the policy's own selector labels: the InferencePool, Service and PDB select the serving
    # pods by those, and must never pick up the EPP.
    return {"app.kubernetes.io/name": "hermes-cache-epp", "app.kubernetes.io/instance": policy.name}


def epp_labels(policy: Policy) -> dict[str, str]:
    return {
        **epp_selector(policy),
        "app.kubernetes.io/component": "endpoint-picker",
        "app.kubernetes.io/part-of": "hermes-cache",
        "app.kubernetes.io/managed-by": FIELD_MANAGER,
    }


def _meta(policy: Policy, name: str) -> dict[str, Any]:
    meta = _metadata(policy, name)
    meta["labels"] = epp_labels(policy)
    return meta


def endpoint_picker_config(policy: Policy) -> dict[str, Any]:
    """The EPP's ``EndpointPickerConfig``: upstream's default scorers, weighted by spec.routing.weights,
    with the metrics read through the sidecar."""
    w = policy.spec.routing.weights
    scorers = [
        ("queue-scorer", w.queue),
        ("kv-cache-utilization-scorer", w.kvCacheUtilization),
        ("prefix-cache-scorer", w.prefixCache),
    ]
    return {
        "apiVersion": CONFIG_API_VERSION,
        "kind": "EndpointPickerConfig",
        "plugins": [
            {"type": "queue-scorer"},
            {"type": "kv-cache-utilization-scorer"},
            {
                "type": "prefix-cache-scorer",
                "parameters": {
                    # Block size and per-pod capacity from vLLM's vllm:cache_config_info; the
                    # policy's block size only if that metric is missing.
                    "autoTune": True,
                    "blockSizeTokens": policy.spec.engine.blockSize,
                },
            },
            {
                "type": "metrics-data-source",
                "parameters": {"scheme": "http", "path": UPSTREAM_METRICS_PATH, "insecureSkipVerify": True},
            },
            {"type": "core-metrics-extractor"},
        ],
        "schedulingProfiles": [
            {
                "name": "default",
                "plugins": [{"pluginRef": name, "weight": weight} for name, weight in scorers if weight > 0],
            }
        ],
        "dataLayer": {
            "sources": [
                {"pluginRef": "metrics-data-source", "extractors": [{"pluginRef": "core-metrics-extractor"}]}
            ]
        },
    }


def epp_args(policy: Policy) -> list[str]:
    interval = policy.spec.routing.endpointPicker.metricsIntervalMilliseconds
    return [
        "--pool-name", pool_name(policy),
        "--pool-namespace", policy.namespace,
        "--pool-group", POOL_GROUP,
        "--config-file", f"{EPP_CONFIG_DIR}/{EPP_CONFIG_FILE}",
        "--grpc-port", str(EXT_PROC_PORT),
        "--grpc-health-port", str(HEALTH_PORT),
        "--metrics-port", str(METRICS_PORT),
        "--refresh-metrics-interval", f"{interval}ms",
        "--zap-encoder", "json",
        # No OTLP collector is assumed, and /metrics is left open like vLLM's own (with auth on the
        # EPP would need a cluster-wide TokenReview/SubjectAccessReview grant per policy).
        "--tracing=false",
        "--metrics-endpoint-auth=false",
    ]  # fmt: skip


def render_epp_configmap(policy: Policy) -> Manifest:
    text = yaml.safe_dump(endpoint_picker_config(policy), sort_keys=False)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(policy, epp_name(policy)),
        "data": {EPP_CONFIG_FILE: text},
    }


def epp_cluster_role_rules() -> list[dict[str, Any]]:
    """What an EPP reads in its pool's namespace (upstream's epplib ``_rbac.yaml``): the rules of the
    chart's ClusterRole :data:`EPP_CLUSTER_ROLE` (a chart test keeps them equal)."""
    read = ["get", "watch", "list"]
    return [
        {"apiGroups": [""], "resources": ["pods"], "verbs": read},
        {"apiGroups": [POOL_GROUP], "resources": ["inferencepools"], "verbs": read},
        # Optional alpha kinds: the EPP watches them only when their CRDs are installed.
        {
            "apiGroups": ["inference.networking.x-k8s.io"],
            "resources": ["inferenceobjectives", "inferencemodelrewrites"],
            "verbs": read,
        },
    ]


def render_epp_rbac(policy: Policy) -> list[Manifest]:
    """The EPP's ServiceAccount, bound in the policy's namespace to the chart's ClusterRole.

    A RoleBinding to a ClusterRole the chart ships, not a Role per policy: the operator then needs
    only ``bind`` on that one ClusterRole, not the EPP's own read access to every pod (Kubernetes
    lets nobody grant what they do not hold otherwise).
    """
    name = epp_name(policy)
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(policy, name)},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": _meta(policy, name),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": EPP_CLUSTER_ROLE,
            },
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": policy.namespace}],
        },
    ]


def render_epp_deployment(policy: Policy) -> Manifest:
    grpc_probe = {"port": HEALTH_PORT, "service": "inference-extension"}
    container = {
        "name": "epp",
        "image": policy.spec.routing.endpointPicker.image,
        "args": epp_args(policy),
        "ports": [
            {"name": "grpc", "containerPort": EXT_PROC_PORT, "protocol": "TCP"},
            {"name": "grpc-health", "containerPort": HEALTH_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        # NOT_SERVING until the EPP has read its InferencePool: Ready means it can pick.
        "livenessProbe": {"grpc": grpc_probe, "initialDelaySeconds": 5, "periodSeconds": 10},
        "readinessProbe": {"grpc": grpc_probe, "periodSeconds": 2},
        "env": [
            {"name": "NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
        # Upstream suggests 4 CPU / 8 GiB for large fleets; a few replicas need far less.
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}},
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": EPP_UID,
            "runAsGroup": EPP_UID,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "config", "mountPath": EPP_CONFIG_DIR, "readOnly": True}],
    }
    config_hash = _short_hash(render_epp_configmap(policy)["data"][EPP_CONFIG_FILE])
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(policy, epp_name(policy)),
        "spec": {
            # One active EPP: its prefix index lives in memory (upstream's recommendation).
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": epp_selector(policy)},
            "template": {
                "metadata": {
                    "labels": epp_labels(policy),
                    # The EPP reads its config file once: a change restarts it.
                    "annotations": {"hermes-cache.dev/epp-config-hash": config_hash},
                },
                "spec": {
                    "serviceAccountName": epp_name(policy),
                    "terminationGracePeriodSeconds": EPP_GRACE_SECONDS,
                    "containers": [container],
                    "volumes": [{"name": "config", "configMap": {"name": epp_name(policy)}}],
                    "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                    "enableServiceLinks": False,
                },
            },
        },
    }


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def render_epp_service(policy: Policy) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(policy, epp_name(policy)),
        "spec": {
            "type": "ClusterIP",
            "selector": epp_selector(policy),
            "ports": [
                {
                    "name": "grpc-ext-proc",
                    "port": EXT_PROC_PORT,
                    "targetPort": "grpc",
                    "protocol": "TCP",
                    "appProtocol": "http2",
                },
                {"name": "http-metrics", "port": METRICS_PORT, "targetPort": "metrics", "protocol": "TCP"},
            ],
        },
    }


def render_inference_pool(policy: Policy) -> Manifest:
    meta = _metadata(policy, pool_name(policy))
    return {
        "apiVersion": POOL_API_VERSION,
        "kind": POOL_KIND,
        "metadata": meta,
        "spec": {
            "selector": {"matchLabels": serving_selector(policy)},
            "targetPorts": [{"number": policy.spec.sidecar.port}],
            "appProtocol": "http",
            "endpointPickerRef": {
                "kind": "Service",
                "name": epp_name(policy),
                "port": {"number": EXT_PROC_PORT},
                "failureMode": policy.spec.routing.failureMode,
            },
        },
    }


def render_httproute(policy: Policy) -> Manifest | None:
    gw = policy.spec.routing.gateway
    if gw is None:
        return None
    parent: dict[str, Any] = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gw.name}
    if gw.namespace:
        parent["namespace"] = gw.namespace
    if gw.sectionName:
        parent["sectionName"] = gw.sectionName
    return {
        "apiVersion": HTTPROUTE_API_VERSION,
        "kind": "HTTPRoute",
        "metadata": _metadata(policy, pool_name(policy)),
        "spec": {
            "parentRefs": [parent],
            "rules": [
                {
                    "backendRefs": [{"group": POOL_GROUP, "kind": POOL_KIND, "name": pool_name(policy)}],
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    # upstream chart's default: long generations outlive a gateway's 15 s default
                    "timeouts": {"request": "300s"},
                }
            ],
        },
    }


def render_routing(policy: Policy) -> list[Manifest]:
    """Every object spec.routing asks for (none when it is off), in :data:`ROUTING_KINDS` order."""
    if not policy.spec.routing.enabled:
        return []
    objs = [
        *render_epp_rbac(policy),
        render_epp_configmap(policy),
        render_epp_deployment(policy),
        render_epp_service(policy),
        render_inference_pool(policy),
    ]
    route = render_httproute(policy)
    if route is not None:
        objs.append(route)
    return objs


def single_endpoint(policy: Policy) -> bool:
    """Routing on, but never more than one pod to choose from (no replicas, no autoscaling beyond one)."""
    s = policy.spec
    most = max(s.replicas, s.autoscaling.maxReplicas if s.autoscaling.enabled else 0)
    return s.routing.enabled and most <= 1


def routing_warning(policy: Policy) -> str | None:
    """Why routing cannot help this policy (a warning, not a refusal: the objects are still applied)."""
    if not single_endpoint(policy):
        return None
    s = policy.spec
    return (
        f"spec.routing.enabled is true but the policy never has more than one replica "
        f"(spec.replicas {s.replicas}, spec.autoscaling.enabled {str(s.autoscaling.enabled).lower()}"
        + (f", maxReplicas {s.autoscaling.maxReplicas}" if s.autoscaling.enabled else "")
        + "): the endpoint picker has one pod to choose from; raise spec.replicas or enable "
        "spec.autoscaling with maxReplicas >= 2, or turn routing off"
    )


def routing_summary(policy: Policy) -> str:
    """One line for ``hermes-cache plan``."""
    r = policy.spec.routing
    if not r.enabled:
        return "off (the Service spreads requests evenly)"
    w = r.weights
    route = f", HTTPRoute from Gateway {r.gateway.name}" if r.gateway else ""
    return (
        f"InferencePool {pool_name(policy)} -> endpoint picker {r.endpointPicker.image} (scorers queue "
        f"{w.queue}, kv-cache {w.kvCacheUtilization}, prefix {w.prefixCache}; {r.failureMode}){route}"
    )


def routing_condition(policy: Policy) -> Cond | None:
    """The ``Routing`` condition (absent when routing is off). False is a warning: applied anyway."""
    if not policy.spec.routing.enabled:
        return None
    warning = routing_warning(policy)
    if warning is not None:
        return Cond(ROUTING, "False", "SingleReplica", warning)
    return Cond(
        ROUTING,
        "True",
        "PoolRendered",
        f"InferencePool {pool_name(policy)} picks among the serving pods through the endpoint picker "
        f"Service {epp_name(policy)}:{EXT_PROC_PORT} ({policy.spec.routing.failureMode})",
    )
