"""The outbox relay: publishes stored events to Kafka, in order, then deletes them.

Only the holder of the ``relay`` lease publishes, so several relay replicas never
publish the same event concurrently; a relay that dies after publishing and before
deleting leaves events that the next leader publishes again — consumers are
idempotent on the event id, which makes that at-least-once delivery safe.

Per batch (up to ``PLANBOARD_RELAY_BATCH_SIZE`` events, oldest first): one ``find`` of
the pending events, every send handed to the idempotent producer at once (it batches
them per partition, ``linger_ms``), one wait for all acknowledgements, one
``delete_many`` removing them from the outbox (Kafka keeps the history; with
``PLANBOARD_OUTBOX_KEEP_PUBLISHED`` one ``update_many`` marking them instead). The lease is
renewed once a third of its time has passed, not per batch. Polling adapts: straight on
after a full batch, after ``POLL_MIN_S`` after a partial one, and while the outbox stays
empty the wait doubles up to ``PLANBOARD_RELAY_POLL_MAX_MS`` (an empty poll is one
indexed ``find``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from datetime import timedelta

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry, Counter, Gauge
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from planboard import tracing
from planboard.config import Settings
from planboard.events import outbox
from planboard.events.envelope import topic_for
from planboard.events.topics import ensure_topics
from planboard.store import locks
from planboard.store.document import Document

log = logging.getLogger(__name__)

LEASE = "relay"
BACKLOG_INTERVAL_S = 5.0
POLL_MIN_S = 0.01


class Relay:
    def __init__(
        self,
        settings: Settings,
        db: AsyncDatabase[Document],
        *,
        batch_size: int | None = None,
        idle_interval_s: float | None = None,
        lease_ttl: timedelta = timedelta(seconds=15),
    ) -> None:
        self.settings = settings
        self.db = db
        self.batch_size = batch_size or settings.relay_batch_size
        # the longest wait between two polls of an empty outbox
        self.idle_interval_s = (
            idle_interval_s if idle_interval_s is not None else settings.relay_poll_max_ms / 1000
        )
        self.lease_ttl = lease_ttl
        self._lease_renewed = float("-inf")  # monotonic time of the last successful acquire
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.published = 0
        self.registry = CollectorRegistry(auto_describe=True)
        self._published_total = Counter(
            "planboard_relay_published_total", "Events published to Kafka.", registry=self.registry
        )
        self._backlog = Gauge(
            "planboard_outbox_backlog",
            "Events stored but not yet published.",
            registry=self.registry,
        )
        self._leader = Gauge(
            "planboard_relay_leader",
            "1 while this relay holds the publishing lease.",
            registry=self.registry,
        )
        self._backlog_checked = 0.0
        self._producer: AIOKafkaProducer | None = None
        self._stopping = asyncio.Event()

    async def _producer_ready(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.settings.kafka_bootstrap,
                client_id="planboard-relay",
                acks="all",
                enable_idempotence=True,
                linger_ms=5,
                request_timeout_ms=15000,
            )
            try:
                await producer.start()
                await ensure_topics(self.settings)
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await producer.stop()
            except KafkaError:
                log.warning("error while closing the Kafka producer", exc_info=True)

    async def publish_batch(self) -> int:
        """Publish up to one batch; returns how many events were published."""
        events = await outbox.pending(self.db, self.batch_size)
        if not events:
            return 0
        producer = await self._producer_ready()
        prefix = self.settings.kafka_topic_prefix
        with contextlib.ExitStack() as spans:  # one "publish" span per event (tracing on)
            futures = [
                await producer.send(
                    topic_for(prefix, e.type),
                    value=e.to_json(),
                    key=e.key.encode(),
                    headers=[
                        ("event-type", e.type.encode()),
                        ("event-id", e.id.encode()),
                        *spans.enter_context(
                            tracing.publish_span(e.type, e.id, topic_for(prefix, e.type), e.trace)
                        ),
                    ],
                )
                for e in events
            ]
            await asyncio.gather(*futures)
        published = [e.id for e in events]
        if self.settings.outbox_keep_published:
            await outbox.mark_published(self.db, published)
        else:
            await outbox.remove_published(self.db, published)
        self.published += len(events)
        self._published_total.inc(len(events))
        return len(events)

    async def _refresh_backlog(self) -> None:
        now = time.monotonic()
        if now - self._backlog_checked >= BACKLOG_INTERVAL_S:
            self._backlog_checked = now
            self._backlog.set(await outbox.backlog(self.db))

    async def _hold_lease(self, leader: bool) -> bool:
        """Acquire or renew the lease when due; whether this relay may publish now."""
        now = time.monotonic()
        if leader and now - self._lease_renewed < self.lease_ttl.total_seconds() / 3:
            return True
        leader = await locks.acquire(self.db, LEASE, self.owner, self.lease_ttl)
        if leader:
            self._lease_renewed = now
        self._leader.set(1 if leader else 0)
        return leader

    async def run(self) -> None:
        """Publish until ``stop()``; errors back off and retry, nothing is dropped."""
        backoff = 0.5
        leader = False
        wait = POLL_MIN_S
        while not self._stopping.is_set():
            try:
                leader = await self._hold_lease(leader)
                await self._refresh_backlog()
                if not leader:
                    await self._sleep(self.lease_ttl.total_seconds() / 3)
                    continue
                count = await self.publish_batch()
                backoff = 0.5
                if count >= self.batch_size:
                    wait = POLL_MIN_S
                    continue  # more is waiting
                if count:
                    wait = POLL_MIN_S
                await self._sleep(min(wait, self.idle_interval_s))
                if not count:
                    wait = min(wait * 2, self.idle_interval_s)
            except (KafkaError, OSError, TimeoutError) as exc:
                log.warning(
                    "Kafka unavailable (%s); retrying in %.1fs", type(exc).__name__, backoff
                )
                await self._drop_producer()
                await self._sleep(backoff)
                backoff = min(backoff * 2, 10.0)
            except PyMongoError as exc:
                log.warning(
                    "MongoDB unavailable (%s); retrying in %.1fs", type(exc).__name__, backoff
                )
                leader = False  # re-acquire: the lease may have lapsed meanwhile
                await self._sleep(backoff)
                backoff = min(backoff * 2, 10.0)
        await self._drop_producer()
        if leader:
            try:
                await locks.release(self.db, LEASE, self.owner)
            except PyMongoError:
                log.warning("could not release the relay lease", exc_info=True)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def stop(self) -> None:
        self._stopping.set()
