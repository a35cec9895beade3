"""Cache stores behind one protocol: ``memory`` (in-process, bounded LRU) and ``redis`` (redisvl vector
index). Both keep the same semantics: absolute TTLs that a hit never extends, lookups confined to one
partition, entries tagged with their generation so a whole generation can be deleted in the background.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from hermes_sidecar.errors import StoreError


@dataclass
class Entry:
    key: str  # exact key (already includes the partition)
    partition: str
    generation: str
    answer: str  # CachedAnswer JSON
    created: float
    expires: float  # absolute unix time; never moved by a hit
    text: str | None = None  # the embedded text (None: exact reuse only)
    context: str = ""  # earlier conversation turns, for the guard
    vector: npt.NDArray[np.float32] | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)


class Store(Protocol):
    name: str

    async def get_exact(self, key: str, now: float) -> Entry | None: ...

    async def search(
        self, partition: str, vector: npt.NDArray[np.float32], k: int, now: float
    ) -> list[tuple[Entry, float]]:
        """Nearest entries of ``partition`` with their cosine similarity, best first, unexpired only."""
        ...

    async def put(self, entry: Entry) -> None: ...

    async def delete_generation(self, generation: str) -> int:
        """Delete every entry of ``generation``, in batches; returns how many were removed."""
        ...

    async def delete_tag(self, generation: str, tag: str) -> int: ...

    async def count(self, generation: str) -> int: ...

    async def trim(self, generation: str, max_entries: int) -> int | None:
        """Delete the least recently used entries of ``generation`` beyond ``max_entries``; returns how
        many, or None for a store that bounds itself on every put (then there is never anything to trim)."""
        ...

    def follow(self, current: Callable[[], str]) -> None:
        """Serve lookups from the generation ``current()`` names (the sidecar's follower). A store that
        keeps all generations in one index ignores it: its keys carry the generation already."""
        ...

    async def ping(self) -> None:
        """Raise StoreError when the store cannot serve."""
        ...

    async def aclose(self) -> None: ...


__all__ = ["Entry", "Store", "StoreError"]
