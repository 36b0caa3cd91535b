"""The consumer runner: one Kafka consumer group, at-least-once, idempotent effects.

Each poll (``getmany``: up to ``PLANBOARD_CONSUMER_BATCH_SIZE`` records from the
partitions this member holds) is handled as one batch:

1. records are decoded (one that is not an event goes straight to the dead letters),
   events the group does not want are dropped, and an event id seen twice in the poll
   is handled once;
2. for a group that keeps **processed markers** (``processed_events``,
   ``<group>:<event id>``), the markers of the whole poll are read with one ``find``;
   events this group handled before are skipped (a redelivery after a crash, a relay
   that published twice). A group whose effects deduplicate themselves (unique keys,
   re-reads of current state: ``ConsumerGroup(markers=False)``) skips steps 2 and 4,
   which on the event path were two of the poll's MongoDB writes per event and group;
3. the effects run. A group with a **batch handler** gets every fresh event of the poll
   in one call (``handle_batch``); should that fail, the runner falls back to the
   per-event handler for those events, so one bad event goes to the retry topic alone
   and the others still take effect. A group with a **per-event handler** has its events
   grouped by partition key (the Kafka key: a project id, a workspace id, …): the
   events of one key run one at a time in the order of the poll, different keys run
   concurrently (``PLANBOARD_CONSUMER_CONCURRENCY`` at most, or the group's own limit);
4. the markers (if kept) of the events whose effect succeeded are written with one
   unordered ``insert_many`` (a marker that exists already is fine);
5. the offsets are committed: only after every record of the poll has had its effect
   or has been handed to the retry/dead-letter topics.

A crash anywhere before step 5 redelivers the whole poll; events marked in step 4 are
then skipped and the others run again, so **every effect must be idempotent** (they
are: unique ids and keys, conditional updates, re-reads of the current state). Markers
only save a redelivered event's second run; a group without them runs it again, to no
effect.

Ordering guarantee: Kafka keeps one key's events in one partition of their family's
topic, in the order the relay published them (outbox order). A per-event handler
applies the *first attempt* of one key's events strictly in that order, one after the
other, across polls too (a poll finishes before the next starts). Events of other keys
run concurrently and never wait for a key that is slow or failing. A failing event goes
to ``<prefix>retry.<group>.<n>`` with a due time and the key's later events go on
without it, so a retried event is applied *after* newer events of its key; after the
last delay of the retry policy it lands in ``<prefix>dlq.<group>`` with the error
(``planboard replay --group NAME`` re-drives dead letters). Handlers are written to
tolerate that (they re-read current state or are commutative). There is no order
between events of different families (topics), even for one key. A batch handler gets
the poll's events in poll order and is responsible for what ordering it needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from planboard import tracing
from planboard.config import Settings
from planboard.events.envelope import Event
from planboard.events.topics import ensure_topics
from planboard.store.bulk import insert_new
from planboard.store.document import Document

log = logging.getLogger(__name__)

PROCESSED = "processed_events"
MAX_ERROR_CHARS = 2000
LAG_INTERVAL_S = 1.0
# Retried records are due seconds later anyway; a long fetch wait only makes the idle
# retry consumers poll the broker less often (a record that arrives is answered at once).
RETRY_FETCH_WAIT_MS = 5000
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

EventHandler = Callable[[Event], Awaitable[None]]
BatchHandler = Callable[[Sequence[Event]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ConsumerGroup:
    """What a worker group consumes and what it does with each event (or each batch).

    ``handle`` applies one event's effect. ``handle_batch``, when given, applies the
    effects of many events at once (the runner calls it with every fresh event of a poll
    and falls back to ``handle`` per event if it raises); both must be idempotent.
    ``concurrency`` caps the partition keys ``handle`` runs for at once (None: the
    runner's ``PLANBOARD_CONSUMER_CONCURRENCY``). ``markers=False`` says the effects
    deduplicate themselves, so the runner keeps no processed markers for the group (a
    redelivered event runs again, to no effect; nothing is counted as a duplicate).
    """

    name: str
    families: Sequence[str]
    handle: EventHandler
    event_types: frozenset[str] | None = None  # None: every event of the families
    handle_batch: BatchHandler | None = None
    concurrency: int | None = None
    markers: bool = True

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
        self.batch_size = Histogram(
            "planboard_consumer_batch_size",
            "Events the group wants per poll of its main topics (before skipping duplicates).",
            labels,
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "planboard_consumer_batch_seconds",
            "Time to handle one poll's batch: markers, effects, markers, commit.",
            labels,
            buckets=SECONDS_BUCKETS,
            registry=self.registry,
        )
        self.batch_fallbacks = Counter(
            "planboard_consumer_batch_fallbacks_total",
            "Batch handler failures handled again event by event.",
            labels,
            registry=self.registry,
        )


def _marker(group: str, event_id: str) -> str:
    return f"{group}:{event_id}"


async def already_processed(db: AsyncDatabase[Document], group: str, event_id: str) -> bool:
    return await db[PROCESSED].find_one({"_id": _marker(group, event_id)}, {"_id": 1}) is not None


async def processed_among(
    db: AsyncDatabase[Document], group: str, event_ids: Sequence[str]
) -> set[str]:
    """Which of ``event_ids`` this group has processed (one ``find``)."""
    if not event_ids:
        return set()
    prefix = _marker(group, "")
    cursor = db[PROCESSED].find(
        {"_id": {"$in": [prefix + event_id for event_id in event_ids]}}, {"_id": 1}
    )
    return {str(doc["_id"])[len(prefix) :] async for doc in cursor}


async def mark_processed(db: AsyncDatabase[Document], group: str, event_id: str) -> None:
    with contextlib.suppress(DuplicateKeyError):
        await db[PROCESSED].insert_one(
            {"_id": _marker(group, event_id), "group": group, "processed_at": datetime.now(UTC)}
        )


async def mark_processed_many(
    db: AsyncDatabase[Document], group: str, event_ids: Iterable[str]
) -> None:
    """Markers for many events in one unordered insert (existing ones are fine)."""
    now = datetime.now(UTC)
    docs = [
        {"_id": _marker(group, event_id), "group": group, "processed_at": now}
        for event_id in dict.fromkeys(event_ids)
    ]
    await insert_new(db[PROCESSED], docs)


async def all_or_none(coroutines: Sequence[Coroutine[Any, Any, None]]) -> None:
    """Run concurrently; on the first exception cancel the others and raise it."""
    if len(coroutines) <= 1:
        for coroutine in coroutines:
            await coroutine
        return
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in tasks:
        if not task.cancelled() and (error := task.exception()) is not None:
            raise error


def _header(record: ConsumerRecord[Any, Any], name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return bytes(value).decode(errors="replace")
    return None


Item = tuple[ConsumerRecord[Any, Any], Event]


class ConsumerRunner:
    def __init__(
        self,
        settings: Settings,
        db: AsyncDatabase[Document],
        group: ConsumerGroup,
        *,
        batch_size: int | None = None,
        retry: RetryPolicy | None = None,
        metrics: ConsumerMetrics | None = None,
        on_handled: Callable[[Sequence[str]], None] | None = None,
    ) -> None:
        """``on_handled`` is told the ids of the events whose effect has been applied (or
        that were skipped as already processed), after each poll and each retry."""
        self.settings = settings
        self.db = db
        self.group = group
        self.batch_size = batch_size or settings.consumer_batch_size
        self.concurrency = group.concurrency or settings.consumer_concurrency
        self.retry = retry or RetryPolicy()
        self.metrics = metrics or ConsumerMetrics()
        self.on_handled = on_handled
        self.processed = 0
        self.skipped = 0
        self.failed = 0
        self._producer: AIOKafkaProducer | None = None
        self._stopping = asyncio.Event()
        self._lag_checked = float("-inf")

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

    def _count_processed(self, count: int) -> None:
        if count:
            self.processed += count
            self.metrics.processed.labels(self.group.name).inc(count)

    def _count_skipped(self, count: int) -> None:
        if count:
            self.skipped += count
            self.metrics.skipped.labels(self.group.name).inc(count)

    def _handled(self, event_ids: Sequence[str]) -> None:
        if self.on_handled is not None and event_ids:
            self.on_handled(event_ids)

    async def handle(self, event: Event) -> None:
        """Apply the group's effect once per event id (one event: the retry path)."""
        if not self.group.wants(event):
            return
        markers = self.group.markers
        if markers and await already_processed(self.db, self.group.name, event.id):
            self._count_skipped(1)
            self._handled([event.id])
            return
        await self.group.handle(event)
        if markers:
            await mark_processed(self.db, self.group.name, event.id)
        self._count_processed(1)
        self._handled([event.id])

    async def handle_records(self, records: Sequence[ConsumerRecord[Any, Any]]) -> None:
        """One poll of the main topics, as a batch (the module docstring's steps 1-4)."""
        items: list[Item] = []
        seen: set[str] = set()
        for record in records:
            if record.value is None:
                continue
            try:
                event = Event.from_json(record.value)
            except (ValueError, KeyError, TypeError) as exc:
                await self._dead_letter(record, 0, exc)  # poison: retrying cannot help
                continue
            if not self.group.wants(event):
                continue
            if event.id in seen:
                self._count_skipped(1)  # published twice, both in this poll
                continue
            seen.add(event.id)
            items.append((record, event))
        if not items:
            return
        self.metrics.batch_size.labels(self.group.name).observe(len(items))
        fresh = items
        if self.group.markers:
            done = await processed_among(self.db, self.group.name, [e.id for _, e in items])
            fresh = [item for item in items if item[1].id not in done]
            self._count_skipped(len(items) - len(fresh))
            self._handled(sorted(done))
        if not fresh:
            return
        if self.group.handle_batch is not None:
            succeeded = await self._run_batch(fresh)
        else:
            succeeded = await self._run_by_key(fresh)
        if self.group.markers:
            await mark_processed_many(self.db, self.group.name, succeeded)
        self._count_processed(len(succeeded))
        self._handled(succeeded)

    async def _run_batch(self, items: list[Item]) -> list[str]:
        """The group's batch handler over ``items``; event by event should it fail."""
        assert self.group.handle_batch is not None
        try:
            with contextlib.ExitStack() as spans:  # a "process" span per event (tracing on)
                for record, event in items:
                    spans.enter_context(
                        tracing.process_span(
                            self.group.name, event.type, event.id, record.topic, record.headers
                        )
                    )
                await self.group.handle_batch([event for _, event in items])
        except (KafkaError, asyncio.CancelledError):
            raise
        except Exception as exc:
            self.metrics.batch_fallbacks.labels(self.group.name).inc()
            log.warning(
                "group %s: a batch of %d events failed (%s: %s); handling them one by one",
                self.group.name,
                len(items),
                type(exc).__name__,
                exc,
            )
            return await self._run_by_key(items)
        return [event.id for _, event in items]

    async def _run_by_key(self, items: list[Item]) -> list[str]:
        """Per-event handling: one key's events in order, different keys concurrently."""
        lanes: dict[str, list[Item]] = {}
        for item in items:
            lanes.setdefault(item[1].key, []).append(item)
        succeeded: list[str] = []
        slots = asyncio.Semaphore(self.concurrency)

        async def lane(queue: list[Item]) -> None:
            async with slots:
                for record, event in queue:
                    if await self._attempt(record, event, 0, self.group.handle):
                        succeeded.append(event.id)

        await all_or_none([lane(queue) for queue in lanes.values()])
        return succeeded

    async def _attempt(
        self,
        record: ConsumerRecord[Any, Any],
        event: Event,
        attempt: int,
        effect: EventHandler,
    ) -> bool:
        """Run ``effect``; on failure hand the record to the next retry level or the DLQ."""
        try:
            with tracing.process_span(  # "process <type>", child of the record's traceparent
                self.group.name, event.type, event.id, record.topic, record.headers, attempt
            ):
                await effect(event)
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
            return False
        return True

    async def _process(self, record: ConsumerRecord[Any, Any], attempt: int) -> None:
        """Handle one record of a retry topic (markers checked and written one by one)."""
        if record.value is None:
            return
        try:
            event = Event.from_json(record.value)
        except (ValueError, KeyError, TypeError) as exc:
            await self._dead_letter(record, attempt, exc)  # poison: retrying cannot help
            return
        if self.group.wants(event):
            await self._attempt(record, event, attempt, self.handle)

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

    def _consumer(
        self, topics: list[str], group_id: str, *, fetch_wait_ms: int = 500
    ) -> AIOKafkaConsumer:
        longest = int(max(self.retry.delays_s, default=0) * 1000)
        return AIOKafkaConsumer(
            *topics,
            bootstrap_servers=self.settings.kafka_bootstrap,
            group_id=group_id,
            client_id=f"planboard-{self.group.name}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.batch_size,
            fetch_max_wait_ms=fetch_wait_ms,
            session_timeout_ms=10000,
            heartbeat_interval_ms=1000,
            max_poll_interval_ms=max(300_000, longest + 60_000),
        )

    async def _consume_main(self) -> None:
        # The broker answers a waiting fetch as soon as a record arrives, so the fetch wait
        # bounds only idle polling (measured: docs/benchmarks.md, "Events and webhooks").
        consumer = self._consumer(
            self.topics(), self.group_id(), fetch_wait_ms=self.settings.consumer_fetch_wait_ms
        )
        await consumer.start()
        log.info("group %s consuming %s", self.group.name, self.topics())
        try:
            while not self._stopping.is_set():
                batches = await consumer.getmany(timeout_ms=500, max_records=self.batch_size)
                records = [record for records in batches.values() for record in records]
                if records:
                    started = time.perf_counter()
                    await self.handle_records(records)
                    await consumer.commit()
                    self.metrics.batch_seconds.labels(self.group.name).observe(
                        time.perf_counter() - started
                    )
                await self._update_lag(consumer)
        finally:
            await consumer.stop()

    async def _consume_retry(self, level: int) -> None:
        topic = retry_topic(self.prefix, self.group.name, level)
        consumer = self._consumer(
            [topic], self.group_id(f".retry{level}"), fetch_wait_ms=RETRY_FETCH_WAIT_MS
        )
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
        now = time.monotonic()
        if now - self._lag_checked < LAG_INTERVAL_S:
            return
        self._lag_checked = now
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
