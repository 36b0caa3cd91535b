"""The consumer runner's batches on the real broker: duplicates in a poll, a half-processed
batch redelivered, a failing event among good ones, per-key order under concurrency."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer

from planboard.events.consumer import (
    PROCESSED,
    ConsumerGroup,
    ConsumerRunner,
    RetryPolicy,
    mark_processed_many,
)
from planboard.events.envelope import Event
from planboard.events.topics import ensure_topics
from planboard.store import migrations
from planboard.store.bulk import insert_new

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(scope="module")
async def batch_env(mongo_client, settings):
    """Own database and topic prefix per module: nothing else publishes or consumes here."""
    tagged = settings.replace(
        mongodb_db=f"{settings.mongodb_db}_batches",
        kafka_topic_prefix=f"pbbatch-{uuid.uuid4().hex[:6]}.",
    )
    db = mongo_client[tagged.mongodb_db]
    await migrations.migrate(db)
    await ensure_topics(tagged)
    yield tagged, db
    await mongo_client.drop_database(db.name)


async def publish(settings, events: Sequence[Event], family: str = "task") -> None:
    """Events straight onto their topic, keyed like the relay does, in this order."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=20)
    await producer.start()
    try:
        topic = f"{settings.kafka_topic_prefix}{family}"
        sent = [await producer.send(topic, e.to_json(), key=e.key.encode()) for e in events]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def run_until(runner: ConsumerRunner, condition: Callable[[], bool], timeout=60.0) -> None:
    task = asyncio.create_task(runner.run())
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.05)
    finally:
        runner.stop()
        await task


def events_for(key: str, count: int, **data: object) -> list[Event]:
    return [
        Event(type="task.updated", key=key, workspace_id="w", data={"n": n, **data})
        for n in range(count)
    ]


def recording_group(db, key: str, name: str, *, markers: bool = True):
    """A group whose effect stores one document per event of ``key`` (an existing one is
    fine); returns it, the ids of the events handed to it, and the effects' collection."""
    effects = db[f"effects_{name.replace('-', '_')}"]
    handed: list[str] = []

    async def apply(seen: Sequence[Event]) -> None:
        mine = [e for e in seen if e.key == key]
        handed.extend(e.id for e in mine)
        await insert_new(effects, [{"_id": e.id} for e in mine])  # idempotent effect

    group = ConsumerGroup(
        name=name,
        families=("task",),
        handle=lambda e: apply([e]),
        handle_batch=apply,
        markers=markers,
    )
    return group, handed, effects


def samples(runner: ConsumerRunner, name: str) -> float:
    value = runner.metrics.registry.get_sample_value(name, {"group": runner.group.name})
    return value or 0.0


async def test_an_event_twice_in_one_poll_takes_effect_once(batch_env) -> None:
    settings, db = batch_env
    key = f"dup-{uuid.uuid4().hex[:8]}"
    events = events_for(key, 10)
    # the relay published events[3] twice (it died after publishing, before marking)
    await publish(settings, [*events[:4], events[3], *events[4:]])
    batches: list[list[str]] = []

    async def batch(seen: Sequence[Event]) -> None:
        batches.append([e.id for e in seen if e.key == key])

    group = ConsumerGroup(
        name=f"dup-{uuid.uuid4().hex[:6]}",
        families=("task",),
        handle=lambda e: asyncio.sleep(0),
        handle_batch=batch,
    )
    runner = ConsumerRunner(settings, db, group)
    await run_until(runner, lambda: sum(len(b) for b in batches) >= 10)
    handled = [event_id for b in batches for event_id in b]
    assert Counter(handled) == Counter(e.id for e in events)  # each exactly once
    assert runner.skipped >= 1
    ours = [f"{group.name}:{e.id}" for e in events]
    assert await db[PROCESSED].count_documents({"_id": {"$in": ours}}) == 10
    assert samples(runner, "planboard_consumer_batch_size_count") >= 1


async def test_a_half_processed_batch_redelivered_has_each_effect_once(batch_env) -> None:
    settings, db = batch_env
    key = f"half-{uuid.uuid4().hex[:8]}"
    events = events_for(key, 20)
    name = f"half-{uuid.uuid4().hex[:6]}"
    group, handed, effects = recording_group(db, key, name)
    # A crashed run: events 0-9 had their effects and markers; 10-14 their effects only
    # (it died between the effects and the markers); 15-19 nothing. Offsets uncommitted.
    await effects.insert_many([{"_id": e.id} for e in events[:15]])
    await mark_processed_many(db, name, [e.id for e in events[:10]])
    await publish(settings, events)
    runner = ConsumerRunner(settings, db, group)
    await run_until(runner, lambda: len(handed) >= 10)
    assert sorted(handed) == sorted(e.id for e in events[10:])  # marked ones skipped
    assert runner.skipped >= 10
    stored = [d["_id"] async for d in effects.find({})]
    assert sorted(stored) == sorted(e.id for e in events)  # every effect, once
    ours = [f"{name}:{e.id}" for e in events]
    assert await db[PROCESSED].count_documents({"_id": {"$in": ours}}) == 20


