"""The sidecar configuration file: one YAML document, the same one the operator renders into a ConfigMap.

Unknown keys are an error at start (``extra="forbid"`` on every model), so a typo in a policy or a
hand-written file fails loudly instead of silently running with a default. The operator imports this
module to validate what it renders; the sidecar never imports the operator.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from hermes_sidecar.errors import ConfigError as ConfigError
from hermes_sidecar.errors import ConfigProblem


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


# Idle lifetime of the sidecar's pooled connections to vLLM, a verifier or an embedding server: well
# under the 5 s after which vLLM (uvicorn) closes an idle connection, so the sidecar never reuses one
# the server is closing (httpx's own default is also 5 s, which races with it).
POOL_KEEPALIVE_SECONDS = 2.0


class UpstreamConfig(_Strict):
    kind: Literal["openai", "anthropic"] = "openai"
    url: str = "http://127.0.0.1:8000"
    timeoutSeconds: float = Field(default=600.0, gt=0)
    # An idle pooled connection is dropped after this long. It must be shorter than the upstream's own
    # keep-alive (vLLM's and uvicorn's: 5 s, VLLM_HTTP_TIMEOUT_KEEP_ALIVE): at equal times the server
    # may close a connection just as the sidecar sends a request on it, and that request fails.
    keepAliveSeconds: float = Field(default=POOL_KEEPALIVE_SECONDS, gt=0)
    # Anthropic only: a file holding the API key, used when the client sends none. Never logged.
    apiKeyFile: str | None = None


def _regexes(field: str, patterns: list[str]) -> list[str]:
    """``patterns`` unchanged if each compiles; else an error naming the field and the pattern."""
    for p in patterns:
        try:
            re.compile(p)
        except re.error as exc:
            raise ValueError(f"{field}: {p!r} is not a valid regular expression: {exc}") from None
    return patterns


class BypassConfig(_Strict):
    # requests sampled above this temperature are passed through (their answers are meant to vary)
    maxTemperature: float = Field(default=1.0, ge=0)
    # regular expressions (case-insensitive) on the last user turn for volatile questions
    patterns: list[str] = Field(
        default_factory=lambda: [
            r"\b(today|tonight|tomorrow|yesterday|right now|this (morning|afternoon|evening|week))\b",
            # the weather somewhere or now, not the word: "weather and climate", "in cold weather"
            r"\b((the|today's|tomorrow's|current|local) weather|weather (in|at|for|near|now|like|today))\b",
            r"\b(forecast|stock price|share price|exchange rate|latest news)\b",
            r"\b(current|currently|latest|live) (price|rate|score|status|time|value)s?\b",
        ]
    )

    @field_validator("patterns")
    @classmethod
    def _patterns(cls, v: list[str]) -> list[str]:
        return _regexes("cache.bypass.patterns", v)


class ConversationConfig(_Strict):
    # semantic reuse for multi-turn requests (exact reuse is always allowed)
    semantic: bool = True
    # above this many messages (user, assistant, tool) only exact reuse
    maxTurns: int = Field(default=64, ge=1)
    # a last turn with fewer content words (or with a pronoun pointing back) is ambiguous alone
    minStandaloneWords: int = Field(default=3, ge=0)


# The guard's rules, by the name guard.compare returns (and guard_rejections counts): the names of
# hermes_sidecar.guard.rules.REGISTRY, in its order (config sits below the guard in the layers, so the
# list is spelled out here; tests/unit/test_guard_rules.py holds the two equal). An unknown name in
# cache.guard.verifier.overrule is refused with the list of valid ones ("Input should be 'negation', ...").
# Units and versions are checked by "number" and "entity", quantifiers, depth and format by "scope",
# comparison direction by "direction": new checks join a rule, so policies and dashboards keep their names.
GuardRule = Literal["negation", "number", "date", "direction", "entity", "scope", "edit"]


class VerifierConfig(_Strict):
    """A pairwise judge asked to confirm semantic candidates (docs/sidecar.md, "Verifier").

    ``kind: rerank`` speaks the rerank wire format (``POST {url}/rerank`` with ``query`` and
    ``documents``, answered with ``results[].relevance_score``) that vLLM serves for cross-encoder
    models, as do Jina-, Cohere- and Infinity-compatible servers. ``kind: served-model`` asks the
    chat model the sidecar already serves (``POST {url}/v1/chat/completions``, ``url`` defaulting to
    ``upstream.url``) one yes/no question per candidate and scores it from the answer's logprobs.
    """

    kind: Literal["rerank", "served-model"] = "rerank"
    # rerank: base URL of the rerank endpoint (required); served-model: base URL of an OpenAI-compatible
    # server without /v1 (default: upstream.url, the model this sidecar serves)
    url: str | None = None
    # rerank: required; served-model: default the first model the server's GET /v1/models lists
    model: str | None = Field(default=None, min_length=1)
    # a candidate is served only at or above this score: rerank, the model's relevance_score (a
    # sigmoid probability for single-label cross-encoders); served-model, P(yes) / (P(yes) + P(no))
    minScore: float = 0.5
    # candidates from this cosine similarity up are sent to the verifier (at most
    # cache.similarityThreshold): the verifier lets the sidecar look further down than cosine alone
    minSimilarity: float = Field(default=0.7, gt=0, le=1)
    # which candidates are asked about: "all" (every one that passes the rules from minSimilarity up,
    # so the verifier may also refuse what cosine alone would serve) or "uncertain" (only when no
    # candidate is served by cosine and the rules alone, i.e. those between minSimilarity and
    # similarityThreshold and those an overruled rule refused). Default: all for rerank, uncertain
    # for served-model (each question costs the served model a prefill).
    scope: Literal["uncertain", "all"] = "all"
    timeoutSeconds: float = Field(default=1.0, gt=0)
    apiKeyFile: str | None = None
    # when the verifier fails: "threshold" decides as without it (similarityThreshold + rules);
    # "miss" serves no semantic hit until it answers again (exact hits are served either way)
    onError: Literal["threshold", "miss"] = "threshold"
    # guard rules whose veto the verifier may overturn (the candidate is asked about instead of
    # refused). The rules refuse 14% of the fow-cache paraphrases (docs/sidecar.md), which caps what
    # any verifier can serve at 84.7%; a strong pairwise model can take over the less certain ones.
    overrule: list[GuardRule] = Field(default_factory=list)
    # a candidate an overruled rule refused is served only at or above this score (unset: minScore).
    # Measured (docs/benchmarks.md, section 1d): a trained cross-encoder scores some traps the rules
    # catch above 0.9, so overturning a rule needs more confidence than confirming what passed them.
    overruleMinScore: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _scope_by_kind(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("scope") is None:
            data = {**data, "scope": "uncertain" if data.get("kind") == "served-model" else "all"}
        return data

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError(
                f"cache.guard.verifier.url {v!r} must be an http:// or https:// base URL, for example "
                "http://verifier:8000 (kind rerank) or http://127.0.0.1:8000 (kind served-model, no /v1)"
            )
        return v.rstrip("/") if v is not None else None

    @model_validator(mode="after")
    def _overrule_score(self) -> VerifierConfig:
        if self.overruleMinScore is None:
            return self
        if not self.overrule:
            raise ValueError(
                f"cache.guard.verifier.overruleMinScore {self.overruleMinScore!r} applies only to candidates "
                "an overruled rule refused, and overrule is empty: name the rules the verifier may overturn "
                "(for example [number, date, scope]) or drop overruleMinScore"
            )
        if self.overruleMinScore < self.minScore:
            raise ValueError(
                f"cache.guard.verifier.overruleMinScore {self.overruleMinScore!r} is below minScore "
                f"{self.minScore!r}: overturning a rule's veto would need less confidence than confirming "
                f"a candidate the rules passed; set it to at least {self.minScore!r}, or leave it unset "
                "to use minScore"
            )
        return self

    def min_score(self, overruled: bool) -> float:
        """The score a candidate needs: ``overruleMinScore`` for one an overruled rule refused."""
        if overruled and self.overruleMinScore is not None:
            return self.overruleMinScore
        return self.minScore

    @model_validator(mode="after")
    def _rerank_needs(self) -> VerifierConfig:
        if self.kind == "rerank" and (self.url is None or self.model is None):
            raise ValueError(
                "cache.guard.verifier.kind 'rerank' needs url (the base URL of a rerank endpoint, for "
                f"example http://verifier:8000) and model (got url={self.url!r}, model={self.model!r}); "
                "or set kind: served-model to ask the model this sidecar serves"
            )
        return self


class GuardConfig(_Strict):
    # off only for experiments: without it "enable 2FA" serves the answer to "disable 2FA"
    enabled: bool = True
    # optional second opinion from a pairwise model on every semantic hit
    verifier: VerifierConfig | None = None


class TagRule(_Strict):
    pattern: str
    tag: str

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(
                f"cache.tags.rules pattern {v!r} is not a valid regular expression: {exc}"
            ) from None
        return v


class TagsConfig(_Strict):
    # request header with comma-separated tags for the stored entry
    header: str = "x-hermes-cache-tags"
    # tag an entry when the last user turn matches the pattern (case-insensitive)
    rules: list[TagRule] = Field(default_factory=list)


class DecayConfig(_Strict):
    """Similarity decay (docs/sidecar.md, "Similarity decay"): the similarity an entry needs rises with
    its age, from cache.similarityThreshold towards ``ceiling``, so an old answer is served only to ever
    closer questions and is refreshed through misses, spread out, instead of all at its TTL."""

    # off: every entry needs cache.similarityThreshold until its TTL; halfLife: the gap between the
    # required similarity and the ceiling halves every halfLifeSeconds; linear: the required similarity
    # climbs in a straight line and reaches the ceiling after rampSeconds
    mode: Literal["off", "halfLife", "linear"] = "off"
    halfLifeSeconds: float | None = Field(default=None, gt=0)
    rampSeconds: float | None = Field(default=None, gt=0)
    # the highest similarity an entry ever needs (above cache.similarityThreshold)
    ceiling: float = Field(default=0.98, gt=0, le=1)
    # exact repeats too: each entry is refused to its own exact repeat once its progress on the ramp
    # passes a point drawn from its key, so exact refreshes are spread over the ramp
    exact: bool = False

    @model_validator(mode="after")
    def _mode_needs_its_length(self) -> DecayConfig:
        wanted = {"halfLife": "halfLifeSeconds", "linear": "rampSeconds"}.get(self.mode)
        for name in ("halfLifeSeconds", "rampSeconds"):
            value = getattr(self, name)
            if name == wanted and value is None:
                raise ValueError(
                    f"cache.decay.mode {self.mode!r} needs cache.decay.{name} (seconds, for example 3600)"
                )
            if name != wanted and value is not None:
                raise ValueError(
                    f"cache.decay.{name} ({value:g}) does nothing with cache.decay.mode {self.mode!r}; "
                    f"remove it, or set mode to {'halfLife' if name == 'halfLifeSeconds' else 'linear'}"
                )
        return self


# Absolute dates and times of day, epoch timestamps and relative-time words in tool-call arguments:
# a plan holding one was made for the moment it was asked (docs/sidecar.md, "Tool plans").
DEFAULT_TIME_PATTERNS = [
    r"\b\d{4}-\d{1,2}-\d{1,2}",
    r"\b\d{1,2}[/.]\d{1,2}[/.]\d{2,4}\b",
    r"\b\d{1,2}:\d{2}\b",
    r"\b1[5-9]\d{8}(\d{3})?\b",
    r"\b(jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.? \d{1,2}\b",
    r"\b\d{1,2}(st|nd|rd|th)? (jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)",
    r"\b(today|tonight|tomorrow|yesterday|now|this (morning|afternoon|evening|week|month|year)|"
    r"(next|last|past) (\d+ )?(hours?|days?|weeks?|months?|years?|monday|tuesday|wednesday|thursday|"
    r"friday|saturday|sunday|weekend)|\d+ (minutes?|hours?|days?|weeks?) ago)\b",
]


class ToolPlansConfig(_Strict):
    """Partial caching for tool-using agents (docs/sidecar.md, "Tool plans"). A question about live data
    (a cache.bypass.patterns match) that offers tools is not passed through: the model's plan (an
    answer that calls tools) is reused when no argument depends on time, and the answer given from
    tool results is reused only for identical results."""

    enabled: bool = False
    # also reuse plans and answers for paraphrased questions (the guard checks them); false: exact only
    semantic: bool = True
    # the cosine similarity a paraphrase needs to be served a plan (unset: cache.similarityThreshold).
    # Unset is the choice of the tune half of bench/data/agent_trace.jsonl (docs/benchmarks.md 9): with
    # the rule that a paraphrase names every string argument of the plan, no threshold from 0.85 to 0.97
    # served a wrong plan there, and 0.85 served the most.
    similarityThreshold: float | None = Field(default=None, gt=0, le=1)
    # regular expressions (case-insensitive) on every string or number in a tool call's arguments;
    # with tool plans on, a plan that matches one is never stored or served, live-data question or not
    timePatterns: list[str] = Field(default_factory=lambda: list(DEFAULT_TIME_PATTERNS))

    @field_validator("timePatterns")
    @classmethod
    def _patterns(cls, v: list[str]) -> list[str]:
        return _regexes("cache.toolPlans.timePatterns", v)


class WarmupRequest(_Strict):
    path: Literal["/v1/chat/completions", "/v1/completions", "/v1/messages"] = "/v1/chat/completions"
    body: dict[str, Any]
    tenant: str | None = None  # tenant header value to send, so the entry lands in that partition


class CacheConfig(_Strict):
    enabled: bool = True
    backend: Literal["redis", "memory"] = "memory"
    redisUrl: str | None = None
    # a file holding the Redis password (a mounted Secret), so it need not sit in redisUrl; read at start
    redisPasswordFile: str | None = None
    # chosen on the tuning half of the fow-cache pairs (docs/sidecar.md): the lowest threshold whose
    # wrong rate stays within 2% with the guard on
    similarityThreshold: float = Field(default=0.85, gt=0, le=1)
    ttlSeconds: int = Field(default=3600, ge=1)
    # memory backend: bound on entries (LRU beyond it); redis backend: bound per generation
    maxEntries: int = Field(default=100_000, ge=1)
    # scope of the generation record: hermes:{scope}:generation, scope = "{namespace}/{policy}"
    scope: str = "local/default"
    # semantic candidates fetched per lookup; the guard checks each, best first
    candidates: int = Field(default=4, ge=1, le=50)
    # redis backend: vector index algorithm (hnsw for large partitions, flat for exact recall)
    indexAlgorithm: Literal["hnsw", "flat"] = "hnsw"
    # store answers that stopped at the length limit (finish_reason "length"); off by default, as a
    # cut answer is an incomplete one (max_tokens partitions, so it is only reused for the same limit)
    storeTruncated: bool = False
    # vLLM prefix cache: also call {upstream.url}/reset_prefix_cache after a generation switch
    # (needs VLLM_SERVER_DEV_MODE=1 upstream; the per-generation cache_salt already isolates blocks)
    resetPrefixCache: bool = False
    bypass: BypassConfig = BypassConfig()
    conversation: ConversationConfig = ConversationConfig()
    guard: GuardConfig = GuardConfig()
    tags: TagsConfig = TagsConfig()
    decay: DecayConfig = DecayConfig()
    toolPlans: ToolPlansConfig = ToolPlansConfig()
    # sent upstream after a generation switch so the new generation starts warm
    warmup: list[WarmupRequest] = Field(default_factory=list)

    @field_validator("redisUrl")
    @classmethod
    def _redis_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"cache.redisUrl {v!r} must start with redis://, rediss:// or unix://")
        return v

    @model_validator(mode="after")
    def _decay_ceiling_above_threshold(self) -> CacheConfig:
        if self.decay.mode != "off" and self.decay.ceiling <= self.similarityThreshold:
            raise ValueError(
                f"cache.decay.ceiling {self.decay.ceiling:g} must be above cache.similarityThreshold "
                f"{self.similarityThreshold:g}: it is where the required similarity climbs to; for "
                "example 0.98"
            )
        return self

    @model_validator(mode="after")
    def _backend_needs_url(self) -> CacheConfig:
        if self.backend == "redis" and not self.redisUrl:
            raise ValueError(
                "cache.backend 'redis' needs cache.redisUrl (for example redis://redis:6379/0), "
                "or use cache.backend: memory"
            )
        verifier = self.guard.verifier
        if verifier is not None and verifier.minSimilarity > self.similarityThreshold:
            raise ValueError(
                f"cache.guard.verifier.minSimilarity {verifier.minSimilarity:g} is above "
                f"cache.similarityThreshold {self.similarityThreshold:g}: the verifier would see fewer "
                "candidates than cosine alone serves; set it at or below the threshold"
            )
        if verifier is not None and not self.guard.enabled:
            raise ValueError(
                "cache.guard.verifier needs cache.guard.enabled: true (the verifier confirms what the "
                "guard's rules let through; it does not replace them)"
            )
        return self


# Names the local provider accepts, with aliases (docs/sidecar.md has the measurements behind the
# default). bge-small-en-v1.5 is installed by scripts/models/install.sh; MiniLM comes from PyPI.
LOCAL_EMBEDDING_MODELS = {
    "bge-small-en-v1.5-int8": "bge-small-en-v1.5-int8",
    "BAAI/bge-small-en-v1.5": "bge-small-en-v1.5-int8",
    "all-MiniLM-L6-v2-int8": "all-MiniLM-L6-v2-int8",
    "all-MiniLM-L6-v2": "all-MiniLM-L6-v2-int8",
    "sentence-transformers/all-MiniLM-L6-v2": "all-MiniLM-L6-v2-int8",
}
DEFAULT_LOCAL_MODEL = "bge-small-en-v1.5-int8"


class EmbeddingConfig(_Strict):
    provider: Literal["local", "openai"] = "local"
    # local: one of LOCAL_EMBEDDING_MODELS (default DEFAULT_LOCAL_MODEL); openai: the model name to send
    model: str | None = None
    # local: where installed model folders live (default $HERMES_MODEL_DIR, else
    # ~/.cache/hermes-cache/models); each holds model.onnx and tokenizer.json
    modelDir: str | None = None
    url: str | None = None  # openai provider: base URL of an OpenAI-compatible embeddings endpoint
    apiKeyFile: str | None = None
    timeoutSeconds: float = Field(default=5.0, gt=0)
    # vector size; the local model has 384, an openai endpoint is asked at start when this is unset
    dimensions: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _provider_needs(self) -> EmbeddingConfig:
        if self.provider == "local" and self.model and self.model not in LOCAL_EMBEDDING_MODELS:
            raise ValueError(
                f"embedding.model {self.model!r} is not a packaged local model; use one of "
                f"{', '.join(LOCAL_EMBEDDING_MODELS)}, or embedding.provider: openai with embedding.url"
            )
        if self.provider == "openai" and (not self.url or not self.model):
            raise ValueError(
                "embedding.provider 'openai' needs embedding.url (base URL of an OpenAI-compatible "
                f"embeddings endpoint) and embedding.model (got url={self.url!r}, model={self.model!r})"
            )
        return self


class BreakpointConfig(_Strict):
    enabled: bool = True
    ttl: Literal["5m", "1h"] = "5m"


class ModelPriceConfig(_Strict):
    """USD per million tokens; ``longPrompt`` rates apply above ``longPromptThresholdTokens``."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cacheWrite5m: float = Field(ge=0)
    cacheWrite1h: float = Field(ge=0)
    cacheRead: float = Field(ge=0)
    longPromptThresholdTokens: int | None = Field(default=None, ge=1)
    longPrompt: ModelPriceConfig | None = None


