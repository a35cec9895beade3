"""``kind: rerank``: a cross-encoder over the rerank wire format.

A bi-encoder scores each question alone, so a reworded paraphrase can score below a one-word trap
(docs/sidecar.md). A cross-encoder reads both questions together. The sidecar asks one over the rerank
wire format, ``POST {url}/rerank`` with ``{"model", "query", "documents"}`` answered by
``{"results": [{"index", "relevance_score"}, ...]}``: what vLLM serves for a cross-encoder model
(``vllm serve <model>``), and what Jina-, Cohere- and Infinity-compatible rerank servers speak. All
candidates of a lookup go in one request.
"""

from __future__ import annotations

from collections.abc import Sequence

from hermes_sidecar.config import VerifierConfig
from hermes_sidecar.verify.base import Endpoint, Judgement, VerifierError, usage_cost

__all__ = ["RerankVerifier"]


class RerankVerifier:
    kind = "rerank"

    def __init__(self, cfg: VerifierConfig) -> None:
        if cfg.url is None or cfg.model is None:  # the config refuses this; kept for direct callers
            raise ValueError("cache.guard.verifier.kind 'rerank' needs url and model")
        self.cfg = cfg
        self.model = cfg.model
        self._endpoint = Endpoint(cfg, cfg.url)
        self.url = self._endpoint.base_url + "/rerank"

    async def judge(self, query: str, documents: Sequence[str], *, generation: str = "") -> Judgement:
        """One relevance score per document, in the order given (``generation`` is not used)."""
        body = {"model": self.model, "query": query, "documents": list(documents)}
        answer, seconds = await self._endpoint.call("POST", "/rerank", body)
        try:
            results = answer["results"]
            by_index = {int(r["index"]): float(r["relevance_score"]) for r in results}
        except (ValueError, KeyError, TypeError) as exc:
            raise VerifierError(
                f"verifier {self.url} answered without results[].index/relevance_score: {str(answer)[:200]!r}"
            ) from exc
        missing = [i for i in range(len(documents)) if i not in by_index]
        if missing:
            raise VerifierError(
                f"verifier {self.url} scored {len(by_index)} of {len(documents)} candidates "
                f"(missing index {missing[0]}); is top_n limiting the answer?"
            )
        return Judgement([by_index[i] for i in range(len(documents))], (usage_cost(answer, seconds),))

    async def aclose(self) -> None:
        await self._endpoint.aclose()
