"""The consumer runner: one Kafka consumer group, at-least-once, idempotent effects.

Offsets are committed only after every message of a batch has had its effect.
An event already processed by this group (same event id) is skipped, so a
redelivery after a crash has no second effect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from planboard.config import Settings
from planboard.events.envelope import Event
from planboard.events.topics import ensure_topics
from planboard.store.document import Document

log = logging.getLogger(__name__)

PROCESSED = "processed_events"

EventHandler = Callable[[Event], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ConsumerGroup:
    """What a worker group consumes and what it does with each event."""

    name: str
    families: Sequence[str]
    handle: EventHandler
    event_types: frozenset[str] | None = None  # None: every event of the families

    def wants(self, event: Event) -> bool:
        return self.event_types is None or event.type in self.event_types


async def already_processed(db: AsyncDatabase[Document], group: str, event_id: str) -> bool:
    return await db[PROCESSED].find_one({"_id": f"{group}:{event_id}"}, {"_id": 1}) is not None


async def mark_processed(db: AsyncDatabase[Document], group: str, event_id: str) -> None:
    with contextlib.suppress(DuplicateKeyError):
        await db[PROCESSED].insert_one(
            {"_id": f"{group}:{event_id}", "group": group, "processed_at": datetime.now(UTC)}
        )


class ConsumerRunner:
    def __init__(
        self,
        settings: Settings,
        db: AsyncDatabase[Document],
        group: ConsumerGroup,
        *,
        batch_size: int = 100,
    ) -> None:
        self.settings = settings
        self.db = db
        self.group = group
        self.batch_size = batch_size
        self.processed = 0
        self.skipped = 0
        self._stopping = asyncio.Event()

    def topics(self) -> list[str]:
        return [f"{self.settings.kafka_topic_prefix}{family}" for family in self.group.families]

    async def handle(self, event: Event) -> None:
        """Apply the group's effect once per event id."""
        if not self.group.wants(event):
            return
        if await already_processed(self.db, self.group.name, event.id):
            self.skipped += 1
            return
        await self.group.handle(event)
        await mark_processed(self.db, self.group.name, event.id)
        self.processed += 1

    async def run(self) -> None:
        backoff = 0.5
        while not self._stopping.is_set():
            try:
                await ensure_topics(self.settings)
                await self._consume()
                return
            except (KafkaError, OSError, TimeoutError) as exc:
                log.warning(
                    "group %s: Kafka unavailable (%s); retrying in %.1fs",
                    self.group.name,
                    type(exc).__name__,
                    backoff,
                )
                await self._sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    async def _consume(self) -> None:
        consumer = AIOKafkaConsumer(
            *self.topics(),
            bootstrap_servers=self.settings.kafka_bootstrap,
            group_id=f"{self.settings.kafka_topic_prefix}{self.group.name}",
            client_id=f"planboard-{self.group.name}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.batch_size,
            session_timeout_ms=10000,
            heartbeat_interval_ms=1000,
        )
        await consumer.start()
        log.info("group %s consuming %s", self.group.name, self.topics())
        try:
            while not self._stopping.is_set():
                batches = await consumer.getmany(timeout_ms=500, max_records=self.batch_size)
                for records in batches.values():
                    for record in records:
                        if record.value is None:
                            continue
                        await self.handle(Event.from_json(record.value))
                if batches:
                    await consumer.commit()
        finally:
            await consumer.stop()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def stop(self) -> None:
        self._stopping.set()