class BreakpointsConfig(_Strict):
    # 5m everywhere by default: the cheapest write (1.25x input against 2x for 1h) and every read
    # refreshes it, so only traffic with gaps between 5 and 60 minutes gains from 1h.
    tools: BreakpointConfig = BreakpointConfig()
    system: BreakpointConfig = BreakpointConfig()
    taskContext: BreakpointConfig = BreakpointConfig()

    @model_validator(mode="after")
    def _one_hour_first(self) -> BreakpointsConfig:
        # Anthropic processes tools, system, messages in that order and rejects a 1h breakpoint
        # after a 5m one, so the configured TTLs must not go back up along that order.
        seen_5m: str | None = None
        for name in ("tools", "system", "taskContext"):
            place: BreakpointConfig = getattr(self, name)
            if not place.enabled:
                continue
            if place.ttl == "5m":
                seen_5m = seen_5m or name
            elif seen_5m:
                raise ValueError(
                    f"promptCache.breakpoints.{name}.ttl '1h' comes after {seen_5m}'s '5m'; 1-hour "
                    f"breakpoints must come first (order: tools, system, taskContext): set "
                    f"{seen_5m}.ttl to '1h' or {name}.ttl to '5m'"
                )
        return self


class PromptCacheConfig(_Strict):
    """Anthropic upstream only: prompt-cache breakpoints and cost accounting."""

    enabled: bool = True
    breakpoints: BreakpointsConfig = BreakpointsConfig()
    # Leave breakpoints the client placed itself alone (they count towards the limit of four);
    # false removes them and places ours instead.
    respectClientBreakpoints: bool = True
    # Rows that replace or extend the built-in price table, keyed by model id.
    prices: dict[str, ModelPriceConfig] = Field(default_factory=dict)
    # Minimum cacheable prefix (tokens) per model id, replacing or extending the built-in table.
    minCacheableTokens: dict[str, int] = Field(default_factory=dict)
    # Reported in hermes_prompt_cache_price_table_info; set it when you override prices.
    priceTableVersion: str | None = None


