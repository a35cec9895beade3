"""All Kubernetes I/O of the operator, behind one small interface.

:class:`Kube` is what ``handlers.reconcile`` needs: server-side apply under one field manager, a
read, a delete, a status merge patch, an Event and the pods of a policy. :class:`KubeClient`
implements it with the official client (honours ``KUBECONFIG``; in a pod, the ServiceAccount); unit
tests pass their own implementation and the end-to-end tests run this one against a real API server.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from typing import Any, Protocol

from .render import FIELD_MANAGER, Manifest
from .spec import API_VERSION, KIND

EVENT_SOURCE = "hermes-cache-operator"


class Kube(Protocol):
    def apply(self, manifest: Manifest) -> Manifest:
        """Server-side apply ``manifest`` with field manager ``hermes-cache-operator`` (forcing conflicts)."""
        ...

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> Manifest | None: ...

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        """Delete if present; True when something was deleted."""
        ...

    def patch_policy_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        """JSON merge patch of ``status`` (lists are replaced whole; ``None`` removes a key)."""
        ...

    def event(self, namespace: str, name: str, uid: str, type_: str, reason: str, message: str) -> None: ...

    def secret_value(self, namespace: str, name: str, key: str) -> str:
        """The decoded value of ``key`` in Secret ``name``; :class:`LookupError` naming what is missing."""
        ...

    def list_pods(self, namespace: str, selector: str) -> list[Manifest]:
        """Pods matching a label selector (to say why a policy's replicas are not ready)."""
        ...


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class KubeClient:
    """:class:`Kube` over the Kubernetes API (``kubernetes`` dynamic client, discovery cached)."""

    def __init__(self, pool_size: int = 32) -> None:
        from kubernetes import client, config, dynamic

        try:
            config.load_kube_config()  # type: ignore[no-untyped-call]
        except config.ConfigException:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
        cfg = client.Configuration.get_default_copy()
        # urllib3 keeps cpu_count * 5 connections by default (10 on two cores): fewer than the reconcile
        # threads plus the debounced and drift passes in flight, so connections were dropped and
        # re-opened (a TLS handshake each) under load. ``pool_size`` should exceed the worker count.
        cfg.connection_pool_maxsize = pool_size
        self._api = client.ApiClient(cfg)
        self._dyn = dynamic.DynamicClient(self._api)  # type: ignore[no-untyped-call]
        self._core = client.CoreV1Api(self._api)

    def _resource(self, api_version: str, kind: str) -> Any:
        return self._dyn.resources.get(api_version=api_version, kind=kind)

    def apply(self, manifest: Manifest) -> Manifest:
        res = self._resource(manifest["apiVersion"], manifest["kind"])
        meta = manifest["metadata"]
        out = self._dyn.server_side_apply(  # type: ignore[no-untyped-call]
            res,
            body=manifest,
            name=meta["name"],
            namespace=meta.get("namespace"),
            field_manager=FIELD_MANAGER,
            force_conflicts=True,
        )
        return dict(out.to_dict())

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> Manifest | None:
        from kubernetes.dynamic.exceptions import NotFoundError

        try:
            obj = self._resource(api_version, kind).get(name=name, namespace=namespace)
        except NotFoundError:
            return None
        return dict(obj.to_dict())

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        from kubernetes.dynamic.exceptions import NotFoundError

        try:
            self._resource(api_version, kind).delete(name=name, namespace=namespace)
        except NotFoundError:
            return False
        return True

    def patch_policy_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        res = self._resource(API_VERSION, KIND)
        self._dyn.patch(  # type: ignore[no-untyped-call]
            res.subresources["status"],
            body={"status": status},
            name=name,
            namespace=namespace,
            content_type="application/merge-patch+json",
        )

    def secret_value(self, namespace: str, name: str, key: str) -> str:
        from kubernetes import client

        try:
            secret = self._core.read_namespaced_secret(name, namespace)
        except client.ApiException as exc:
            if exc.status == 404:
                raise LookupError(f"Secret {namespace}/{name} not found") from None
            raise
        data = secret.data or {}
        if key not in data:
            raise LookupError(
                f"Secret {namespace}/{name} has no key {key!r} (it has: {', '.join(sorted(data)) or 'none'})"
            )
        return base64.b64decode(data[key]).decode()

    def list_pods(self, namespace: str, selector: str) -> list[Manifest]:
        pods = self._resource("v1", "Pod").get(namespace=namespace, label_selector=selector)
        return list(pods.to_dict().get("items") or [])

    def event(self, namespace: str, name: str, uid: str, type_: str, reason: str, message: str) -> None:
        from kubernetes import client

        stamp = dt.datetime.now(dt.UTC)
        # A name derived from the content: the same refusal seen twice is one Event (409 on the second).
        digest = hashlib.sha256(f"{uid}{reason}{message}".encode()).hexdigest()[:10]
        body = client.CoreV1Event(
            metadata=client.V1ObjectMeta(name=f"{name}.{digest}", namespace=namespace),
            involved_object=client.V1ObjectReference(
                api_version=API_VERSION, kind=KIND, name=name, namespace=namespace, uid=uid
            ),
            type=type_,
            reason=reason,
            message=message[:1024],
            source=client.V1EventSource(component=EVENT_SOURCE),
            reporting_component=EVENT_SOURCE,
            reporting_instance=EVENT_SOURCE,
            first_timestamp=stamp,
            last_timestamp=stamp,
            count=1,
        )
        try:
            self._core.create_namespaced_event(namespace, body)
        except client.ApiException as exc:
            if exc.status != 409:
                raise
