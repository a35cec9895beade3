"""The one place that chooses a dialect by ``upstream.kind``."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry

from hermes_sidecar.config import SidecarConfig
from hermes_sidecar.dialects.anthropic import build_dialect
from hermes_sidecar.dialects.base import Dialect
from hermes_sidecar.dialects.openai import OpenAIDialect

__all__ = ["for_upstream"]


def for_upstream(
    cfg: SidecarConfig, registry: CollectorRegistry, *, tenant_label: Callable[[str], str] | None = None
) -> Dialect:
    """The dialect of ``upstream.kind``, its metrics (if any) in ``registry``, their tenant label values
    from ``tenant_label`` (the sidecar's cap on distinct tenants)."""
    if cfg.upstream.kind == "anthropic":
        return build_dialect(cfg, registry, tenant_label=tenant_label)
    return OpenAIDialect(store_truncated=cfg.cache.storeTruncated)