class AdminConfig(_Strict):
    # a file holding the bearer token for /admin/*; without it the admin routes answer 401 to everyone
    tokenFile: str | None = None


class MetricsConfig(_Strict):
    # distinct tenant label values on hermes_cache_requests_total; requests of further tenants are
    # counted as tenant "other", so clients that invent tenants cannot grow the series without bound
    maxTenants: int = Field(default=100, ge=0)


class LimitsConfig(_Strict):
    """What the sidecar reads of a client's body before it refuses it (400/413, never forwarded)."""

    # Bytes of a request body on any route. Long prompts are ~4 bytes a token (128k tokens ~ 0.5 MiB);
    # images sent inline as base64 are the large ones.
    maxBodyBytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    # Nesting of JSON arrays and objects. Requests nest ~5 deep, tool schemas ~20; Python's decoder
    # and everything that walks the body recurse, so the depth is checked before decoding.
    maxJsonDepth: int = Field(default=128, ge=8, le=512)


# A tenant id as tenants.tenant_of makes it (and the ``tenant`` metric label shows it).
TENANT_ID_PATTERN = r"^(h:.+|c:.+|anonymous)$"
# A variant name: a metric label value; "default" is what requests without a variant are counted as.
VARIANT_PATTERN = r"^[a-z0-9]([-a-z0-9_.]{0,61}[a-z0-9])?$"
RESERVED_VARIANTS = frozenset({"default", "unknown"})


