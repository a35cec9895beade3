"""Upstream wire formats behind one interface (:class:`~hermes_sidecar.dialects.base.Dialect`).

``base`` is the interface and the shared request/answer types; ``openai`` speaks the
OpenAI-compatible API of vLLM; ``anthropic/`` the Anthropic Messages API; ``registry`` is the only
place that chooses one by ``upstream.kind``. Dialects never import each other. This package's
``__init__`` imports only ``base``: modules below the dialects (``keys``) use its types.
"""

from hermes_sidecar.dialects.base import (
    CacheableRequest,
    CachedAnswer,
    Dialect,
    NotCacheable,
    ReplayInfo,
    StreamRecorder,
    Turn,
)

__all__ = [
    "CacheableRequest",
    "CachedAnswer",
    "Dialect",
    "NotCacheable",
    "ReplayInfo",
    "StreamRecorder",
    "Turn",
]
