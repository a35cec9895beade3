"""Request normalisation, partition key, exact key, and the text that is embedded.

A partition is the set of entries a request may reuse at all: same generation, tenant, producer (what
produced the answer: model, revision, engine), experiment variant, dialect and route, model, system
prompt, tools/response format and answer-changing sampling parameters. Exact and semantic lookups
never leave the partition. The stream flag is not part of it: a hit is replayed in the form the client
asked for.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

from hermes_sidecar.dialects.base import CacheableRequest, canonical_json
from hermes_sidecar.guard import STOPWORDS

_SPACE = re.compile(r"\s+")
# Words that point back into the conversation: with one of these the last turn means nothing alone.
_ANAPHORA = frozenset(
    [
        "it",
        "its",
        "it's",
        "that",
        "this",
        "these",
        "those",
        "them",
        "they",
        "there",
        "one",
        "ones",
        "same",
        "yes",
        "yeah",
        "yep",
        "no",
        "nope",
        "ok",
        "okay",
        "sure",
        "please",
        "do",
        "go",
        "ahead",
        "and",
        "also",
        "too",
        "either",
        "instead",
        "then",
        "above",
        "previous",
        "earlier",
        "former",
        "latter",
        "such",
    ]
)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def normalise(text: str) -> str:
    """Unicode NFKC, whitespace collapsed, trimmed. Case and punctuation are kept: the exact key must
    only merge requests that are the same request."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text)).strip()


def cache_salt(generation: str, tenant: str, *, producer: str = "", variant: str = "") -> str:
    """vLLM ``cache_salt``: prefix-cache blocks are shared only within one generation, tenant (or the
    tenant's trust group: ``tenants.Tenancy.salt_identity``), producer and experiment variant. An empty
    producer or variant adds nothing, so salts stay what they were for configs without them."""
    extra = (f"\0p:{producer}" if producer else "") + (f"\0v:{variant}" if variant else "")
    return _sha(f"hermes-salt\0{generation}\0{tenant}{extra}")[:32]


@dataclass(frozen=True)
class Keys:
    partition: str
    exact: str
    # text embedded for semantic lookup; None when semantic reuse is refused for this request
    semantic_text: str | None
    context_text: str  # earlier turns, checked by the guard for conversations
    refusal: str | None  # why semantic reuse was refused (for logs/stats)


@dataclass(frozen=True)
class ConversationLimits:
    semantic: bool = True
    max_turns: int = 64
    min_standalone_words: int = 3


def partition_key(
    req: CacheableRequest, generation: str, tenant: str, *, producer: str = "", variant: str = ""
) -> str:
    parts = {
        "g": generation,
        "t": tenant,
        "d": req.dialect,
        "r": req.route,
        "m": req.model,
        "sys": _sha(normalise(req.system)),
        "shape": _sha(req.shape),
        "s": canonical_json(dict(req.sampling)),
    }
    # What produced the answer and the experiment variant; absent when empty, so the keys of configs
    # without them do not move.
    if producer:
        parts["p"] = producer
    if variant:
        parts["v"] = variant
    return _sha(canonical_json(parts))[:32]


def standalone(text: str, min_words: int) -> bool:
    """A last turn that can be understood without the conversation before it."""
    words = re.findall(r"[a-z0-9']+", text.lower())
    if any(w in _ANAPHORA for w in words):
        return False
    content = [w for w in words if w not in STOPWORDS]
    return len(content) >= min_words


def keys_for(
    req: CacheableRequest,
    generation: str,
    tenant: str,
    limits: ConversationLimits,
    *,
    producer: str = "",
    variant: str = "",
) -> Keys:
    partition = partition_key(req, generation, tenant, producer=producer, variant=variant)
    turns = [(t.role, normalise(t.text), t.structured, t.is_tool_result) for t in req.turns]
    exact = _sha(partition + "\0" + canonical_json(turns))[:40]
    last = normalise(req.last_user_text)
    earlier = req.turns[:-1]
    context = "\n".join(normalise(t.text) for t in earlier)
    refusal: str | None = None
    if not req.turns or req.turns[-1].role != "user" or not last:
        refusal = "no-user-turn"
    elif any(t.structured for t in req.turns):
        refusal = "tool-calls-or-non-text"  # structured parts are not embedded: only exact reuse
    elif earlier:
        if not limits.semantic:
            refusal = "conversation"
        elif req.has_tool_results:
            refusal = "tool-results"
        elif len(req.turns) > limits.max_turns:
            refusal = "too-many-turns"
        elif not standalone(last, limits.min_standalone_words):
            refusal = "ambiguous-last-turn"
    return Keys(partition, exact, None if refusal else last, context, refusal)
