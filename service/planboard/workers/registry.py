"""The worker groups ``planboard worker --group NAME`` can run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pymongo.asynchronous.database import AsyncDatabase
from redis.asyncio import Redis

from planboard.config import Settings
from planboard.events.consumer import ConsumerGroup
from planboard.store.document import Document
from planboard.workers.attachments import attachments_group
from planboard.workers.jobs import jobs_group
from planboard.workers.notifications import notifications_group
from planboard.workers.rollups import rollups_group
from planboard.workers.search import search_group
from planboard.workers.webhooks import webhooks_group


@dataclass(frozen=True, slots=True)
class WorkerDeps:
    settings: Settings
    db: AsyncDatabase[Document]
    redis: Redis


GroupFactory = Callable[[WorkerDeps], ConsumerGroup]

# Not a Kafka consumer group: periodic jobs, run with `planboard worker --group scheduler`.
SCHEDULER = "scheduler"

GROUPS: dict[str, GroupFactory] = {
    "notifications": lambda deps: notifications_group(deps.settings, deps.db),
    "rollups": lambda deps: rollups_group(deps.redis),
    "jobs": lambda deps: jobs_group(deps.db, deps.settings),
    "webhooks": lambda deps: webhooks_group(deps.settings, deps.db, redis=deps.redis),
    "search": lambda deps: search_group(deps.db, deps.redis),
    "attachments": lambda deps: attachments_group(deps.settings, deps.db),
}


def worker_names() -> list[str]:
    """Everything `planboard worker --group` accepts (and `planboard dev` starts)."""
    return sorted([*GROUPS, SCHEDULER])
