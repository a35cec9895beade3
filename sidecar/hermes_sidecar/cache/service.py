"""The cache decision: bypass rules, exact lookup, semantic lookup with the guard, and storing answers.

This is the one decision path: live requests (``proxy.py``) and ``hermes-sidecar evaluate`` both call
:meth:`CacheService.decide` and :meth:`CacheService.store_answer`.

Fail open: a store or embedder failure makes the request pass through (result ``error``), and the
component's breaker opens (``breaker.py``) until a background probe finds it answering again.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
from collections.abc import Callable, Mapping

from hermes_sidecar import guard
from hermes_sidecar.cache.breaker import Breakers, Probe
from hermes_sidecar.cache.decay import DECAYED, DECAYED_EXACT, Decay
from hermes_sidecar.cache.decision import BYPASS, ERROR, HIT_EXACT, HIT_SEMANTIC, MISS, Decision
from hermes_sidecar.cache.plans import PLAN, ToolPlans
from hermes_sidecar.config import CacheConfig
from hermes_sidecar.dialects.base import CacheableRequest, CachedAnswer
from hermes_sidecar.embed import Embedder, EmbedderError
from hermes_sidecar.generations import Generation
from hermes_sidecar.keys import ConversationLimits, Keys, keys_for
from hermes_sidecar.metrics import Metrics
from hermes_sidecar.store import Entry, Store, StoreError
from hermes_sidecar.tenants import Tenancy
from hermes_sidecar.verify import Judgement, Verifier, VerifierError

__all__ = ["CacheService"]

log = logging.getLogger("hermes_sidecar.cache")


def _header(headers: Mapping[str, str], name: str) -> str:
    return headers.get(name, "") or ""


class CacheService:
    def __init__(
        self,
        cfg: CacheConfig,
        store: Store,
        embedder: Embedder | None,
        metrics: Metrics,
        *,
        generation: Generation,
        tenant_header: str = "x-tenant-id",
        tenant_source: str = "header-or-credential",
        retry_seconds: float = 1.0,
        verifier: Verifier | None = None,
        tenancy: Tenancy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.embedder = embedder
        self.verifier = verifier if cfg.guard.enabled else None
        self.metrics = metrics
        self.generation = generation
        self.tenant_header = tenant_header
        self.tenant_source = tenant_source
        # trust groups (the salt), experiment variants and the producer (partitions and salt)
        self.tenancy = tenancy or Tenancy(tenant_header, tenant_source)
        self.limits = ConversationLimits(
            cfg.conversation.semantic, cfg.conversation.maxTurns, cfg.conversation.minStandaloneWords
        )
        self._bypass = [re.compile(p, re.IGNORECASE) for p in cfg.bypass.patterns]
        # unix time of lookups and stores: entry ages (decay) and TTLs; tests pass a fake clock
        self.clock = clock
        self.decay = Decay(cfg.decay, cfg.similarityThreshold)
        self.plans = ToolPlans(cfg.toolPlans) if cfg.toolPlans.enabled else None
        self._tag_rules = [(re.compile(r.pattern, re.IGNORECASE), r.tag) for r in cfg.tags.rules]
        probes: dict[str, Probe] = {"store": store.ping, "embedder": None, "verifier": None}
        if embedder is not None:
            probes["embedder"] = functools.partial(embedder.embed, ["ping"])
        if self.verifier is not None:
            probes["verifier"] = functools.partial(self.verifier.judge, "ping", ["ping"])
        self.breakers = Breakers(metrics, probes, retry_seconds)
        self._background: set[asyncio.Task[bool]] = set()

    def degraded(self) -> dict[str, str]:
        """The dependencies that are down, with their last error (``/readyz``, ``/admin/stats``)."""
        return self.breakers.degraded()

    # -- decision ----------------------------------------------------------------------------------

    def bypass_reason(self, req: CacheableRequest, headers: Mapping[str, str]) -> str | None:
        if not self.cfg.enabled:
            return "disabled"
        cc = _header(headers, "cache-control").lower()
        if "no-store" in cc or "no-cache" in cc:
            return "cache-control"
        if req.n != 1:
            return "n"
        if req.temperature is not None and req.temperature > self.cfg.bypass.maxTemperature:
            return "temperature"
        last = req.last_user_text
        if any(p.search(last) for p in self._bypass):
            return "volatile"
        return None

    def tags_for(self, req: CacheableRequest, headers: Mapping[str, str]) -> tuple[str, ...]:
        tags = {t.strip() for t in _header(headers, self.cfg.tags.header.lower()).split(",") if t.strip()}
        last = req.last_user_text
        tags.update(tag for pattern, tag in self._tag_rules if pattern.search(last))
        return tuple(sorted(t.replace(",", "_") for t in tags))

    async def decide(
        self, req: CacheableRequest, headers: Mapping[str, str], tenant: str, variant: str = ""
    ) -> Decision:
        gen = self.generation
        reason = self.bypass_reason(req, headers)
        # cache.toolPlans: a live-data question of a tool-using agent is cached by stage (plans.py)
        stage = self.plans.stage(req) if self.plans is not None else None
        live = reason == "volatile" and stage is not None
        if reason is not None and not live:
            self.metrics.bypass.labels(reason).inc()
            return Decision(BYPASS, gen, reason=reason)
        keys = keys_for(req, gen.id, tenant, self.limits, producer=self.tenancy.producer, variant=variant)
        if live and self.plans is not None and stage is not None:
            keys = self.plans.keys(stage, req, keys, self.limits)
        tags = self.tags_for(req, headers)
        if not self.breakers.up("store"):
            self.metrics.errors.labels("store").inc()
            decision = Decision(ERROR, gen, keys, reason="store", tags=tags)
        else:
            started = time.perf_counter()
            try:
                decision = await self._lookup(req, keys, gen, tags, plan=live and stage == PLAN)
            finally:
                self.metrics.lookup_seconds.observe(time.perf_counter() - started)
        decision.stage, decision.live = stage, live
        if live and stage is not None:
            self.metrics.tool_plan_requests.labels(stage, decision.metric).inc()
        if decision.result in (HIT_EXACT, HIT_SEMANTIC) and decision.entry is not None:
            self.metrics.served_age.observe(max(0.0, self.clock() - decision.entry.created))
        return decision

    async def _lookup(
        self, req: CacheableRequest, keys: Keys, gen: Generation, tags: tuple[str, ...], *, plan: bool = False
    ) -> Decision:
        """``plan``: a live-data question (cache.toolPlans), served only plans that hold today."""
        now = self.clock()
        try:
            entry = await self.store.get_exact(keys.exact, now)
        except StoreError as exc:
            self.breakers.failed("store", exc)
            self.metrics.errors.labels("store").inc()
            return Decision(ERROR, gen, keys, reason="store", tags=tags)
        skip: str | None = None  # the exact entry, refused: not offered again as a semantic candidate
        exact_decayed = False
        if entry is not None:
            exact_decayed = self.decay.exact_refused(entry.key, now - entry.created)
            if not exact_decayed and not (
                plan and self.plans is not None and not self.plans.servable(entry.answer)
            ):
                return Decision(HIT_EXACT, gen, keys, entry, 1.0, tags=tags)
            skip = entry.key
        if keys.semantic_text is None or self.embedder is None:
            if keys.refusal:
                self.metrics.semantic_refusals.labels(keys.refusal).inc()
            reason = DECAYED_EXACT if exact_decayed else keys.refusal
            return Decision(MISS, gen, keys, reason=reason, tags=tags)
        if not self.breakers.up("embedder"):
            self.metrics.errors.labels("embedder").inc()
            return Decision(ERROR, gen, keys, reason="embedder", tags=tags)
        try:
            vector = (await self.embedder.embed([keys.semantic_text]))[0]
        except EmbedderError as exc:
            self.breakers.failed("embedder", exc)
            self.metrics.errors.labels("embedder").inc()
            return Decision(ERROR, gen, keys, reason="embedder", tags=tags)
        try:
            candidates = await self.store.search(keys.partition, vector, self.cfg.candidates, now)
        except StoreError as exc:
            self.breakers.failed("store", exc)
            self.metrics.errors.labels("store").inc()
            return Decision(ERROR, gen, keys, reason="store", tags=tags)
        refused: str | None = None
        mine = guard.features(keys.semantic_text)
        mine_ctx = guard.features(keys.context_text) if keys.context_text else None
        threshold = self.cfg.similarityThreshold
        if plan and self.cfg.toolPlans.similarityThreshold is not None:
            threshold = self.cfg.toolPlans.similarityThreshold  # a wrong plan fetches the wrong live data
        verifier = self.verifier
        # While the verifier is down, candidates are chosen as without it (onError decides the rest).
        verifying = verifier is not None and self.breakers.up("verifier")
        gate = min(verifier.cfg.minSimilarity, threshold) if verifier is not None and verifying else threshold
        # (candidate, similarity, cosine alone serves it, an overruled rule refused it)
        passed: list[tuple[Entry, float, bool, bool]] = []
        decayed = False  # a candidate that only its age kept from being served
        for cand, sim in candidates:
            if cand.text is None or cand.key == skip:
                continue  # stored for exact reuse only, or the refused exact entry
            if (
                plan
                and self.plans is not None
                and not self.plans.servable(cand.answer, keys.semantic_text, cand.text)
            ):
                continue
            near = self.cfg.guard.enabled and guard.near_duplicate(keys.semantic_text, cand.text)
            if sim < gate and not near:
                continue
            # decay: the bar (threshold and verifier gate alike) rises with the candidate's age
            shift = self.decay.shift(now - cand.created)
            rule = self.check(mine, mine_ctx, cand) if self.cfg.guard.enabled else None
            if rule is not None:
                if verifying and verifier is not None and rule in verifier.cfg.overrule:
                    passed.append((cand, sim, False, True))  # the verifier decides; never served without it
                    continue
                self.metrics.guard_rejections.labels(rule).inc()
                refused = refused or rule
                continue
            if sim < gate + shift and not near:
                decayed = True
                continue
            alone = sim >= threshold + shift or near
            # scope "uncertain": what cosine and the rules alone serve is not asked about
            if verifier is None or (alone and verifier.cfg.scope == "uncertain"):
                if verifier is not None:
                    self.metrics.verifier_skipped.inc()
                self.metrics.hit_similarity.observe(sim)
                return Decision(HIT_SEMANTIC, gen, keys, cand, sim, vector=vector, tags=tags)
            passed.append((cand, sim, alone, False))
        if passed and verifier is not None:
            chosen, reason = await self._verify(verifier, keys.semantic_text, passed)
            if chosen is not None:
                cand, sim = chosen
                self.metrics.hit_similarity.observe(sim)
                return Decision(HIT_SEMANTIC, gen, keys, cand, sim, vector=vector, tags=tags)
            refused = refused or reason
        if exact_decayed or decayed:
            refused = DECAYED_EXACT if exact_decayed else DECAYED
        return Decision(MISS, gen, keys, reason=refused, vector=vector, tags=tags)

    async def _verify(
        self, verifier: Verifier, text: str, passed: list[tuple[Entry, float, bool, bool]]
    ) -> tuple[tuple[Entry, float] | None, str]:
        """The best candidate the verifier confirms (candidates come best-first by similarity), or
        None and the reason; one an overruled rule refused needs ``overruleMinScore``. When the
        verifier fails, ``onError`` decides: as without it, or no hit."""
        fallback = verifier.cfg.onError == "threshold"
        if self.breakers.up("verifier"):
            started = time.perf_counter()
            try:
                judged = await verifier.judge(
                    text, [c.text or "" for c, _, _, _ in passed], generation=self.generation.id
                )
            except VerifierError as exc:
                self.breakers.failed("verifier", exc)
                self.metrics.verifier_calls.labels(verifier.kind, "error").inc()
            else:
                self.metrics.verifier_seconds.observe(time.perf_counter() - started)
                self._count_verifier_cost(verifier.kind, judged)
                for (cand, sim, _, overruled), score in zip(passed, judged.scores, strict=True):
                    self.metrics.verifier_scores.observe(score)
                    if score >= verifier.cfg.min_score(overruled):
                        return (cand, sim), "verifier"
                    self.metrics.guard_rejections.labels("verifier").inc()
                return None, "verifier"
        self.metrics.errors.labels("verifier").inc()
        if fallback:
            for cand, sim, alone, _ in passed:
                if alone:
                    return (cand, sim), "verifier-error"
        return None, "verifier-error"

    def _count_verifier_cost(self, kind: str, judged: Judgement) -> None:
        m = self.metrics
        m.verifier_calls.labels(kind, "ok").inc()
        m.verifier_unjudged.inc(judged.unjudged)
        for cost in judged.requests:
            m.verifier_request_seconds.labels(kind).observe(cost.seconds)
            m.verifier_tokens.labels(kind, "prompt").inc(cost.prompt_tokens)
            m.verifier_tokens.labels(kind, "completion").inc(cost.completion_tokens)
            m.verifier_tokens.labels(kind, "cached").inc(cost.cached_tokens)

    @staticmethod
    def check(mine: guard.Features, mine_ctx: guard.Features | None, cand: Entry) -> str | None:
        """The guard on one candidate: the last turns, then the facts of the earlier turns."""
        assert cand.text is not None
        rule = guard.compare(mine, guard.features(cand.text))
        if rule is not None:
            return rule
        # A last turn that names what it is about ("the cooling-off period for a Kestrel broadband
        # contract") does not lean on the conversation; one that names nothing ("is there an exit
        # fee?") may mean something else in another conversation, so the facts of both must agree.
        if mine.entities:
            return None
        if mine_ctx is not None or cand.context:
            theirs = guard.features(cand.context) if cand.context else guard.features("")
            ctx_rule = guard.compare_context(mine_ctx or guard.features(""), theirs)
            if ctx_rule is not None:
                return "context-" + ctx_rule
        return None

    # -- storing -----------------------------------------------------------------------------------

    async def store_answer(self, decision: Decision, answer: CachedAnswer) -> bool:
        """Store a fresh answer for a miss. Only a miss stores: a hit is already there, a bypass was
        meant to pass, an error means the store is not to be trusted right now."""
        if decision.result != MISS or decision.keys is None:
            return False
        if decision.generation.id != self.generation.id:
            # the generation switched while upstream was answering: the answer belongs to the old one
            self.metrics.not_stored.labels("generation-switched").inc()
            return False
        if self.plans is not None:
            why = self.plans.refusal(decision.stage, decision.live, answer)
            if why is not None:
                self.metrics.not_stored.labels(why).inc()
                return False
        keys = decision.keys
        now = self.clock()
        entry = Entry(
            key=keys.exact,
            partition=keys.partition,
            generation=decision.generation.id,
            answer=answer.to_json(),
            created=now,
            expires=now + self.cfg.ttlSeconds,
            text=keys.semantic_text,
            context=keys.context_text,
            vector=decision.vector,
            tags=decision.tags,
        )
        try:
            await self.store.put(entry)
        except StoreError as exc:
            self.breakers.failed("store", exc)
            self.metrics.not_stored.labels("store-error").inc()
            return False
        self.metrics.stored.inc()
        if decision.reason in (DECAYED, DECAYED_EXACT):
            self.metrics.decay_refreshes.labels(
                "exact" if decision.reason == DECAYED_EXACT else "semantic"
            ).inc()
        return True

    def store_in_background(self, decision: Decision, answer: CachedAnswer) -> None:
        task = asyncio.create_task(self.store_answer(decision, answer))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        """Wait for background stores (tests and shutdown)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def aclose(self) -> None:
        await self.drain()
        await self.breakers.aclose()
        if self.verifier is not None:
            await self.verifier.aclose()
