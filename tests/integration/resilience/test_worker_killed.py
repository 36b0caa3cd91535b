"""A worker process killed mid-batch: the next one finishes the work, no loss, no duplicates."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from planboard.events import outbox
from planboard.events.envelope import Event
from planboard.events.relay import Relay
from planboard.store import migrations
from planboard.store.ids import new_id, utcnow

pytestmark = pytest.mark.integration

EVENTS = 300


def start_worker(settings) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(
        {
            "PLANBOARD_MONGODB_URI": settings.mongodb_uri,
            "PLANBOARD_MONGODB_DB": settings.mongodb_db,
            "PLANBOARD_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "PLANBOARD_KAFKA_TOPIC_PREFIX": settings.kafka_topic_prefix,
            "PLANBOARD_REDIS_URL": settings.redis_url,
            "PLANBOARD_SMTP_HOST": settings.smtp_host,
            "PLANBOARD_SMTP_PORT": str(settings.smtp_port),
            "PLANBOARD_ENV": "test",
        }
    )
    return subprocess.Popen(
        [sys.executable, "-m", "planboard", "worker", "--group", "notifications"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def test_sigkill_mid_batch_loses_nothing_and_doubles_nothing(mongo_client, settings) -> None:
    settings = settings.replace(
        mongodb_db=f"{settings.mongodb_db}_kill",
        kafka_topic_prefix=f"pbkill-{uuid.uuid4().hex[:6]}.",
    )
    db = mongo_client[settings.mongodb_db]
    await migrations.migrate(db)
    actor, assignee = new_id(), new_id()
    await db.users.insert_many(
        [
            {"_id": actor, "email": f"{actor}@example.test", "name": "Actor"},
            {"_id": assignee, "email": f"{assignee}@example.test", "name": "Assignee"},
        ]
    )
    task = {
        "_id": new_id(),
        "key": "KILL-1",
        "title": "Survive",
        "assignee_id": assignee,
        "workspace_id": "w",
        "project_id": "p",
        "created_at": utcnow(),
    }
    await db.tasks.insert_one(task)
    events = [
        Event(
            type="task.updated",
            key="p",
            workspace_id="w",
            actor_id=actor,
            data={"task_id": task["_id"], "changes": {"status": ["todo", "in_progress"]}},
        )
        for _ in range(EVENTS)
    ]
    await outbox.record(db, events)
    relay = Relay(settings, db, idle_interval_s=0.05)
    relay_task = asyncio.create_task(relay.run())
    first = start_worker(settings)
    try:
        async with asyncio.timeout(120):
            while await db.notifications.count_documents({"user_id": assignee}) < 20:
                assert first.poll() is None, "the first worker died on its own"
                await asyncio.sleep(0.05)
        first.send_signal(signal.SIGKILL)  # mid-batch: offsets of this batch not committed
        first.wait(timeout=10)
        done_at_kill = await db.notifications.count_documents({"user_id": assignee})
        assert done_at_kill < EVENTS, "killed too late to prove anything"
        second_at = time.monotonic()
        second = start_worker(settings)
        try:
            async with asyncio.timeout(180):
                while await db.notifications.count_documents({"user_id": assignee}) < EVENTS:
                    assert second.poll() is None
                    await asyncio.sleep(0.2)
            finished = time.monotonic() - second_at
            await asyncio.sleep(2)  # redelivered records have been handled by now
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(timeout=30) == 0  # graceful stop commits and exits cleanly
    finally:
        if first.poll() is None:
            first.kill()
        relay.stop()
        await relay_task
    notified = [d["_id"] async for d in db.notifications.find({"user_id": assignee}, {"_id": 1})]
    assert len(notified) == EVENTS  # every event notified...
    assert len(set(notified)) == EVENTS  # ...once
    assert sorted(i.split(":")[0] for i in notified) == sorted(e.id for e in events)
    await mongo_client.drop_database(db.name)
    print(
        f"\nworker SIGKILLed mid-batch: {done_at_kill} of {EVENTS} notifications done at the "
        f"kill; a new worker finished the rest {finished:.1f} s after it was started; "
        f"{len(notified)} notifications, {len(set(notified))} distinct"
    )