def _tenant_ids(where: str, ids: list[str]) -> None:
    for t in ids:
        if not re.fullmatch(TENANT_ID_PATTERN, t):
            raise ValueError(
                f"{where}: {t!r} is not a tenant id; write it as the sidecar sees it: h:<tenant header "
                "value>, c:<credential hash> or anonymous, for example h:acme"
            )


class TrustGroupConfig(_Strict):
    name: str = Field(min_length=1, max_length=63)
    tenants: list[str] = Field(min_length=1)

    @field_validator("tenants")
    @classmethod
    def _members(cls, v: list[str]) -> list[str]:
        _tenant_ids("tenancy.trustGroups[].tenants", v)
        return v


class TenancyConfig(_Strict):
    """Tenants that trust each other (docs/sidecar.md, "Trust groups"): the members of one group share
    vLLM's ``cache_salt``, so one member's request reuses the prefix blocks another member's request
    filled. Only the salt: exact and semantic entries stay per tenant."""

    trustGroups: list[TrustGroupConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_group_each(self) -> TenancyConfig:
        seen: dict[str, str] = {}
        names: set[str] = set()
        for g in self.trustGroups:
            if g.name in names:
                raise ValueError(
                    f"tenancy.trustGroups: the name {g.name!r} is used twice; give each group its own"
                )
            names.add(g.name)
            for t in g.tenants:
                if t in seen and seen[t] != g.name:
                    raise ValueError(
                        f"tenancy.trustGroups: tenant {t!r} is in groups {seen[t]!r} and {g.name!r}; a "
                        "tenant may be in one group at most (merge the groups if they all trust each other)"
                    )
                seen[t] = g.name
        return self


class ExperimentConfig(_Strict):
    """A/B variants (docs/sidecar.md, "Partitions"): each variant has its own cache partition and salt."""

    # request header naming the variant (set by the gateway, as tenantHeader); empty: no header
    header: str = ""
    # the variant names requests may carry; a header value outside this list is passed through uncached
    variants: list[str] = Field(default_factory=list)
    # tenant id -> variant, for requests without the header
    tenantVariants: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _names(self) -> ExperimentConfig:
        for v in self.variants:
            if not re.fullmatch(VARIANT_PATTERN, v) or v in RESERVED_VARIANTS:
                raise ValueError(
                    f"experiment.variants: {v!r} is not a variant name; use lower-case letters, digits, "
                    "'-', '_' or '.', at most 63 characters, not 'default' or 'unknown', for example "
                    "candidate"
                )
        if self.header and not self.variants:
            raise ValueError(
                f"experiment.header {self.header!r} needs experiment.variants: the names its values may take"
            )
        _tenant_ids("experiment.tenantVariants", list(self.tenantVariants))
        for tenant, v in self.tenantVariants.items():
            if v not in self.variants:
                raise ValueError(
                    f"experiment.tenantVariants[{tenant!r}]: {v!r} is not in experiment.variants "
                    f"{self.variants}; add it there or map the tenant to one of them"
                )
        return self


class SidecarConfig(_Strict):
    listen: str = "0.0.0.0:8080"
    upstream: UpstreamConfig = UpstreamConfig()
    cache: CacheConfig = CacheConfig()
    tenantHeader: str = "x-tenant-id"
    # where the tenant comes from: "header-or-credential" trusts tenantHeader (set by a gateway that
    # strips it from clients) and falls back to a hash of the credential; "header-and-credential"
    # partitions by both (a client that forges the header still cannot read another key's entries);
    # "credential" ignores the header
    tenantSource: Literal["header-or-credential", "header-and-credential", "credential"] = (
        "header-or-credential"
    )
    embedding: EmbeddingConfig = EmbeddingConfig()
    admin: AdminConfig = AdminConfig()
    promptCache: PromptCacheConfig = PromptCacheConfig()
    metrics: MetricsConfig = MetricsConfig()
    limits: LimitsConfig = LimitsConfig()
    tenancy: TenancyConfig = TenancyConfig()
    experiment: ExperimentConfig = ExperimentConfig()
    # What produces the answers (model, revision, engine image and output-changing engine settings):
    # entries and cache_salt are partitioned by it. The operator passes it per pod in the environment
    # variable HERMES_PRODUCER, which wins over this key (tenants.PRODUCER_ENV).
    producer: str = Field(default="", max_length=128)

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        host, sep, port = v.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"listen {v!r} must be host:port, for example 0.0.0.0:8080")
        return v

    @model_validator(mode="after")
    def _served_model_verifier_needs_logprobs(self) -> SidecarConfig:
        verifier = self.cache.guard.verifier
        served = verifier is not None and verifier.kind == "served-model" and verifier.url is None
        if served and self.upstream.kind != "openai":
            raise ValueError(
                "cache.guard.verifier.kind 'served-model' asks upstream.url by default, but "
                f"upstream.kind is {self.upstream.kind!r}, which answers no logprobs; set "
                "cache.guard.verifier.url to an OpenAI-compatible server (vLLM), or use kind: rerank"
            )
        return self


def parse_config(data: dict[str, Any] | None) -> SidecarConfig:
    try:
        return SidecarConfig.model_validate(data or {})
    except ValidationError as exc:
        problems = tuple(
            ConfigProblem(
                loc=".".join(str(p) for p in err["loc"]) or "(top level)",
                kind=err["type"],
                message=f"{err['msg']} (got {err.get('input')!r})",
            )
            for err in exc.errors()
        )
        lines = [f"{p.loc}: {p.message}" for p in problems]
        raise ConfigError("invalid sidecar config:\n  " + "\n  ".join(lines), problems) from None


def load_config(path: str | Path) -> SidecarConfig:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read sidecar config {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"sidecar config {path} is not valid YAML: {exc}") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"sidecar config {path} must be a mapping, got {type(data).__name__}")
    return parse_config(data)
