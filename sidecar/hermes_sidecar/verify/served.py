"""``kind: served-model``: the chat model the sidecar already serves, asked one yes/no question.

Every deployment has a model that reads both questions together: its own. For each candidate the
sidecar sends ``POST {url}/v1/chat/completions`` (``url`` defaults to ``upstream.url``) with one user
message, :data:`PROMPT` followed by the two questions, ``max_tokens: 1``, ``temperature: 0``,
``logprobs: true`` and ``top_logprobs: 20``, and reads how likely the first token is "yes" against
"no" (:func:`yes_no_score`). The candidates of one lookup are asked together (vLLM batches them).

Why chat completions and not ``/v1/completions``: the judgement has to reach an instruction-tuned
model in the format it was tuned on, and only the chat endpoint applies the model's own chat template
(ChatML, Llama 3, Gemma ...); a raw completion prompt would have to copy each template. One user
message and no system message, because some templates refuse a system role.

The prompt starts with the same :data:`PROMPT` every time and the request carries its own
``cache_salt`` (:func:`verifier_salt`, per cache generation, never equal to a tenant's), so vLLM's
prefix cache keeps those blocks across judgements and never shares them with tenants' requests.
``chat_template_kwargs: {"enable_thinking": false}`` asks models with a thinking mode (Qwen3) to
answer at once; templates without that switch ignore it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from hermes_sidecar.config import VerifierConfig
from hermes_sidecar.verify.base import Cost, Endpoint, Judgement, VerifierError, usage_cost

__all__ = ["PROMPT", "TOP_LOGPROBS", "ServedModelVerifier", "judgement_body", "verifier_salt", "yes_no_score"]

# A judgement with the tiny test model's 512-token vocabulary: 328 prompt tokens, 68% of them from
# vLLM's prefix cache (KV blocks of 32), 16 ms at the median on 2 CPU cores (docs/benchmarks.md, 1c).
PROMPT = (
    "You decide whether a saved answer may be reused. Two questions follow. Reply yes only if one "
    "answer would be correct and complete for both: the same subject and names, the same scope and "
    "amount (one item or all of them, a part or the whole), the same numbers, units, dates and "
    "versions, the same direction (to or from, on or off, with or without), and the same depth and "
    "format. If any such detail differs, reply no. Reply with one word: yes or no.\n\n"
)
# vLLM's default --max-logprobs: a larger value is refused with HTTP 400.
TOP_LOGPROBS = 20
_NOT_A_LETTER = re.compile(r"[\W_]+")


def verifier_salt(generation: str) -> str:
    """The ``cache_salt`` of every judgement in one cache generation (tenants' salts hash another
    prefix, ``keys.cache_salt``, so no tenant request can share the verifier's blocks)."""
    # the prompt is part of it: a sidecar with another prompt does not look up this one's blocks
    text = f"hermes-verifier-salt\0{PROMPT}\0{generation}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def judgement_body(model: str, asked: str, cached: str, salt: str) -> dict[str, Any]:
    """The request for one judgement. The new question comes first, so the candidates of one lookup
    also share the blocks that hold it; both are JSON-quoted, so a question cannot end the quote and
    write instructions of its own on a new line."""
    question = (
        f"{PROMPT}Question 1: {json.dumps(asked, ensure_ascii=False)}\n"
        f"Question 2: {json.dumps(cached, ensure_ascii=False)}\n"
        "Would one answer serve both? yes or no"
    )
    return {
        "model": model,
        "messages": [{"role": "user", "content": question}],
        "max_tokens": 1,
        "temperature": 0,
        "logprobs": True,
        "top_logprobs": TOP_LOGPROBS,
        "cache_salt": salt,
        "chat_template_kwargs": {"enable_thinking": False},
        "stream": False,
    }


def _word(token: str) -> str:
    # vLLM reports decoded token text (" Yes", "yes", "YES."); SentencePiece and byte-level BPE
    # vocabularies may still show their word-start marks
    return _NOT_A_LETTER.sub("", token.replace("\u2581", " ").replace("\u0120", " ")).lower()


def yes_no_score(logprobs: Mapping[str, float]) -> float | None:
    """P(yes) / (P(yes) + P(no)) over the first token's top logprobs, or None when neither is listed.

    Every listed spelling of a word counts ("yes", " Yes", "YES"). A word that is not listed is at most
    as likely as the least likely listed token, and the score never credits more than is known: "yes"
    missing counts as 0 (score 0), "no" missing counts as that bound (a lower bound on the score).
    """
    yes = no = 0.0
    for token, logprob in logprobs.items():
        word = _word(token)
        if word == "yes":
            yes += math.exp(logprob)
        elif word == "no":
            no += math.exp(logprob)
    if yes == 0.0 and no == 0.0:
        return None
    if yes == 0.0:
        return 0.0
    if no == 0.0:
        no = min(math.exp(lp) for lp in logprobs.values())
    return yes / (yes + no)


def first_token_logprobs(answer: Mapping[str, Any]) -> dict[str, float]:
    """``{token: logprob}`` of the answer's first token: the sampled one and its ``top_logprobs``."""
    first = answer["choices"][0]["logprobs"]["content"][0]
    listed = [first, *(first.get("top_logprobs") or [])]
    out: dict[str, float] = {}
    for entry in listed:
        logprob = float(entry["logprob"])
        if math.isnan(logprob) or logprob > 0:
            raise ValueError(f"logprob {logprob} of {entry['token']!r} is not a log probability")
        out[str(entry["token"])] = logprob
    return out


class ServedModelVerifier:
    kind = "served-model"

    def __init__(self, cfg: VerifierConfig, url: str) -> None:
        self.cfg = cfg
        self._endpoint = Endpoint(cfg, cfg.url or url)
        self.url = self._endpoint.base_url + "/v1/chat/completions"
        self._model = cfg.model

    async def model(self) -> str:
        """The configured model, else the first one the server lists (asked once)."""
        if self._model is None:
            answer, _ = await self._endpoint.call("GET", "/v1/models")
            try:
                self._model = str(answer["data"][0]["id"])
            except (KeyError, IndexError, TypeError) as exc:
                raise VerifierError(
                    f"verifier {self._endpoint.base_url}/v1/models lists no model "
                    f"({str(answer)[:200]!r}); set cache.guard.verifier.model"
                ) from exc
        return self._model

    async def _ask(self, model: str, asked: str, cached: str, salt: str) -> tuple[float | None, Cost]:
        answer, seconds = await self._endpoint.call(
            "POST", "/v1/chat/completions", judgement_body(model, asked, cached, salt)
        )
        try:
            logprobs = first_token_logprobs(answer)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise VerifierError(
                f"verifier {self.url} answered without choices[0].logprobs.content[0].top_logprobs "
                f"(does the server return logprobs?): {str(answer)[:200]!r}"
            ) from exc
        return yes_no_score(logprobs), usage_cost(answer, seconds)

    async def judge(self, query: str, documents: Sequence[str], *, generation: str = "") -> Judgement:
        """One judgement per document, asked together; an answer with neither yes nor no scores 0."""
        model = await self.model()
        salt = verifier_salt(generation)
        outcomes = await asyncio.gather(
            *(self._ask(model, query, doc, salt) for doc in documents), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        answers = [o for o in outcomes if not isinstance(o, BaseException)]
        return Judgement(
            [score if score is not None else 0.0 for score, _ in answers],
            tuple(cost for _, cost in answers),
            unjudged=sum(score is None for score, _ in answers),
        )

    async def aclose(self) -> None:
        await self._endpoint.aclose()
