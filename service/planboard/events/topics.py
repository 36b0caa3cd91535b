"""Create the event topics (idempotent): production clusters often forbid auto-creation."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from planboard.config import Settings
from planboard.events.envelope import all_topics

log = logging.getLogger(__name__)


async def ensure_topics(settings: Settings, extra: Sequence[str] = ()) -> None:
    """Create the event-family topics (and ``extra`` ones) that do not exist yet."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, client_id="planboard-admin"
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [*all_topics(settings.kafka_topic_prefix), *extra]
        missing = [t for t in wanted if t not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [
                        NewTopic(
                            t,
                            num_partitions=settings.kafka_partitions,
                            replication_factor=settings.kafka_replication_factor,
                        )
                        for t in missing
                    ]
                )
            log.info("created topics %s", missing)
    finally:
        await admin.close()
