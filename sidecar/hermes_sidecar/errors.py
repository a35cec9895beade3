"""Every exception the sidecar raises on purpose, in one tree::

    HermesError
    ├── ConfigError           a setting or file the user must fix; the message names the field.
    │   │                     Also a ValueError (callers and tests that catch ValueError keep working).
    │   └── EvaluationError   a pairs file of ``hermes-sidecar evaluate`` is missing or malformed
    ├── DependencyError       a dependency did not answer: what fail-open catches. The request passes
    │   │                     through and the component's breaker opens (``cache/breaker.py``).
    │   │                     Also a RuntimeError, as each of these was before the tree existed.
    │   ├── StoreError        the cache store (memory or Redis)
    │   ├── EmbedderError     the embedding model or endpoint
    │   └── VerifierError     the rerank verifier
    ├── NotCacheable          not a failure: a request the cache must pass through (``bypass``); the
    │                         upstream judges it, as it would without the sidecar
    └── BadRequest            a body the sidecar cannot read at all (not JSON, nested deeper or larger
                              than ``limits``): the client's error, answered 400/413 in the
                              upstream's error format and never forwarded

The config schema's validators raise ValueError, as pydantic asks; ``parse_config`` turns them all
into one ConfigError. Upstream failures are not in the tree: the pipeline answers them as HTTP
(502), and httpx's own errors say more than a wrapper would (:func:`describe` names their kind, as
some carry no message). The module where each error belongs
re-exports it (``hermes_sidecar.store.StoreError``, ``hermes_sidecar.config.ConfigError``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BadRequest",
    "ConfigError",
    "ConfigProblem",
    "DependencyError",
    "EmbedderError",
    "EvaluationError",
    "HermesError",
    "NotCacheable",
    "StoreError",
    "VerifierError",
    "describe",
]


class HermesError(Exception):
    """The root: ``except HermesError`` catches every error the sidecar raises on purpose."""


@dataclass(frozen=True)
class ConfigProblem:
    """One broken setting: where (``cache.guard.verifier.url``), pydantic's error type, the text."""

    loc: str
    kind: str  # pydantic's error type, e.g. "extra_forbidden" for a key this sidecar does not know
    message: str


class ConfigError(HermesError, ValueError):
    """The configuration file is missing, not YAML, or breaks the schema; the message names the field.

    ``problems`` holds each schema violation as data, so callers (the operator, which renders this
    config from a policy) need not parse the message back.
    """

    def __init__(self, message: str, problems: tuple[ConfigProblem, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems


class EvaluationError(ConfigError):
    """A pairs file is missing or malformed; the message names the file and line."""


class DependencyError(HermesError, RuntimeError):
    """A dependency of the cache is down or answered an error; the request path fails open on it."""


class StoreError(DependencyError):
    """The store is unreachable or answered with an error; the pipeline fails open on it."""


class EmbedderError(DependencyError):
    """The embedder could not produce vectors (endpoint down, model missing); callers fail open."""


class VerifierError(DependencyError):
    """The verifier did not answer, or answered something that is not a score per candidate."""


class NotCacheable(HermesError):
    """The request is valid but must bypass the cache; ``reason`` is a short label for logs/metrics."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BadRequest(HermesError):
    """The client's body cannot be read; ``status`` is 400 (not JSON, too deep) or 413 (too large),
    ``reason`` a short label for metrics, the message says what was wrong and what would work."""

    def __init__(self, message: str, *, reason: str, status: int = 400) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status


def describe(exc: BaseException) -> str:
    """``Kind: message`` of an exception from a dependency, or just its kind when the message is
    empty, as httpx's often is (a connection reset by the server is ``ReadError('')``, a timeout
    ``ReadTimeout('')``): a log line or a 502 never ends in "failed: " with nothing after it."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
