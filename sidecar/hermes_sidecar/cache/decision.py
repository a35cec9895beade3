"""What the cache decided for one request: a hit (exact or semantic), a miss, a bypass, or an error."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from hermes_sidecar.generations import Generation
from hermes_sidecar.keys import Keys
from hermes_sidecar.store import Entry

__all__ = ["BYPASS", "ERROR", "HIT_EXACT", "HIT_SEMANTIC", "MISS", "Decision"]

HIT_EXACT, HIT_SEMANTIC, MISS, BYPASS, ERROR = "hit-exact", "hit-semantic", "miss", "bypass", "error"


@dataclass
class Decision:
    result: str  # one of HIT_EXACT, HIT_SEMANTIC, MISS, BYPASS, ERROR
    generation: Generation
    keys: Keys | None = None
    entry: Entry | None = None
    similarity: float | None = None
    reason: str | None = None  # bypass reason, error component, guard rule of the best refused candidate
    vector: npt.NDArray[np.float32] | None = field(default=None, repr=False)
    tags: tuple[str, ...] = ()
    # cache.toolPlans: the request's stage (plan | results, None without tools), and whether it is a
    # live-data question that went through the cache instead of being passed through
    stage: str | None = None
    live: bool = False

    @property
    def header(self) -> str:
        """``x-hermes-cache`` value: an error went upstream like a miss."""
        return MISS if self.result == ERROR else self.result

    @property
    def metric(self) -> str:
        return self.result.replace("-", "_")
