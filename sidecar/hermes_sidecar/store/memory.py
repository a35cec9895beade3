"""The in-process store: bounded LRU over all entries, vectors searched per partition with numpy."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from hermes_sidecar.store import Entry


class MemoryStore:
    name = "memory"

    def __init__(self, max_entries: int) -> None:
        self._max = max_entries
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._partitions: dict[str, dict[str, Entry]] = {}
        # stacked vectors per partition, rebuilt only after the partition changed
        self._matrices: dict[str, tuple[list[Entry], npt.NDArray[np.float32]]] = {}

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._matrices.pop(entry.partition, None)
            part = self._partitions.get(entry.partition)
            if part is not None:
                part.pop(key, None)
                if not part:
                    del self._partitions[entry.partition]

    async def get_exact(self, key: str, now: float) -> Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires <= now:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry

    async def search(
        self, partition: str, vector: npt.NDArray[np.float32], k: int, now: float
    ) -> list[tuple[Entry, float]]:
        part = self._partitions.get(partition)
        if not part:
            return []
        cached = self._matrices.get(partition)
        if cached is None:
            entries = [e for e in part.values() if e.vector is not None and e.vector.shape == vector.shape]
            if not entries:
                return []
            cached = (entries, np.stack([e.vector for e in entries if e.vector is not None]))
            self._matrices[partition] = cached
        candidates, matrix = cached
        sims = matrix @ vector
        top = np.argpartition(-sims, k)[:k] if len(sims) > k else np.arange(len(sims))
        found: list[tuple[Entry, float]] = []
        expired: list[str] = []
        for i in top[np.argsort(-sims[top])]:
            entry = candidates[i]
            if entry.expires <= now:
                expired.append(entry.key)  # expiry is checked on what a lookup touches, not by a sweep
                continue
            found.append((entry, float(sims[i])))
            self._entries.move_to_end(entry.key)
        for key in expired:
            self._drop(key)
        return found

    async def put(self, entry: Entry) -> None:
        self._drop(entry.key)
        self._entries[entry.key] = entry
        self._partitions.setdefault(entry.partition, {})[entry.key] = entry
        self._matrices.pop(entry.partition, None)
        while len(self._entries) > self._max:
            self._drop(next(iter(self._entries)))

    async def delete_generation(self, generation: str) -> int:
        doomed = [k for k, e in self._entries.items() if e.generation == generation]
        for k in doomed:
            self._drop(k)
        return len(doomed)

    async def delete_tag(self, generation: str, tag: str) -> int:
        doomed = [k for k, e in self._entries.items() if e.generation == generation and tag in e.tags]
        for k in doomed:
            self._drop(k)
        return len(doomed)

    async def count(self, generation: str) -> int:
        return sum(1 for e in self._entries.values() if e.generation == generation)

    async def trim(self, generation: str, max_entries: int) -> None:
        """Unsupported, and not needed: ``put`` evicts the least recently used entry beyond the bound."""
        return None

    def follow(self, current: Callable[[], str]) -> None:
        """Unsupported, and not needed: one index for all generations, and every key names its own."""

    async def ping(self) -> None:
        return None

    async def aclose(self) -> None:
        return None
