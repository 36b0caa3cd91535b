"""The consumer runner: one Kafka consumer group, at-least-once, idempotent effects.

- Offsets are committed only after every record of a batch has had its effect (or,
  when the handler failed, has been handed to the retry/dead-letter topics).
- An event already processed by this group (same event id) is skipped, so a
  redelivery after a crash has no second effect.
- A failing event goes to ``<prefix>retry.<group>.<n>`` with a due time, is tried
  again after each delay of the retry policy, then lands in ``<prefix>dlq.<group>``
  with the error; ``planboard replay --group NAME`` re-drives dead letters.
  Retried events may be applied out of order relative to newer ones: handlers are
  written to be idempotent and to tolerate that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry, Counter, Gauge
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from planboard import tracing
from planboard.config import Settings
from planboard.events.envelope import Event
from planboard.events.topics import ensure_topics
from planboard.store.document import Document

log = logging.getLogger(__name__)

PROCESSED = "processed_events"
MAX_ERROR_CHARS = 2000

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


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Delays before each retry; after the last one the event is dead-lettered."""

    delays_s: tuple[float, ...] = (5.0, 30.0, 120.0)


def retry_topic(prefix: str, group: str, level: int) -> str:
    return f"{prefix}retry.{group}.{level}"


def dead_letter_topic(prefix: str, group: str) -> str:
    return f"{prefix}dlq.{group}"


