"""Cache keys and invalidation, in one place for readers and the workers."""

from __future__ import annotations

from redis.asyncio import Redis

PREFIX = "planboard:"


def project_keys(project_id: str) -> list[str]:
    """Every cached read derived from a project's tasks."""
    return [f"{PREFIX}progress:{project_id}", f"{PREFIX}project:{project_id}"]


async def invalidate_project(redis: Redis, project_id: str) -> int:
    return int(await redis.delete(*project_keys(project_id)))
