"""Who is asking: the tenant of a request, from the gateway's header and/or the client's credential.

The pipeline keys and partitions on it; the Anthropic transport labels billed calls with it. A hash
of the credential stands in for it, never the credential itself. :class:`Tenancy` adds what the
config says about tenants: trust groups (who shares a vLLM ``cache_salt``), experiment variants and
the producer fingerprint (both partition entries and salts).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

# The operator sets it per pod (render.py): a pod reads and writes only its own producer's partition,
# whatever the shared ConfigMap says during a rolling update.
from hermes_sidecar.contract import PRODUCER_ENV

if TYPE_CHECKING:
    from hermes_sidecar.config import SidecarConfig

__all__ = ["DEFAULT_VARIANT", "PRODUCER_ENV", "UNKNOWN_VARIANT", "Tenancy", "tenant_of"]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _text(value: str) -> str:
    """A header value as the text its sender meant. ASGI servers decode header octets as latin-1, so
    UTF-8 arrives as mojibake ("tÃ©nant"): read it as UTF-8 when it is that, else keep it as it came.
    Either way the same octets always give the same tenant."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def tenant_of(headers: Mapping[str, str], tenant_header: str, source: str = "header-or-credential") -> str:
    """The tenant: from the trusted header set by the gateway and/or a hash of the credential
    (``source``, see ``tenantSource`` in the config); ``anonymous`` with neither. Never the body: a
    client could write anything there. Header values in any encoding are accepted (see ``_text``)."""
    value = _text(headers.get(tenant_header.lower()) or "").strip()
    cred = ""
    for name in ("authorization", "x-api-key", "api-key"):
        if headers.get(name):
            cred = "c:" + _sha(headers[name].strip())[:24]
            break
    if source == "credential":
        return cred or "anonymous"
    if source == "header-and-credential":
        return f"h:{value}|{cred}" if value or cred else "anonymous"
    if value:
        return "h:" + value
    return cred or "anonymous"


DEFAULT_VARIANT = "default"
UNKNOWN_VARIANT = "unknown"


@dataclass(frozen=True)
class Tenancy:
    """Who is asking, whom they trust, and which experiment variant they are in.

    * ``tenant(headers)``: the tenant id (:func:`tenant_of`).
    * ``salt_identity(tenant)``: what vLLM's ``cache_salt`` is made of: the trust group (``g:<name>``,
      never a tenant id, which starts with ``h:``/``c:`` or is ``anonymous``) or the tenant itself.
    * ``variant(headers, tenant)``: ``""`` without a variant, the variant's name, or None for a header
      value outside the configured variants (the request passes through uncached).
    * ``producer``: the fingerprint of what produces the answers.
    """

    tenant_header: str = "x-tenant-id"
    tenant_source: str = "header-or-credential"
    groups: Mapping[str, str] = field(default_factory=dict)  # tenant id -> group name
    variant_header: str = ""
    variants: frozenset[str] = frozenset()
    tenant_variants: Mapping[str, str] = field(default_factory=dict)
    producer: str = ""

    @classmethod
    def from_config(cls, cfg: SidecarConfig, environ: Mapping[str, str] | None = None) -> Tenancy:
        env = os.environ if environ is None else environ
        return cls(
            tenant_header=cfg.tenantHeader,
            tenant_source=cfg.tenantSource,
            groups={t: g.name for g in cfg.tenancy.trustGroups for t in g.tenants},
            variant_header=cfg.experiment.header.lower(),
            variants=frozenset(cfg.experiment.variants),
            tenant_variants=dict(cfg.experiment.tenantVariants),
            producer=env.get(PRODUCER_ENV, "").strip() or cfg.producer,
        )

    def tenant(self, headers: Mapping[str, str]) -> str:
        return tenant_of(headers, self.tenant_header, self.tenant_source)

    def salt_identity(self, tenant: str) -> str:
        group = self.groups.get(tenant)
        return f"g:{group}" if group is not None else tenant

    def variant(self, headers: Mapping[str, str], tenant: str) -> str | None:
        if self.variant_header:
            value = _text(headers.get(self.variant_header) or "").strip()
            if value:
                return value if value in self.variants else None
        return self.tenant_variants.get(tenant, "")

    @staticmethod
    def label(variant: str | None) -> str:
        """The ``variant`` label of ``hermes_cache_requests_total``."""
        if variant is None:
            return UNKNOWN_VARIANT
        return variant or DEFAULT_VARIANT
