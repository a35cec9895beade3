"""What a reconcile talks to, in one object: the Kube API, the generation stores, metrics, the clock.

Unit tests build an :class:`Env` with their own :class:`~hermes_operator.kube.Kube` and store
factory and call :func:`~hermes_operator.reconcile.reconcile` as a plain function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .children import AppliedMemo
from .generations import GenerationStore
from .kube import Kube, now_rfc3339
from .metrics import OperatorMetrics
from .render import DEFAULT_SIDECAR_IMAGE_REF

StoreFactory = Callable[[str], GenerationStore]


@dataclass
class Env:
    """What reconcile talks to. ``now`` returns RFC 3339 timestamps (tests pin it)."""

    kube: Kube
    stores: StoreFactory
    metrics: OperatorMetrics = field(default_factory=OperatorMetrics)
    now: Callable[[], str] = now_rfc3339
    # The sidecar image of policies that name none (spec.sidecar.image): the operator's own.
    sidecar_image: str = DEFAULT_SIDECAR_IMAGE_REF
    # What the last full apply of each policy left behind (see children.ensure_children).
    applied: AppliedMemo = field(default_factory=dict)
