"""The cache generation of a policy: publish ``spec.cacheVersion`` to the sidecars, read their stats.

A generation is ``(policy uid, spec.cacheVersion)``. When the version moves, the record
(:mod:`hermes_sidecar.contract`) is written and published to the policy's Redis, and every sidecar
switches at once; the pod template is never touched. The drift pass also puts back a record Redis
lost (restart without persistence) and reads the per-generation counters into
``status.semanticCache``.
"""

from __future__ import annotations

from typing import Any

from .env import Env
from .events import Subject, post, warn_if_new
from .generations import GenerationStoreError, generation_record, url_with_password
from .render import redis_url
from .spec import Policy, redact
from .status import GENERATION_APPLIED, CacheGeneration, Cond, Status

# CacheGenerationApplied=False reasons that are worth a Warning Event (the user has to act).
REDIS_REFUSALS = ("RedisUnavailable", "RedisPasswordUnavailable")


def summarize_stats(stats: dict[str, int]) -> dict[str, Any]:
    """``status.semanticCache``: hit rate over cache lookups (hits / (hits + misses)), as a string.

    Bypassed requests (not cacheable: streaming errors, uncacheable sampling...) and errors count in
    ``requests`` but not in the hit rate, which is the quantity a threshold change moves.
    """
    hits = stats.get("hit_exact", 0) + stats.get("hit_semantic", 0)
    lookups = hits + stats.get("miss", 0)
    requests = lookups + stats.get("bypass", 0) + stats.get("error", 0)
    return {
        "hitRate": f"{hits / lookups:.3f}" if lookups else "",
        "requests": requests,
        "entries": stats.get("entries", 0),
    }


def reconcile_generation(
    policy: Policy, env: Env, old_status: Status, now: str, read_stats: bool
) -> CacheGeneration:
    """Publish the generation record when ``spec.cacheVersion`` moved; read the stats on the drift pass.

    Returns the generation the status shows and the CacheGenerationApplied condition, after a
    Warning Event when Redis refused it for the first time.
    """
    gen = _publish(policy, env, old_status, now, read_stats)
    if gen.condition.status == "False" and gen.condition.reason in REDIS_REFUSALS:
        subject = Subject(policy.namespace, policy.name, policy.uid)
        warn_if_new(env, subject, old_status.get("conditions") or [], gen.condition, gen.condition.reason)
    return gen


def _publish(policy: Policy, env: Env, old_status: Status, now: str, read_stats: bool) -> CacheGeneration:
    sc = policy.spec.semanticCache
    want = policy.spec.cacheVersion
    applied = old_status.get("cacheVersion") or ""
    switched_at = old_status.get("cacheVersionSwitchedAt") or ""
    stats = old_status.get("semanticCache")

    def shown(version: str, ok: bool, reason: str, message: str) -> CacheGeneration:
        return CacheGeneration(version, switched_at, stats, Cond.of(GENERATION_APPLIED, ok, reason, message))

    if not sc.enabled or sc.redis is None:
        if applied != want:
            switched_at = now
        if not sc.enabled:
            return shown(want, True, "SemanticCacheDisabled", f"generation {want}: no cache")
        return shown(
            want,
            False,
            "PodLocalCache",
            f"generation {want} recorded, but without spec.semanticCache.redis each pod's in-memory cache "
            f"keeps older entries until their TTL; set spec.semanticCache.redis.url to switch generations",
        )

    url = redis_url(policy) or ""
    client_url = url
    ref = sc.redis.passwordSecretRef
    if ref is not None:
        # The operator's own client reads the Secret; the sidecars get it mounted as a file.
        try:
            client_url = url_with_password(url, env.kube.secret_value(policy.namespace, ref.name, ref.key))
        except Exception as exc:  # LookupError naming what is missing, or the API server's KubeError
            return shown(
                applied,
                False,
                "RedisPasswordUnavailable",
                f"generation {want} not published: cannot read the Redis password from "
                f"spec.semanticCache.redis.passwordSecretRef (Secret {policy.namespace}/{ref.name}, key "
                f"{ref.key!r}): {exc}",
            )
    try:
        store = env.stores(client_url)
        if applied != want:
            store.write_generation(policy.namespace, policy.name, generation_record(want, policy.uid, now))
            if applied:
                env.metrics.generation_switches.labels(policy.namespace, policy.name).inc()
            post(
                env, Subject(policy.namespace, policy.name, policy.uid), "Normal", "CacheGenerationSwitched",
                f"cache generation {applied or '(none)'} -> {want} published to {redact(url)}",
            )  # fmt: skip
            applied, switched_at = want, now
        elif read_stats:
            # Redis may have lost the record (restart without persistence): put it back as it was.
            expected = generation_record(want, policy.uid, switched_at)
            if store.read_generation(policy.namespace, policy.name) != expected:
                store.write_generation(policy.namespace, policy.name, expected)
        if read_stats:
            stats = summarize_stats(store.read_stats(policy.namespace, policy.name, want))
    except GenerationStoreError as exc:
        return shown(applied, False, "RedisUnavailable", f"generation {want} not published: {exc}")
    return shown(applied, True, "GenerationPublished", f"generation {want} published at {switched_at}")
