"""What every kind of verifier shares: the protocol the cache calls, what a judgement returns, and
the HTTP endpoint with its one failure path.

Every failure (an unreadable key file, a refused connection, a timeout, a non-200, an answer that
is not a JSON object) is a :class:`VerifierError` naming the URL, so the cache treats all of them
alike: its breaker opens and ``cache.guard.verifier.onError`` decides the lookup.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from hermes_sidecar.config import POOL_KEEPALIVE_SECONDS, VerifierConfig
from hermes_sidecar.errors import VerifierError, describe

__all__ = ["Cost", "Endpoint", "Judgement", "Verifier", "VerifierError", "usage_cost"]


@dataclass(frozen=True)
class Cost:
    """One HTTP request to the verifier: its wall time and the ``usage`` its answer reported."""

    seconds: float
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # of the prompt tokens, those vLLM took from its prefix cache (usage.prompt_tokens_details,
    # reported only when the server runs with --enable-prompt-tokens-details; 0 otherwise)
    cached_tokens: int = 0


@dataclass(frozen=True)
class Judgement:
    """The verifier's answer for one lookup."""

    scores: list[float]  # one per candidate, in the order given
    requests: tuple[Cost, ...]  # one per HTTP request it took
    # served-model: answers whose top logprobs held neither "yes" nor "no" (scored 0, not served)
    unjudged: int = 0


class Verifier(Protocol):
    """A pairwise model the cache asks about its semantic candidates."""

    kind: str
    cfg: VerifierConfig

    async def judge(self, query: str, documents: Sequence[str], *, generation: str = "") -> Judgement:
        """Scores for each cached question in ``documents`` against the new question ``query``.
        ``generation`` is the cache generation served (served-model salts its prefix blocks with it)."""
        ...

    async def aclose(self) -> None: ...


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def usage_cost(body: Mapping[str, Any], seconds: float) -> Cost:
    """The cost of one answer from its OpenAI-style ``usage`` (fields that are absent count 0)."""
    usage = body.get("usage")
    if not isinstance(usage, Mapping):
        return Cost(seconds)
    details = usage.get("prompt_tokens_details")
    cached = _int(details.get("cached_tokens")) if isinstance(details, Mapping) else 0
    return Cost(seconds, _int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens")), cached)


class Endpoint:
    """An HTTP server the verifier talks to, with the optional bearer key from ``apiKeyFile``."""

    def __init__(self, cfg: VerifierConfig, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
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
        self._client = httpx.AsyncClient(
            timeout=cfg.timeoutSeconds,
            headers=headers,
            limits=httpx.Limits(keepalive_expiry=POOL_KEEPALIVE_SECONDS),
        )

    async def call(
        self, method: str, path: str, body: Mapping[str, Any] | None = None
    ) -> tuple[dict[str, Any], float]:
        """The JSON object answered to ``method path`` and the seconds it took; VerifierError otherwise."""
        if self._key_error:
            raise VerifierError(self._key_error)
        url = self.base_url + path
        started = time.perf_counter()
        try:
            resp = await self._client.request(method, url, json=body)
        except httpx.HTTPError as exc:
            raise VerifierError(f"verifier {url} failed: {describe(exc)}") from exc
        seconds = time.perf_counter() - started
        if resp.status_code != 200:
            raise VerifierError(f"verifier {url} answered HTTP {resp.status_code}: {resp.text[:200]!r}")
        try:
            answer = resp.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise VerifierError(f"verifier {url} answered with no JSON object: {resp.text[:200]!r}")
        return answer, seconds

    async def aclose(self) -> None:
        await self._client.aclose()