async def test_a_group_without_markers_runs_a_redelivered_batch_again_to_no_effect(
    batch_env,
) -> None:
    settings, db = batch_env
    key = f"nomark-{uuid.uuid4().hex[:8]}"
    events = events_for(key, 20)
    name = f"nomark-{uuid.uuid4().hex[:6]}"
    group, handed, effects = recording_group(db, key, name, markers=False)
    # A crashed run applied the effects of 0-14; Kafka hands the whole poll over again.
    await effects.insert_many([{"_id": e.id} for e in events[:15]])
    await publish(settings, events)
    reported: list[str] = []
    runner = ConsumerRunner(settings, db, group, on_handled=reported.extend)
    await run_until(runner, lambda: len(handed) >= 20)
    assert sorted(handed) == sorted(e.id for e in events)  # every event runs: no markers
    assert {e.id for e in events} <= set(reported)  # the observer hears of each
    stored = [d["_id"] async for d in effects.find({})]
    assert sorted(stored) == sorted(e.id for e in events)  # and each effect exists once
    assert await db[PROCESSED].count_documents({"group": name}) == 0


async def test_a_failing_event_among_good_ones_is_retried_alone(batch_env) -> None:
    settings, db = batch_env
    key = f"fail-{uuid.uuid4().hex[:8]}"
    events = events_for(key, 12)
    bad = events[5]
    effects: Counter[str] = Counter()
    tries: Counter[str] = Counter()

    async def one(event: Event) -> None:
        if event.key != key:
            return
        tries[event.id] += 1
        if event.id == bad.id and tries[event.id] == 1:
            raise ValueError("the receiving system said no, once")
        effects[event.id] += 1

    async def batch(seen: Sequence[Event]) -> None:
        if any(e.id == bad.id for e in seen):
            raise ValueError("one event of the batch is bad")
        for event in seen:
            await one(event)

    group = ConsumerGroup(
        name=f"fail-{uuid.uuid4().hex[:6]}", families=("task",), handle=one, handle_batch=batch
    )
    runner = ConsumerRunner(settings, db, group, retry=RetryPolicy((0.2,)))
    await publish(settings, events)
    await run_until(runner, lambda: len(effects) == 12)
    await asyncio.sleep(0.5)  # anything doubled would show now
    assert set(effects) == {e.id for e in events} and max(effects.values()) == 1
    assert tries[bad.id] == 2  # the first attempt, then its retry
    assert samples(runner, "planboard_consumer_batch_fallbacks_total") >= 1
    assert samples(runner, "planboard_events_retried_total") == 1
    assert samples(runner, "planboard_events_dead_lettered_total") == 0


async def test_per_key_order_with_keys_running_concurrently(batch_env) -> None:
    settings, db = batch_env
    tag = uuid.uuid4().hex[:6]
    keys = [f"order-{tag}-{k}" for k in range(6)]
    slow = keys[0]
    per_key = {key: events_for(key, 8) for key in keys}
    interleaved = [per_key[key][n] for n in range(8) for key in keys]
    failing = per_key[keys[1]][2]  # fails once: its key goes on without it
    log: list[tuple[str, int, float, float]] = []
    running = 0
    most = 0
    tries: Counter[str] = Counter()

    async def handle(event: Event) -> None:
        nonlocal running, most
        if event.key not in per_key:
            return
        tries[event.id] += 1
        if event.id == failing.id and tries[event.id] == 1:
            raise RuntimeError("transient")
        running += 1
        most = max(most, running)
        started = time.monotonic()
        await asyncio.sleep(0.3 if event.key == slow else random.uniform(0.0, 0.03))
        running -= 1
        log.append((event.key, int(event.data["n"]), started, time.monotonic()))

    group = ConsumerGroup(name=f"order-{tag}", families=("task",), handle=handle)
    runner = ConsumerRunner(settings, db, group, retry=RetryPolicy((1.0,)))
    await publish(settings, interleaved)
    await run_until(runner, lambda: len(log) == len(interleaved), timeout=90)
    assert most > 1  # different keys overlapped
    for key in keys:
        mine = [(n, start, end) for k, n, start, end in log if k == key]
        expected = list(range(8))
        if key == keys[1]:
            expected = [0, 1, 3, 4, 5, 6, 7, 2]  # the retried event after the newer ones
        assert [n for n, _, _ in mine] == expected, key
        for (_, _, end), (_, start, _) in itertools.pairwise(mine):
            assert start >= end  # one at a time within a key
    slow_done = max(end for k, _, _, end in log if k == slow)
    others_done = max(end for k, _, _, end in log if k not in (slow, keys[1]))
    assert others_done < slow_done  # the slow key held no one else back
