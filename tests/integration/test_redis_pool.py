"""The gateway's Redis client under more concurrent commands than it has connections: they wait
for one (redis-py's default pool refused the 101st with "Too many connections", a 500)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from imagegate.gateway import REDIS_MAX_CONNECTIONS, open_redis
from imagegate.settings import Settings
from tests.services import Services

pytestmark = pytest.mark.one_profile("the Redis client itself, on the suite's Redis server")


async def test_commands_beyond_the_pool_wait_for_a_connection(services: Services, tmp_path: Path) -> None:
    redis = open_redis(Settings(redis_url=services.redis.url, data_dir=tmp_path))
    try:
        empty = f"imagegate-test:{uuid.uuid4().hex}"
        # Each BLPOP holds its connection for 0.1 s: 2.5 pools' worth at once, in three rounds.
        count = REDIS_MAX_CONNECTIONS * 5 // 2
        answers = await asyncio.gather(*(redis.blpop([empty], timeout=0.1) for _ in range(count)))
        assert answers == [None] * count
    finally:
        await redis.aclose()
