"""Outbox → relay → Kafka → consumer group, on the real broker."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer

from planboard.events import outbox
from planboard.events.consumer import ConsumerGroup, ConsumerRunner
from planboard.events.envelope import Event
from planboard.events.relay import Relay
from planboard.services.cache import project_keys
from planboard.store import migrations
from planboard.workers.rollups import rollups_group

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(scope="module")
async def events_db(mongo_client, settings):
    """A database of its own: the session's relay (on the main database) must not help."""
    database = mongo_client[f"{settings.mongodb_db}_events"]
    await migrations.migrate(database)
    yield database
    await mongo_client.drop_database(database.name)


def task_events(project_id: str, count: int) -> list[Event]:
    return [
        Event(type="task.updated", key=project_id, workspace_id="w1", data={"n": n})
        for n in range(count)
    ]


async def drain(relay: Relay, events_db, timeout: float = 30.0) -> None:
    task = asyncio.create_task(relay.run())
    try:
        async with asyncio.timeout(timeout):
            while await outbox.backlog(events_db):
                await asyncio.sleep(0.1)
    finally:
        relay.stop()
        await task


async def read_topic(settings, family: str, key: str, expected: int, timeout: float = 30.0) -> list:
    """Records of ``key`` on the family's topic: wait for ``expected``, then 1 s more for extras."""
    consumer = AIOKafkaConsumer(
        f"{settings.kafka_topic_prefix}{family}",
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records = []
    try:
        async with asyncio.timeout(timeout):
            settle_until = None
            loop = asyncio.get_running_loop()
            while settle_until is None or loop.time() < settle_until:
                batch = await consumer.getmany(timeout_ms=200)
                for items in batch.values():
                    records.extend(r for r in items if r.key == key.encode())
                if settle_until is None and len(records) >= expected:
                    settle_until = loop.time() + 1.0
    finally:
        await consumer.stop()
    return records


async def test_relay_publishes_in_order_per_project_and_deletes(settings, events_db) -> None:
    project_a, project_b = f"pa-{uuid.uuid4().hex}", f"pb-{uuid.uuid4().hex}"
    events = []
    for a, b in zip(task_events(project_a, 20), task_events(project_b, 20), strict=True):
        events += [a, b]
    await outbox.record(events_db, events)
    await drain(Relay(settings, events_db), events_db)
    # published events leave the outbox (Kafka keeps them)
    assert await events_db.outbox.count_documents({"_id": {"$in": [e.id for e in events]}}) == 0

    ours = await read_topic(settings, "task", project_a, 20)
    ours += await read_topic(settings, "task", project_b, 20)
    assert len(ours) == 40
    for project in (project_a, project_b):
        in_topic = [Event.from_json(r.value) for r in ours if r.key == project.encode()]
        assert [e.data["n"] for e in in_topic] == list(range(20))  # one partition, in order
        assert len({r.partition for r in ours if r.key == project.encode()}) == 1
    headers = dict(ours[0].headers)
    assert headers["event-type"] == b"task.updated"


async def test_a_relay_told_to_keep_published_events_marks_them(settings, events_db) -> None:
    events = task_events(f"keep-{uuid.uuid4().hex}", 5)
    await outbox.record(events_db, events)
    await drain(Relay(settings.replace(outbox_keep_published=True), events_db), events_db)
    kept = [d async for d in events_db.outbox.find({"_id": {"$in": [e.id for e in events]}})]
    assert len(kept) == 5
    assert all(d["published"] is True and d["published_at"] is not None for d in kept)


async def test_two_relays_never_publish_an_event_twice(settings, events_db) -> None:
    project = f"race-{uuid.uuid4().hex}"
    events = task_events(project, 300)
    await outbox.record(events_db, events)
    relays = [Relay(settings, events_db, batch_size=25) for _ in range(2)]
    runs = [asyncio.create_task(r.run()) for r in relays]
    try:
        async with asyncio.timeout(60):
            while await outbox.backlog(events_db):
                await asyncio.sleep(0.1)
    finally:
        for relay in relays:
            relay.stop()
        await asyncio.gather(*runs)
    assert sum(r.published for r in relays) == 300  # only the lease holder publishes
    records = await read_topic(settings, "task", project, 300)
    ids = Counter(Event.from_json(r.value).id for r in records)
    assert len(ids) == 300
    assert max(ids.values()) == 1


async def test_relay_keeps_events_while_kafka_is_unreachable(settings_with, events_db) -> None:
    from planboard_devstack.paths import free_port

    dead = settings_with(kafka_bootstrap=f"127.0.0.1:{free_port()}")
    event = Event(type="task.created", key=f"down-{uuid.uuid4().hex}", workspace_id="w", data={})
    await outbox.record(events_db, [event])
    relay = Relay(dead, events_db)
    task = asyncio.create_task(relay.run())
    await asyncio.sleep(2)
    relay.stop()
    await task
    stored = await events_db.outbox.find_one({"_id": event.id})
    assert stored is not None and stored["published"] is False  # nothing lost, nothing marked


async def test_rollups_worker_invalidates_cached_progress(settings, events_db, redis) -> None:
    project = f"roll-{uuid.uuid4().hex}"
    for key in project_keys(project):
        await redis.set(key, "stale")
    await outbox.record(
        events_db, [Event(type="task.updated", key=project, workspace_id="w", data={})]
    )
    await drain(Relay(settings, events_db), events_db)
    runner = ConsumerRunner(settings, events_db, rollups_group(redis))
    run = asyncio.create_task(runner.run())
    try:
        async with asyncio.timeout(60):
            while await redis.exists(*project_keys(project)):
                await asyncio.sleep(0.1)
    finally:
        runner.stop()
        await run
    assert runner.processed >= 1


async def test_redelivered_event_has_no_second_effect(settings, events_db) -> None:
    effects: list[str] = []

    async def handle(event: Event) -> None:
        effects.append(event.id)

    group = ConsumerGroup(name=f"idem-{uuid.uuid4().hex[:8]}", families=("task",), handle=handle)
    runner = ConsumerRunner(settings, events_db, group)
    event = Event(type="task.created", key="p", workspace_id="w", data={})
    await runner.handle(event)
    await runner.handle(event)  # as after a crash before the offset commit
    assert effects == [event.id]
    assert runner.skipped == 1


async def test_consumer_stops_gracefully(settings, events_db) -> None:
    group = ConsumerGroup(
        name=f"stop-{uuid.uuid4().hex[:8]}", families=("task",), handle=lambda e: asyncio.sleep(0)
    )
    runner = ConsumerRunner(settings, events_db, group)
    run = asyncio.create_task(runner.run())
    await asyncio.sleep(3)
    runner.stop()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(15):
            await run
    assert run.done() and run.exception() is None


async def test_a_malformed_outbox_document_is_quarantined_not_blocking(settings, events_db) -> None:
    project = f"q-{uuid.uuid4().hex}"
    await events_db.outbox.insert_one(
        {"_id": f"bad-{uuid.uuid4().hex}", "published": False, "occurred_at": None}
    )
    good = task_events(project, 3)
    await outbox.record(events_db, good)
    await drain(Relay(settings, events_db), events_db)
    records = await read_topic(settings, "task", project, 3)
    assert len(records) == 3
    bad = await events_db.outbox.find_one({"quarantined": {"$exists": True}})
    assert bad is not None and "KeyError" in bad["quarantined"]


async def test_an_idle_relay_publishes_a_new_event_within_its_longest_poll(
    settings, events_db
) -> None:
    relay = Relay(settings, events_db, idle_interval_s=0.1)
    task = asyncio.create_task(relay.run())
    try:
        await asyncio.sleep(1.5)  # idle long enough to reach its longest wait
        event = Event(
            type="task.created", key=f"idle-{uuid.uuid4().hex}", workspace_id="w", data={}
        )
        loop = asyncio.get_running_loop()
        recorded = loop.time()
        await outbox.record(events_db, [event])
        async with asyncio.timeout(30):
            while await events_db.outbox.find_one({"_id": event.id}) is not None:
                await asyncio.sleep(0.01)
        waited = loop.time() - recorded  # recorded → published and deleted
    finally:
        relay.stop()
        await task
    # one poll wait (≤ 0.1 s) plus the send and the delete; the bound catches a sleeping relay
    assert waited < 1.0, waited
    records = await read_topic(settings, "task", event.key, 1)
    assert [Event.from_json(r.value).id for r in records] == [event.id]


async def test_a_burst_is_published_in_full_batches_in_order(settings, events_db) -> None:
    project = f"burst-{uuid.uuid4().hex}"
    events = task_events(project, 1200)
    await outbox.record(events_db, events)
    relay = Relay(settings, events_db, batch_size=500)
    await drain(relay, events_db, timeout=120)
    assert relay.published >= 1200
    records = await read_topic(settings, "task", project, 1200, timeout=60)
    assert [Event.from_json(r.value).data["n"] for r in records] == list(range(1200))
