"""The worker groups ``planboard worker --group NAME`` can run."""

from __future__ import annotations

from collections.abc import Callable

from redis.asyncio import Redis

from planboard.events.consumer import ConsumerGroup
from planboard.workers.rollups import rollups_group

GroupFactory = Callable[[Redis], ConsumerGroup]

GROUPS: dict[str, GroupFactory] = {
    "rollups": rollups_group,
}
