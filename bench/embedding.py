"""One embedding model for every cache in a comparison: the sidecar's own local embedder.

RedisVL's and GPTCache's default models come from model hubs, which are unreachable here; giving
them our embedder also makes the comparison about the cache decision, not about the model. The
memo means each distinct text is embedded once per run, whichever cache asks for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from bench.common import Skip

BatchEmbed = Callable[[Sequence[str]], np.ndarray]


class MemoEmbedder:
    """Embeds through the sidecar's embedder, remembering vectors per text; counts real embedding work."""

    def __init__(self, embed_batch: BatchEmbed, name: str) -> None:
        self._embed_batch = embed_batch
        self.name = name
        self._memo: dict[str, np.ndarray] = {}
        self.texts_embedded = 0
        self.seconds_embedding = 0.0
        self.dims = int(self.batch(["dimension probe"]).shape[1])

    def batch(self, texts: Sequence[str]) -> np.ndarray:
        # Sorted by length: a batch is padded to its longest text, so similar lengths waste less work.
        missing = sorted((t for t in dict.fromkeys(texts) if t not in self._memo), key=len)
        for i in range(0, len(missing), 64):
            chunk = missing[i : i + 64]
            t0 = time.perf_counter()
            vecs = np.asarray(self._embed_batch(chunk), dtype=np.float32)
            self.seconds_embedding += time.perf_counter() - t0
            self.texts_embedded += len(chunk)
            for text, vec in zip(chunk, vecs, strict=True):
                self._memo[text] = vec
        return np.stack([self._memo[t] for t in texts]) if texts else np.zeros((0, 0), np.float32)

    def uncached(self, texts: Sequence[str]) -> np.ndarray:
        """Straight through the embedder, no memo: for timing what a request pays."""
        return np.asarray(self._embed_batch(texts), dtype=np.float32)

    def one(self, text: str) -> np.ndarray:
        vec: np.ndarray = self.batch([text])[0]
        return vec


def hermes_embedder() -> MemoEmbedder:
    """The sidecar's local embedder (`embedding.provider: local`), exactly as the sidecar builds it."""
    try:
        from hermes_sidecar import embed as hembed
        from hermes_sidecar.config import EmbeddingConfig
    except ImportError as exc:
        raise Skip(f"the sidecar's embedder is not importable yet ({exc})") from None
    try:
        embedder = hembed.build_embedder(EmbeddingConfig(provider="local"))
    except hembed.EmbedderError as exc:
        raise Skip(f"the sidecar's local embedder cannot load: {exc}") from None
    embed_sync = getattr(embedder, "embed_sync", None)
    if callable(embed_sync):

        def batch(texts: Sequence[str]) -> np.ndarray:
            return np.asarray(embed_sync(list(texts)), dtype=np.float32)
    else:  # only the async protocol method

        def batch(texts: Sequence[str]) -> np.ndarray:
            return np.asarray(asyncio.run(embedder.embed(list(texts))), dtype=np.float32)

    return MemoEmbedder(batch, embedder.name)


def redisvl_vectorizer(embedder: MemoEmbedder) -> Any:
    """Our embedder behind RedisVL's CustomVectorizer (what a RedisVL user does for a custom model)."""
    from redisvl.utils.vectorize import CustomVectorizer

    return CustomVectorizer(
        embed=lambda text: embedder.one(str(text)).tolist(),
        embed_many=lambda texts: embedder.batch([str(t) for t in texts]).tolist(),
    )


def gptcache_embedding(embedder: MemoEmbedder) -> Any:
    """Our embedder as a GPTCache BaseEmbedding (GPTCache's documented extension point)."""
    from gptcache.embedding.base import BaseEmbedding

    class HermesEmbedding(BaseEmbedding):  # type: ignore[misc]
        def to_embeddings(self, data: Any, **_: Any) -> np.ndarray:
            return embedder.one(str(data))

        @property
        def dimension(self) -> int:
            return embedder.dims

    return HermesEmbedding()
