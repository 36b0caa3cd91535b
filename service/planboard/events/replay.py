"""Re-drive dead letters of a group through its first retry topic.

Only that group sees them again (other groups are not disturbed, unlike a
re-publish to the main topic); the group's idempotency skips events it has
already applied.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from planboard.config import Settings
from planboard.events.consumer import dead_letter_topic, retry_topic
from planboard.events.topics import ensure_topics

log = logging.getLogger(__name__)


async def replay_dead_letters(
    settings: Settings, group: str, *, timeout_s: float = 30.0, limit: int | None = None
) -> int:
    """Move the dead letters present now to the retry topic; returns how many."""
    prefix = settings.kafka_topic_prefix
    source = dead_letter_topic(prefix, group)
    target = retry_topic(prefix, group, 1)
    await ensure_topics(settings, [source, target])
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"{prefix}{group}.replay",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True
    )
    await consumer.start()
    await producer.start()
    moved = 0
    try:
        partitions = [
            TopicPartition(source, p) for p in consumer.partitions_for_topic(source) or ()
        ]
        if not partitions:
            await consumer._client.force_metadata_update()  # first use of the topic
            partitions = [
                TopicPartition(source, p) for p in consumer.partitions_for_topic(source) or ()
            ]
        consumer.assign(partitions)
        end = await consumer.end_offsets(partitions)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and (limit is None or moved < limit):
            pending = [tp for tp in partitions if await consumer.position(tp) < end[tp]]
            if not pending:
                break
            batches = await consumer.getmany(*pending, timeout_ms=500)
            for tp, records in batches.items():
                for record in records:
                    if record.offset >= end[tp] or (limit is not None and moved >= limit):
                        continue
                    headers = [
                        (k, v) for k, v in record.headers or () if k not in ("attempt", "due-at")
                    ]
                    headers += [("attempt", b"0"), ("due-at", f"{time.time():.3f}".encode())]
                    await producer.send_and_wait(
                        target, record.value, key=record.key, headers=headers
                    )
                    moved += 1
                    await consumer.commit({tp: record.offset + 1})
            await asyncio.sleep(0)
    finally:
        await producer.stop()
        await consumer.stop()
    log.info("replayed dead letters", extra={"group": group, "count": moved})
    return moved
