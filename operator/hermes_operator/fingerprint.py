"""The producer fingerprint: what actually produces a policy's answers, as one stable string.

The sidecar partitions its exact and semantic entries, and vLLM's ``cache_salt``, by it
(``hermes_sidecar.tenants.Tenancy.producer``), so an answer is only ever served by the model and
engine that wrote it. A new model rolled out under the same served name starts from an empty cache
without a ``cacheVersion`` change, and during the rolling update each pod reads and writes only its
own partition: the fingerprint reaches the sidecar as the environment variable
``hermes_sidecar.contract.PRODUCER_ENV`` of the pod template (``render.py``), fixed for the life of the
pod, and not through the shared ConfigMap, which old pods would re-read on a restart.

What goes in (:data:`FIELDS`): what changes the text a request gets back.

* ``spec.model.name`` and ``spec.model.storage`` (claim and folder): the weights. A revision pinned
  with ``--revision`` in ``spec.engine.extraArgs`` is covered by the next item.
* ``spec.engine.extraArgs``, whole: ``--revision``, ``--quantization``, ``--generation-config``,
  ``--override-generation-config``, chat templates... An argument that changes nothing (a log level)
  splits the cache too: a cold start on a change that rolls every pod anyway, never a wrong answer.
* ``spec.engine.image``: another vLLM build samples, templates and tokenises with other code.
* ``spec.engine.dtype`` and ``spec.engine.kvCacheDtype``: other numerics, other tokens.
* ``spec.engine.maxModelLen``: vLLM's ``max_tokens`` default for a request that sets none.
* ``spec.device``: CPU and GPU kernels compute differently.

What stays out: everything that only changes how many answers are produced and how fast (replicas,
autoscaling, parallelism, memory, batch sizes, block size, prefix caching, KV offload, shutdown),
the cache's own settings (``spec.semanticCache``, ``spec.sidecar``, trust groups, experiments), the
served name (requests carry it and it partitions anyway), and ``spec.cacheVersion``, which reaches
the sidecars through Redis and must never touch the pod template (a test holds both).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .spec import PolicySpec

# Bump when the meaning of the fingerprint changes: every policy then starts a new partition once.
SCHEME = "v1"
# The spec fields that go in, by path (the docstring says why each one does).
FIELDS = (
    "model.name",
    "model.storage",
    "engine.image",
    "engine.dtype",
    "engine.kvCacheDtype",
    "engine.maxModelLen",
    "engine.extraArgs",
    "device",
)


def producer_inputs(spec: PolicySpec) -> dict[str, Any]:
    """The values the fingerprint is made of, by path (shown by ``hermes-cache plan`` as the hash)."""
    storage = spec.model.storage
    return {
        "model.name": spec.model.name,
        # the folder vLLM loads: an empty path means the model name (render.model_path)
        "model.storage": None if storage is None else [storage.claimName, storage.path or spec.model.name],
        "engine.image": spec.engine.image,
        "engine.dtype": spec.engine.dtype,
        "engine.kvCacheDtype": spec.engine.kvCacheDtype,
        "engine.maxModelLen": spec.engine.maxModelLen,
        "engine.extraArgs": list(spec.engine.extraArgs),
        "device": spec.device,
    }


def producer_fingerprint(spec: PolicySpec) -> str:
    """``<scheme>-<16 hex digits>``: equal for equal :func:`producer_inputs`, whatever else differs."""
    inputs = producer_inputs(spec)
    assert tuple(inputs) == FIELDS
    text = json.dumps(inputs, sort_keys=True, separators=(",", ":"))
    return f"{SCHEME}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


__all__ = ["FIELDS", "SCHEME", "producer_fingerprint", "producer_inputs"]
