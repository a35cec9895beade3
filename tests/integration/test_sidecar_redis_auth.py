"""A password-protected Redis: the sidecar reads the password from cache.redisPasswordFile.

The operator mounts a policy's semanticCache.redis.passwordSecretRef into the sidecar as that file,
so the password never sits in the rendered ConfigMap.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import RedisServer, free_port

import redis
from fakes.openai_upstream import FakeOpenAI, run_server
from hermes_sidecar.app import create_app
from hermes_sidecar.config import parse_config
from hermes_sidecar.embed import LocalEmbedder

pytestmark = pytest.mark.integration
PASSWORD = "s3cret-for-tests"


@pytest.fixture
def locked_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer("redis", free_port(), tmp_path / "redis")
    server.start()
    # set after start: the start script's readiness probe speaks without a password
    redis.Redis(port=server.port).config_set("requirepass", PASSWORD)
    try:
        yield server
    finally:
        server.stop()


def ask(client: httpx.Client) -> str:
    body = {"model": "m", "messages": [{"role": "user", "content": "How do I rotate my API keys?"}]}
    resp = client.post("/v1/chat/completions", json=body, headers={"x-tenant-id": "acme"})
    assert resp.status_code == 200
    return resp.headers["x-hermes-cache"]


@pytest.mark.parametrize("right_password", [True, False])
def test_password_file_unlocks_redis_and_a_wrong_one_fails_open(
    locked_redis: RedisServer, tmp_path: Path, right_password: bool
) -> None:
    pw = tmp_path / "password"
    pw.write_text((PASSWORD if right_password else "wrong") + "\n")
    with run_server(FakeOpenAI().app()) as upstream:
        cfg = parse_config(
            {
                "upstream": {"url": upstream},
                "cache": {
                    "backend": "redis",
                    "redisUrl": locked_redis.url,
                    "redisPasswordFile": str(pw),
                    "scope": "auth/policy",
                },
            }
        )
        app = create_app(cfg, embedder=LocalEmbedder())
        with run_server(app, lifespan="on") as url, httpx.Client(base_url=url, timeout=30) as client:
            assert ask(client) == "miss"
            if right_password:
                deadline = time.monotonic() + 5
                while ask(client) != "hit-exact":
                    assert time.monotonic() < deadline, "the entry never reached the password-protected Redis"
                    time.sleep(0.05)
                entries = redis.Redis(port=locked_redis.port, password=PASSWORD).scan_iter(
                    match="hermes:auth/policy:g:*:entry:*"
                )
                assert list(entries)
            else:
                # Redis refuses the client: requests still pass through, nothing is served from cache
                assert [ask(client) for _ in range(3)] == ["miss"] * 3
                errors = re.findall(
                    r'^hermes_cache_requests_total\{[^}]*result="error"[^}]*\} ([0-9.]+)$',
                    client.get("/metrics").text,
                    re.MULTILINE,
                )
                assert sum(float(v) for v in errors) == 4  # the first request and the three after it
