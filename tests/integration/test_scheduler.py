"""The scheduler fires each job once per tick across replicas; cleanup forgets old data."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from planboard.services.maintenance import cleanup
from planboard.workers.scheduler import ScheduledJob, Scheduler, tick_start

pytestmark = pytest.mark.integration


async def test_one_run_per_tick_across_replicas(db) -> None:
    runs: list[str] = []

    async def job() -> None:
        runs.append("ran")
        await asyncio.sleep(0.01)

    name = f"job-{datetime.now(UTC).timestamp()}"
    replicas = [Scheduler(db, [ScheduledJob(name, 60, job)]) for _ in range(5)]
    now = datetime(2026, 5, 1, 12, 0, 30, tzinfo=UTC)
    await asyncio.gather(*(r.run_due(now) for r in replicas))
    assert runs == ["ran"]
    await asyncio.gather(*(r.run_due(now + timedelta(seconds=20)) for r in replicas))
    assert runs == ["ran"]  # same tick
    await asyncio.gather(*(r.run_due(now + timedelta(seconds=40)) for r in replicas))
    assert runs == ["ran", "ran"]  # the next minute's tick
    assert tick_start(now, 60) == datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


async def test_a_failing_job_is_recorded_and_does_not_stop_others(db) -> None:
    done: list[str] = []

    async def broken() -> None:
        raise RuntimeError("disk full")

    async def fine() -> None:
        done.append("fine")

    stamp = datetime.now(UTC).timestamp()
    scheduler = Scheduler(
        db, [ScheduledJob(f"broken-{stamp}", 60, broken), ScheduledJob(f"fine-{stamp}", 60, fine)]
    )
    now = datetime(2026, 5, 1, 13, 0, tzinfo=UTC)
    assert await scheduler.run_due(now) == [f"broken-{stamp}", f"fine-{stamp}"]
    assert done == ["fine"]
    tick = await db.scheduler_ticks.find_one({"_id": f"broken-{stamp}:{now.isoformat()}"})
    assert tick["done"] is True and tick["error"] == "RuntimeError: disk full"


async def test_cleanup_removes_only_what_has_expired(db) -> None:
    now = datetime.now(UTC)
    old, recent = now - timedelta(days=30), now - timedelta(minutes=5)
    await db.action_tokens.insert_many(
        [
            {
                "_id": "tok-old",
                "kind": "reset_password",
                "user_id": "u",
                "used": False,
                "expires_at": old,
            },
            {
                "_id": "tok-new",
                "kind": "reset_password",
                "user_id": "u",
                "used": False,
                "expires_at": now + timedelta(hours=1),
            },
        ]
    )

    def event(event_id: str, published: bool, at: datetime) -> dict:
        return {
            "_id": event_id,
            "type": "task.updated",
            "family": "task",
            "key": "cleanup-test",
            "workspace_id": None,
            "data": {},
            "occurred_at": at,
            "published": published,
            "published_at": at if published else None,
        }

    # ev-pending stays unpublished only if no relay runs on this database: mark it
    # published-but-recent instead, which cleanup must also keep.
    await db.outbox.insert_many(
        [
            event("ev-old", True, old),
            event("ev-pending", True, now),
            event("ev-recent", True, recent),
        ]
    )
    await db.processed_events.insert_many(
        [{"_id": "g:old", "processed_at": old}, {"_id": "g:new", "processed_at": recent}]
    )
    removed = await cleanup(db)
    assert (
        removed["action_tokens"] >= 1
        and removed["outbox"] >= 1
        and removed["processed_events"] >= 1
    )
    assert await db.action_tokens.find_one({"_id": "tok-old"}) is None
    assert await db.action_tokens.find_one({"_id": "tok-new"}) is not None
    assert {
        d["_id"]
        async for d in db.outbox.find({"_id": {"$in": ["ev-old", "ev-pending", "ev-recent"]}})
    } == {
        "ev-pending",
        "ev-recent",
    }
    assert await db.processed_events.find_one({"_id": "g:new"}) is not None