class ConsumerMetrics:
    """Per-group counters and lag, on a registry the worker process serves."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        labels = ("group",)
        self.processed = Counter(
            "planboard_events_processed_total", "Events handled.", labels, registry=self.registry
        )
        self.skipped = Counter(
            "planboard_events_duplicates_total",
            "Redelivered events skipped (already processed).",
            labels,
            registry=self.registry,
        )
        self.failed = Counter(
            "planboard_events_failed_total", "Handler failures.", labels, registry=self.registry
        )
        self.retried = Counter(
            "planboard_events_retried_total",
            "Events sent to a retry topic.",
            labels,
            registry=self.registry,
        )
        self.dead_lettered = Counter(
            "planboard_events_dead_lettered_total",
            "Events sent to the dead-letter topic.",
            labels,
            registry=self.registry,
        )
        self.lag = Gauge(
            "planboard_consumer_lag",
            "Records not yet consumed by the group (main topics).",
            labels,
            registry=self.registry,
        )


async def already_processed(db: AsyncDatabase[Document], group: str, event_id: str) -> bool:
    return await db[PROCESSED].find_one({"_id": f"{group}:{event_id}"}, {"_id": 1}) is not None


async def mark_processed(db: AsyncDatabase[Document], group: str, event_id: str) -> None:
    with contextlib.suppress(DuplicateKeyError):
        await db[PROCESSED].insert_one(
            {"_id": f"{group}:{event_id}", "group": group, "processed_at": datetime.now(UTC)}
        )


def _header(record: ConsumerRecord[Any, Any], name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return bytes(value).decode(errors="replace")
    return None


class ConsumerRunner:
    def __init__(
        self,
        settings: Settings,
        db: AsyncDatabase[Document],
        group: ConsumerGroup,
        *,
        batch_size: int = 100,
        retry: RetryPolicy | None = None,
        metrics: ConsumerMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.group = group
        self.batch_size = batch_size
        self.retry = retry or RetryPolicy()
        self.metrics = metrics or ConsumerMetrics()
        self.processed = 0
        self.skipped = 0
        self.failed = 0
        self._producer: AIOKafkaProducer | None = None
        self._stopping = asyncio.Event()

    # --- names -----------------------------------------------------------------------

    @property
    def prefix(self) -> str:
        return self.settings.kafka_topic_prefix

    def topics(self) -> list[str]:
        return [f"{self.prefix}{family}" for family in self.group.families]

    def retry_topics(self) -> list[str]:
        return [
            retry_topic(self.prefix, self.group.name, n)
            for n in range(1, len(self.retry.delays_s) + 1)
        ]

    @property
    def dead_letter_topic(self) -> str:
        return dead_letter_topic(self.prefix, self.group.name)

    def group_id(self, suffix: str = "") -> str:
        return f"{self.prefix}{self.group.name}{suffix}"

    # --- processing ------------------------------------------------------------------

    async def handle(self, event: Event) -> None:
        """Apply the group's effect once per event id."""
        if not self.group.wants(event):
            return
        if await already_processed(self.db, self.group.name, event.id):
            self.skipped += 1
            self.metrics.skipped.labels(self.group.name).inc()
            return
        await self.group.handle(event)
        await mark_processed(self.db, self.group.name, event.id)
        self.processed += 1
        self.metrics.processed.labels(self.group.name).inc()

    async def _process(self, record: ConsumerRecord[Any, Any], attempt: int) -> None:
        """Handle one record; on failure hand it to the next retry level or the DLQ."""
        if record.value is None:
            return
        try:
            event = Event.from_json(record.value)
        except (ValueError, KeyError, TypeError) as exc:
            await self._dead_letter(record, attempt, exc)  # poison: retrying cannot help
            return
        span = (
            tracing.process_span(
                self.group.name, event.type, event.id, record.topic, record.headers, attempt
            )
            if self.group.wants(event)
            else contextlib.nullcontext()
        )
        try:
            with span:  # "process <type>", child of the record's traceparent (tracing on)
                await self.handle(event)
        except (KafkaError, asyncio.CancelledError):
            raise
        except Exception as exc:
            self.failed += 1
            self.metrics.failed.labels(self.group.name).inc()
            log.warning(
                "group %s: %s %s failed (attempt %d): %s",
                self.group.name,
                event.type,
                event.id,
                attempt + 1,
                exc,
                exc_info=True,
            )
            if attempt < len(self.retry.delays_s):
                await self._send_to_retry(record, attempt + 1, exc)
            else:
                await self._dead_letter(record, attempt, exc)

    def _headers(
        self, record: ConsumerRecord[Any, Any], exc: BaseException, attempt: int
    ) -> list[tuple[str, bytes]]:
        original = _header(record, "original-topic") or record.topic
        kept = ("event-type", "event-id", *tracing.TRACE_HEADERS)  # retries stay in the trace
        keep = [(k, v) for k, v in (record.headers or ()) if k in kept]
        return [
            *keep,
            ("original-topic", original.encode()),
            ("attempt", str(attempt).encode()),
            ("error", f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS].encode()),
            ("failed-at", datetime.now(UTC).isoformat().encode()),
        ]

    async def _send_to_retry(
        self, record: ConsumerRecord[Any, Any], level: int, exc: BaseException
    ) -> None:
        due = time.time() + self.retry.delays_s[level - 1]
        headers = [*self._headers(record, exc, level), ("due-at", f"{due:.3f}".encode())]
        producer = await self._producer_ready()
        await producer.send_and_wait(
            retry_topic(self.prefix, self.group.name, level),
            record.value,
            key=record.key,
            headers=headers,
        )
        self.metrics.retried.labels(self.group.name).inc()

    async def _dead_letter(
        self, record: ConsumerRecord[Any, Any], attempt: int, exc: BaseException
    ) -> None:
        producer = await self._producer_ready()
        await producer.send_and_wait(
            self.dead_letter_topic,
            record.value,
            key=record.key,
            headers=[*self._headers(record, exc, attempt), ("group", self.group.name.encode())],
        )
        self.metrics.dead_lettered.labels(self.group.name).inc()
        log.error("group %s: dead-lettered a record from %s", self.group.name, record.topic)

    async def _producer_ready(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.settings.kafka_bootstrap,
                client_id=f"planboard-{self.group.name}-retry",
                acks="all",
                enable_idempotence=True,
            )
            await producer.start()
            self._producer = producer
        return self._producer

    # --- loops -----------------------------------------------------------------------

    async def run(self) -> None:
        """Consume until ``stop()``; Kafka outages back off and reconnect."""
        backoff = 0.5
        try:
            await self._run_until_stopped(backoff)
        finally:
            await self._close_producer()

    async def _run_until_stopped(self, backoff: float) -> None:
        while not self._stopping.is_set():
            try:
                await ensure_topics(self.settings, [*self.retry_topics(), self.dead_letter_topic])
                loops = [self._consume_main()]
                loops += [
                    self._consume_retry(level) for level in range(1, len(self.retry.delays_s) + 1)
                ]
                await asyncio.gather(*loops)
                return
            except (KafkaError, OSError, TimeoutError) as exc:
                log.warning(
                    "group %s: Kafka unavailable (%s); retrying in %.1fs",
                    self.group.name,
                    type(exc).__name__,
                    backoff,
                )
                await self._close_producer()
                await self._sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    def _consumer(self, topics: list[str], group_id: str) -> AIOKafkaConsumer:
        longest = int(max(self.retry.delays_s, default=0) * 1000)
        return AIOKafkaConsumer(
            *topics,
            bootstrap_servers=self.settings.kafka_bootstrap,
            group_id=group_id,
            client_id=f"planboard-{self.group.name}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.batch_size,
            session_timeout_ms=10000,
            heartbeat_interval_ms=1000,
            max_poll_interval_ms=max(300_000, longest + 60_000),
        )

    async def _consume_main(self) -> None:
        consumer = self._consumer(self.topics(), self.group_id())
        await consumer.start()
        log.info("group %s consuming %s", self.group.name, self.topics())
        try:
            while not self._stopping.is_set():
                batches = await consumer.getmany(timeout_ms=500, max_records=self.batch_size)
                for records in batches.values():
                    for record in records:
                        await self._process(record, attempt=0)
                if batches:
                    await consumer.commit()
                await self._update_lag(consumer)
        finally:
            await consumer.stop()

    async def _consume_retry(self, level: int) -> None:
        topic = retry_topic(self.prefix, self.group.name, level)
        consumer = self._consumer([topic], self.group_id(f".retry{level}"))
        await consumer.start()
        try:
            while not self._stopping.is_set():
                batches = await consumer.getmany(timeout_ms=500, max_records=self.batch_size)
                for records in batches.values():
                    for record in records:
                        # Records of one retry topic come due in order: wait for each.
                        due = float(_header(record, "due-at") or 0)
                        await self._sleep(due - time.time())
                        if self._stopping.is_set():
                            return  # uncommitted: the next run picks it up
                        attempt = int(_header(record, "attempt") or level)
                        await self._process(record, attempt=attempt)
                if batches:
                    await consumer.commit()
        finally:
            await consumer.stop()

    async def _update_lag(self, consumer: AIOKafkaConsumer) -> None:
        """Lag = high watermark minus position, summed over this member's partitions."""
        lag = 0
        for partition in consumer.assignment():
            highwater = consumer.highwater(partition)
            if highwater is not None:
                lag += max(0, highwater - await consumer.position(partition))
        self.metrics.lag.labels(self.group.name).set(lag)

    async def _close_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(KafkaError):
                await producer.stop()

    async def _sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def stop(self) -> None:
        self._stopping.set()
