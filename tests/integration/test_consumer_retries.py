"""Retry topics, dead letters and replay on the real broker."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer

from planboard.events import outbox
from planboard.events.consumer import (
    ConsumerGroup,
    ConsumerRunner,
    RetryPolicy,
    dead_letter_topic,
)
from planboard.events.envelope import Event
from planboard.events.relay import Relay
from planboard.store import migrations

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(scope="module")
async def retry_env(mongo_client, settings_with_module):
    """Own database and topic prefix: nothing else consumes or publishes here."""
    settings = settings_with_module
    database = mongo_client[settings.mongodb_db]
    await migrations.migrate(database)
    relay = Relay(settings, database, idle_interval_s=0.05)
    task = asyncio.create_task(relay.run())
    yield settings, database
    relay.stop()
    await task
    await mongo_client.drop_database(database.name)


@pytest.fixture(scope="module")
def settings_with_module(settings):

    tag = uuid.uuid4().hex[:8]
    return settings.replace(
        mongodb_db=f"{settings.mongodb_db}_retry", kafka_topic_prefix=f"pbretry-{tag}."
    )


async def run_until(runner: ConsumerRunner, condition, timeout: float = 60.0) -> None:
    task = asyncio.create_task(runner.run())
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.1)
    finally:
        runner.stop()
        await task


async def test_a_flaky_handler_succeeds_on_retry_once(retry_env) -> None:
    settings, db = retry_env
    calls: list[str] = []
    event = Event(type="task.created", key="p1", workspace_id="w", data={})

    async def flaky(seen: Event) -> None:
        if seen.id != event.id:
            return  # other tests' events share the topic
        calls.append(seen.id)
        if len(calls) < 3:
            raise RuntimeError("target temporarily down")

    group = ConsumerGroup(name=f"flaky-{uuid.uuid4().hex[:6]}", families=("task",), handle=flaky)
    runner = ConsumerRunner(settings, db, group, retry=RetryPolicy((0.2, 0.2, 0.2)))
    await outbox.record(db, [event])
    await run_until(runner, lambda: bool(calls) and calls[-1:] == [event.id] and len(calls) == 3)
    assert calls == [event.id] * 3  # two failures, then the effect, exactly once
    assert runner.metrics.retried.labels(group.name)._value.get() == 2
    assert runner.metrics.dead_lettered.labels(group.name)._value.get() == 0


async def test_a_failing_event_is_dead_lettered_with_its_error_and_replayed(retry_env) -> None:
    settings, db = retry_env
    healthy = False
    effects: list[str] = []
    event = Event(type="task.updated", key="p2", workspace_id="w", data={"n": 1})

    async def broken(seen: Event) -> None:
        if seen.id != event.id:
            return  # other tests' events share the topic
        if not healthy:
            raise ValueError("bad data in event")
        effects.append(seen.id)

    name = f"broken-{uuid.uuid4().hex[:6]}"
    group = ConsumerGroup(name=name, families=("task",), handle=broken)
    runner = ConsumerRunner(settings, db, group, retry=RetryPolicy((0.1, 0.1)))
    await outbox.record(db, [event])
    await run_until(runner, lambda: runner.metrics.dead_lettered.labels(name)._value.get() == 1)
    assert runner.failed == 3  # first try + two retries

    consumer = AIOKafkaConsumer(
        dead_letter_topic(settings.kafka_topic_prefix, name),
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), 20)
    finally:
        await consumer.stop()
    headers = {k: v.decode() for k, v in record.headers}
    assert Event.from_json(record.value).id == event.id
    assert headers["error"] == "ValueError: bad data in event"
    assert headers["original-topic"] == f"{settings.kafka_topic_prefix}task"
    assert headers["group"] == name

    # the bug is fixed: replay re-drives the dead letter through the group
    env = {
        "PLANBOARD_MONGODB_URI": settings.mongodb_uri,
        "PLANBOARD_MONGODB_DB": settings.mongodb_db,
        "PLANBOARD_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "PLANBOARD_KAFKA_TOPIC_PREFIX": settings.kafka_topic_prefix,
        "PLANBOARD_REDIS_URL": settings.redis_url,
        "PATH": "/usr/bin:/bin",
    }
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "planboard", "replay", "--group", name, "--timeout", "10"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "re-drove 1" in result.stdout
    healthy = True
    runner = ConsumerRunner(settings, db, group, retry=RetryPolicy((0.1, 0.1)))
    await run_until(runner, lambda: effects == [event.id])
    assert effects == [event.id]


async def test_poison_records_go_straight_to_the_dead_letters(retry_env) -> None:
    settings, db = retry_env
    from aiokafka import AIOKafkaProducer

    name = f"poison-{uuid.uuid4().hex[:6]}"
    group = ConsumerGroup(name=name, families=("comment",), handle=lambda e: asyncio.sleep(0))
    runner = ConsumerRunner(settings, db, group, retry=RetryPolicy((0.1,)))
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(f"{settings.kafka_topic_prefix}comment", b"{not json")
    finally:
        await producer.stop()
    await run_until(runner, lambda: runner.metrics.dead_lettered.labels(name)._value.get() == 1)
    assert runner.failed == 0
