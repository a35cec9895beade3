"""The verifier: a pairwise judge that confirms a semantic candidate before it is served.

Two kinds (``cache.guard.verifier.kind``), one protocol (:class:`Verifier`) the cache calls:

- ``rerank`` (``rerank.py``): a cross-encoder over the rerank wire format, all candidates in one call.
- ``served-model`` (``served.py``): the chat model the sidecar serves, one yes/no judgement per
  candidate with ``max_tokens: 1``, scored from the first token's logprobs.

Both answer a :class:`Judgement` (scores and what each HTTP request cost) or raise
:class:`VerifierError`, which the cache handles by ``onError``.
"""

from __future__ import annotations

from hermes_sidecar.config import UpstreamConfig, VerifierConfig
from hermes_sidecar.verify.base import Cost, Judgement, Verifier, VerifierError
from hermes_sidecar.verify.rerank import RerankVerifier
from hermes_sidecar.verify.served import ServedModelVerifier

__all__ = [
    "Cost",
    "Judgement",
    "RerankVerifier",
    "ServedModelVerifier",
    "Verifier",
    "VerifierError",
    "build_verifier",
]


def build_verifier(cfg: VerifierConfig | None, upstream: UpstreamConfig | None = None) -> Verifier | None:
    """The configured verifier, or None; served-model asks ``upstream.url`` unless ``url`` is set."""
    if cfg is None:
        return None
    if cfg.kind == "served-model":
        return ServedModelVerifier(cfg, (upstream or UpstreamConfig()).url)
    return RerankVerifier(cfg)
