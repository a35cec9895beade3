"""The verifier: a pairwise model that confirms a semantic candidate before it is served.

A bi-encoder scores each question alone, so a reworded paraphrase can score below a one-word trap
(docs/sidecar.md). A cross-encoder reads both questions together. The sidecar asks one over the rerank
wire format, ``POST {url}/rerank`` with ``{"model", "query", "documents"}`` answered by
``{"results": [{"index", "relevance_score"}, ...]}``: what vLLM serves for a cross-encoder model
(``vllm serve <model>``), and what Jina-, Cohere- and Infinity-compatible rerank servers speak.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import httpx

from hermes_sidecar.config import VerifierConfig
from hermes_sidecar.errors import VerifierError as VerifierError


class RerankVerifier:
    def __init__(self, cfg: VerifierConfig) -> None:
        self.cfg = cfg
        self.url = cfg.url + "/rerank"
        headers = {}
        # An unreadable key file is reported on every call, through the same failure path as an
        # unreachable verifier (cache.guard.verifier.onError), not as a crash at start.
        self._key_error: str | None = None
        if cfg.apiKeyFile:
            try:
                headers["authorization"] = "Bearer " + Path(cfg.apiKeyFile).read_text().strip()
            except OSError as exc:
                self._key_error = (
                    f"cache.guard.verifier.apiKeyFile {cfg.apiKeyFile!r} cannot be read: {exc.strerror}"
                )
        self._client = httpx.AsyncClient(timeout=cfg.timeoutSeconds, headers=headers)

    async def scores(self, query: str, documents: Sequence[str]) -> list[float]:
        """One relevance score per document, in the order given."""
        if self._key_error:
            raise VerifierError(self._key_error)
        body = {"model": self.cfg.model, "query": query, "documents": list(documents)}
        try:
            resp = await self._client.post(self.url, json=body)
        except httpx.HTTPError as exc:
            raise VerifierError(f"verifier {self.url} failed: {type(exc).__name__}: {exc}") from exc
        if resp.status_code != 200:
            raise VerifierError(f"verifier {self.url} answered HTTP {resp.status_code}: {resp.text[:200]!r}")
        try:
            results = resp.json()["results"]
            by_index = {int(r["index"]): float(r["relevance_score"]) for r in results}
        except (ValueError, KeyError, TypeError) as exc:
            raise VerifierError(
                f"verifier {self.url} answered without results[].index/relevance_score: {resp.text[:200]!r}"
            ) from exc
        missing = [i for i in range(len(documents)) if i not in by_index]
        if missing:
            raise VerifierError(
                f"verifier {self.url} scored {len(by_index)} of {len(documents)} candidates "
                f"(missing index {missing[0]}); is top_n limiting the answer?"
            )
        return [by_index[i] for i in range(len(documents))]

    async def aclose(self) -> None:
        await self._client.aclose()


def build_verifier(cfg: VerifierConfig | None) -> RerankVerifier | None:
    return RerankVerifier(cfg) if cfg is not None else None
