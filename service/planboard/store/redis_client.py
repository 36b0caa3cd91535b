"""The Redis client every process builds from its settings (the twin of store/mongo.py's
``create_client``): commands and connects time out after the dependency timeout, so a
Redis outage costs a request at most that long."""

from __future__ import annotations

from redis.asyncio import Redis

from planboard.config import Settings


def create_redis(settings: Settings, *, health_check_interval: int = 0) -> Redis:
    client: Redis = Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.dependency_timeout_s,
        socket_connect_timeout=settings.dependency_timeout_s,
        health_check_interval=health_check_interval,
    )
    return client
