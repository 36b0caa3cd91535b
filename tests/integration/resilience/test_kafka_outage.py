"""Kafka goes away while the API keeps writing: nothing fails, nothing is lost or doubled."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter

import pytest
import pytest_asyncio

from planboard.events import outbox
from planboard.events.consumer import ConsumerGroup, ConsumerRunner, RetryPolicy
from planboard.events.envelope import Event
from planboard.events.relay import Relay
from planboard.store import migrations
from planboard_devstack.kafka import KafkaServer
from planboard_devstack.paths import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def own_kafka(tmp_path_factory):
    """A broker of this module's own, so stopping it disturbs no other test."""
    server = KafkaServer(tmp_path_factory.mktemp("kafka-outage"), free_port())
    server.start()
    yield server
    server.stop()


@pytest_asyncio.fixture(scope="module")
async def outage_env(own_kafka, mongo_client, settings):
    tagged = settings.replace(
        kafka_bootstrap=own_kafka.url,
        mongodb_db=f"{settings.mongodb_db}_outage",
        kafka_topic_prefix=f"pbout-{uuid.uuid4().hex[:6]}.",
        dependency_timeout_s=1.0,
    )
    db = mongo_client[tagged.mongodb_db]
    await migrations.migrate(db)
    yield tagged, db
    await mongo_client.drop_database(db.name)


async def test_writes_survive_a_kafka_outage_and_arrive_exactly_once(own_kafka, outage_env) -> None:
    settings, db = outage_env
    project = f"p-{uuid.uuid4().hex[:8]}"
    effects: Counter[str] = Counter()

    async def count(event: Event) -> None:
        if event.key == project:
            effects[event.id] += 1

    relay = Relay(settings, db, idle_interval_s=0.05, batch_size=20)
    runner = ConsumerRunner(
        settings,
        db,
        ConsumerGroup(name="outage", families=("task",), handle=count),
        retry=RetryPolicy((0.2,)),
    )
    tasks = [asyncio.create_task(relay.run()), asyncio.create_task(runner.run())]
    written: list[str] = []
    try:

        async def write(n: int) -> None:
            for _ in range(n):
                event = Event(type="task.updated", key=project, workspace_id="w", data={})
                await outbox.record(db, [event])  # the API's write path: MongoDB only
                written.append(event.id)
                await asyncio.sleep(0.01)

        await write(50)
        await asyncio.to_thread(own_kafka.stop)  # Kafka goes down mid-stream
        down_at = time.monotonic()
        await write(100)  # writes keep succeeding
        backlog = await outbox.backlog(db)
        assert backlog > 0  # held back, not lost
        restart_at = time.monotonic()
        await asyncio.to_thread(own_kafka.start)  # same port, same data
        up_at = time.monotonic()
        await write(50)
        async with asyncio.timeout(120):
            while len(effects) < len(written):
                await asyncio.sleep(0.2)
        caught_up = time.monotonic()
        await asyncio.sleep(1.0)  # anything doubled would show up now
    finally:
        relay.stop()
        runner.stop()
        await asyncio.gather(*tasks)
    assert set(effects) == set(written)
    assert max(effects.values()) == 1
    assert await outbox.backlog(db) == 0
    print(
        f"\nkafka outage: {len(written)} events written, 100 of them while Kafka was down "
        f"({restart_at - down_at:.1f} s; outbox backlog {backlog}), none failed; broker start "
        f"{up_at - restart_at:.1f} s; every event handled {caught_up - restart_at:.1f} s after "
        f"the start command; each exactly once"
    )
