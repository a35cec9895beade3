"""The sidecar configuration file: one YAML document, the same one the operator renders into a ConfigMap.

Unknown keys are an error at start (``extra="forbid"`` on every model), so a typo in a policy or a
hand-written file fails loudly instead of silently running with a default. The operator imports this
module to validate what it renders; the sidecar never imports the operator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class UpstreamConfig(_Strict):
    kind: Literal["openai", "anthropic"] = "openai"
    url: str = "http://127.0.0.1:8000"
    timeoutSeconds: float = Field(default=600.0, gt=0)
    # Anthropic only: a file holding the API key, used when the client sends none. Never logged.
    apiKeyFile: str | None = None


class CacheConfig(_Strict):
    enabled: bool = True
    backend: Literal["redis", "memory"] = "memory"
    redisUrl: str | None = None
    similarityThreshold: float = Field(default=0.9, gt=0, le=1)
    ttlSeconds: int = Field(default=3600, ge=1)
    # memory backend: bound on entries (LRU beyond it); redis backend: bound per generation
    maxEntries: int = Field(default=100_000, ge=1)
    # scope of the generation record: hermes:{scope}:generation, scope = "{namespace}/{policy}"
    scope: str = "local/default"

    @field_validator("redisUrl")
    @classmethod
    def _redis_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"cache.redisUrl {v!r} must start with redis://, rediss:// or unix://")
        return v


class EmbeddingConfig(_Strict):
    provider: Literal["local", "openai"] = "local"
    model: str | None = None
    url: str | None = None  # openai provider: base URL of an OpenAI-compatible embeddings endpoint
    apiKeyFile: str | None = None
    timeoutSeconds: float = Field(default=5.0, gt=0)


class AdminConfig(_Strict):
    tokenFile: str | None = None


class SidecarConfig(_Strict):
    listen: str = "0.0.0.0:8080"
    upstream: UpstreamConfig = UpstreamConfig()
    cache: CacheConfig = CacheConfig()
    tenantHeader: str = "x-tenant-id"
    embedding: EmbeddingConfig = EmbeddingConfig()
    admin: AdminConfig = AdminConfig()

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        host, sep, port = v.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"listen {v!r} must be host:port, for example 0.0.0.0:8080")
        return v


class ConfigError(ValueError):
    """The configuration file is missing, not YAML, or breaks the schema; the message names the field."""


def parse_config(data: dict[str, Any] | None) -> SidecarConfig:
    try:
        return SidecarConfig.model_validate(data or {})
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
            got = err.get("input")
            lines.append(f"{loc}: {err['msg']} (got {got!r})")
        raise ConfigError("invalid sidecar config:\n  " + "\n  ".join(lines)) from None


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
