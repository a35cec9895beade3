"""All Kubernetes I/O of the operator, behind one small interface.

:class:`Kube` is what :func:`~hermes_operator.reconcile.reconcile` needs: server-side apply under
one field manager, a read, a delete, a status merge patch, an Event and the pods of a policy.
:class:`KubeClient` implements it with the official client (honours ``KUBECONFIG``; in a pod, the
ServiceAccount); unit tests pass their own implementation and the end-to-end tests run this one
against a real API server. A refusal of the API server leaves this module as :class:`KubeError`,
carrying the server's own message rather than the client's HTTP dump around it.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from typing import Any, Protocol

from hermes_sidecar.errors import HermesError

from .render import FIELD_MANAGER, Manifest
from .spec import API_VERSION, KIND

EVENT_SOURCE = "hermes-cache-operator"


class KubeError(HermesError):
    """The API server refused a request: ``str()`` is its own message, ``status`` the HTTP status."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


@contextlib.contextmanager
def api_errors() -> Iterator[None]:
    """Turn the client's ApiException (status line, headers and body in one string) into KubeError."""
    from kubernetes.client import ApiException

    try:
        yield
    except ApiException as exc:
        body = exc.body
        message = str(exc)
        if body:
            try:
                message = str(json.loads(body).get("message") or body)
            except (ValueError, AttributeError):
                message = str(body)
        raise KubeError(message, int(exc.status or 0)) from exc


class Kube(Protocol):
    """The operator's Kubernetes I/O. A refusal of the API server is a :class:`KubeError`."""

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
        meta = manifest["metadata"]
        with api_errors():
            out = self._dyn.server_side_apply(  # type: ignore[no-untyped-call]
                self._resource(manifest["apiVersion"], manifest["kind"]),
                body=manifest,
                name=meta["name"],
                namespace=meta.get("namespace"),
                field_manager=FIELD_MANAGER,
                force_conflicts=True,
            )
        return dict(out.to_dict())

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> Manifest | None:
        from kubernetes.dynamic.exceptions import NotFoundError

        with api_errors():
            try:
                obj = self._resource(api_version, kind).get(name=name, namespace=namespace)
            except NotFoundError:
                return None
        return dict(obj.to_dict())

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        from kubernetes.dynamic.exceptions import NotFoundError

        with api_errors():
            try:
                self._resource(api_version, kind).delete(name=name, namespace=namespace)
            except NotFoundError:
                return False
        return True

    def patch_policy_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        with api_errors():
            self._dyn.patch(  # type: ignore[no-untyped-call]
                self._resource(API_VERSION, KIND).subresources["status"],
                body={"status": status},
                name=name,
                namespace=namespace,
                content_type="application/merge-patch+json",
            )

    def secret_value(self, namespace: str, name: str, key: str) -> str:
        try:
            with api_errors():
                secret = self._core.read_namespaced_secret(name, namespace)
        except KubeError as exc:
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
        with api_errors():
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
            with api_errors():
                self._core.create_namespaced_event(namespace, body)
        except KubeError as exc:
            if exc.status != 409:
                raise
