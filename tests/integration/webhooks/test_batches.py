"""The webhooks group's batch paths: the subscription cache and its invalidation, a burst
fanned out and delivered in bulk, and a half-processed batch redelivered.

The worker (conftest ``webhook_worker``) caches each workspace's active webhooks and
learns of changes from the Redis generation the API bumps (and the worker itself, when
it auto-disables a webhook): services/webhook_subscriptions.py.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import pytest
from redis.asyncio import Redis

from planboard.events import outbox
from planboard.services import webhooks as service
from planboard.services.webhook_subscriptions import SubscriptionCache, bump
from planboard.store import webhooks as store
from planboard.store.ids import new_id, utcnow
from planboard_devstack.paths import free_port
from tests.integration.webhooks.conftest import OPTIONS, Receiver
from tests.integration.webhooks.test_delivery import (
    deliveries_of,
    eventually,
    hook_for,
    task_created,
)

pytestmark = pytest.mark.integration


def hook_doc(workspace_id: str, events: list[str], *, active: bool = True) -> dict:
    now = utcnow()
    return {
        "_id": new_id(),
        "workspace_id": workspace_id,
        "url": "http://127.0.0.1:9/hook",
        "events": events,
        "secret": "s" * 20,
        "active": active,
        "created_at": now,
        "updated_at": now,
        "version": 1,
    }


async def test_the_cache_serves_until_the_generation_moves(wh_db, redis) -> None:
    workspace = f"w-{uuid.uuid4().hex[:10]}"
    other = f"w-{uuid.uuid4().hex[:10]}"
    cache = SubscriptionCache(redis, ttl_s=60)
    first = hook_doc(workspace, ["task.created"])
    await store.insert(wh_db, first)

    found = await cache.active(wh_db, [workspace, other])
    assert [h["_id"] for h in found[workspace]] == [first["_id"]] and found[other] == []
    assert cache.loads == 2
    again = await cache.active(wh_db, [workspace, other, workspace])
    assert [h["_id"] for h in again[workspace]] == [first["_id"]]
    assert cache.loads == 2  # served from the cache: one MGET, no find

    second = hook_doc(workspace, ["*"])
    await store.insert(wh_db, second)  # a change whose bump has not happened (yet)
    assert len((await cache.active(wh_db, [workspace]))[workspace]) == 1
    await bump(redis, [workspace])
    assert {h["_id"] for h in (await cache.active(wh_db, [workspace]))[workspace]} == {
        first["_id"],
        second["_id"],
    }
    assert cache.loads == 3  # only the workspace whose generation moved

    await wh_db.webhooks.update_one({"_id": first["_id"]}, {"$set": {"active": False}})
    await bump(redis, [workspace])
    assert [h["_id"] for h in (await cache.active(wh_db, [workspace]))[workspace]] == [
        second["_id"]
    ]
    cache.forget([workspace])  # the worker consumed a webhook.* event of it
    await cache.active(wh_db, [workspace])
    assert cache.loads == 5


async def test_staleness_is_bounded_by_the_ttl_and_redis_down_means_no_cache(wh_db, redis) -> None:
    workspace = f"w-{uuid.uuid4().hex[:10]}"
    cache = SubscriptionCache(redis, ttl_s=0.3)
    await cache.active(wh_db, [workspace])
    hook = hook_doc(workspace, ["task.created"])
    await store.insert(wh_db, hook)  # the API's bump failed: Redis never hears of it
    assert (await cache.active(wh_db, [workspace]))[workspace] == []
    await asyncio.sleep(0.4)
    assert [h["_id"] for h in (await cache.active(wh_db, [workspace]))[workspace]] == [hook["_id"]]

    dead = Redis.from_url(
        f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.2, socket_timeout=0.2
    )
    try:
        uncached = SubscriptionCache(dead, ttl_s=60)
        for _ in range(3):
            found = await uncached.active(wh_db, [workspace])
            assert [h["_id"] for h in found[workspace]] == [hook["_id"]]
        assert uncached.loads == 3  # Redis unreadable: MongoDB every time
    finally:
        await dead.aclose()
    without_redis = SubscriptionCache(None)
    await without_redis.active(wh_db, [workspace])
    await without_redis.active(wh_db, [workspace])
    assert without_redis.loads == 2


async def delivered_for(db, under_test, event) -> list[dict]:
    """Once the worker has handled ``event``: the deliveries it made of it."""
    await under_test.handled_event(event.id)
    return [d async for d in db.webhook_deliveries.find({"event_id": event.id})]


async def test_webhook_changes_through_the_api_reach_the_fan_out_at_once(
    private_client, wh_db, receiver, webhook_worker
) -> None:
    worker = webhook_worker.worker
    owner, workspace_id, webhook = await hook_for(private_client, receiver, ["task.created"])
    path = f"/api/v1/workspaces/{workspace_id}/webhooks/{webhook['id']}"

    async def one_event(kind: str = "task.created") -> list[dict]:
        event = task_created(workspace_id)
        if kind != "task.created":
            event = type(event)(
                type=kind, key=event.key, workspace_id=workspace_id, data=event.data
            )
        await outbox.record(wh_db, [event])
        return await delivered_for(wh_db, webhook_worker, event)

    assert len(await one_event()) == 1  # cached now
    loads = worker.subscriptions.loads

    changed = await private_client.patch(
        path, json={"events": ["task.updated"]}, headers=owner.headers
    )
    assert changed.status == 200
    assert await one_event() == []  # the new filters apply to the very next event
    assert len(await one_event("task.updated")) == 1

    disabled = await private_client.patch(path, json={"active": False}, headers=owner.headers)
    assert disabled.status == 200
    assert await one_event("task.updated") == []
    enabled = await private_client.patch(path, json={"active": True}, headers=owner.headers)
    assert enabled.status == 200
    assert len(await one_event("task.updated")) == 1

    created = await private_client.post(
        f"/api/v1/workspaces/{workspace_id}/webhooks",
        json={"url": receiver.url, "events": ["task.*"]},
        headers=owner.headers,
    )
    second = await created.json()
    assert created.status == 201, second
    assert {d["webhook_id"] for d in await one_event("task.updated")} == {
        webhook["id"],
        second["id"],
    }
    deleted = await private_client.delete(path, headers=owner.headers)
    assert deleted.status == 204
    assert [d["webhook_id"] for d in await one_event("task.updated")] == [second["id"]]
    assert worker.subscriptions.loads > loads  # each change reloaded the workspace


async def test_a_burst_is_fanned_out_and_delivered_in_bulk_exactly_once(
    private_client, wh_db, receiver, webhook_worker
) -> None:
    worker, runner, _ = webhook_worker
    _, workspace_id, webhook = await hook_for(private_client, receiver, ["task.created"])
    delivered_before = (
        worker.metrics.registry.get_sample_value(
            "planboard_webhook_deliveries_total", {"status": "delivered"}
        )
        or 0
    )
    polls_before = runner.metrics.registry.get_sample_value(
        "planboard_consumer_batch_size_count", {"group": worker.group_name}
    )
    events = [task_created(workspace_id, n) for n in range(300)]
    await outbox.record(wh_db, events)
    received = await receiver.wait_for(300, timeout=120)
    await asyncio.sleep(1.0)  # anything doubled would show now
    ids = Counter(r.json()["id"] for r in received)
    assert set(ids) == {e.id for e in events} and max(ids.values()) == 1
    assert all(r.signature_ok for r in received)
    # the first ones were created claimed and sent at once, the rest claimed by the loop:
    # either way one attempt each, counted once
    stored = await eventually(lambda: _all_settled(wh_db, webhook["id"], 300))
    assert all(d["status"] == "delivered" and d["attempts"] == 1 for d in stored)
    assert any(d["lease_owner"] == worker.owner for d in stored)
    polls = (
        runner.metrics.registry.get_sample_value(
            "planboard_consumer_batch_size_count", {"group": worker.group_name}
        )
        or 0
    ) - (polls_before or 0)
    assert polls < 300  # events came in batches, not one poll each
    delivered = worker.metrics.registry.get_sample_value(
        "planboard_webhook_deliveries_total", {"status": "delivered"}
    )
    assert (delivered or 0) - delivered_before >= 300  # settled, in bulk writes
    hook = await wh_db.webhooks.find_one({"_id": webhook["id"]})
    assert hook["last_delivery_status"] == "delivered" and hook["consecutive_failures"] == 0


async def test_a_half_processed_batch_redelivered_sends_each_webhook_once(
    private_client, wh_db, receiver, webhook_worker
) -> None:
    _, workspace_id, webhook = await hook_for(private_client, receiver, ["task.created"])
    events = [task_created(workspace_id, n) for n in range(40)]
    # a worker died after fanning out the first half, before committing: its
    # deliveries exist (and go out), and Kafka hands the whole batch over again
    created = await service.fan_out_many(wh_db, events[:20], OPTIONS)
    assert len(created) == 20
    await outbox.record(wh_db, events)
    received = await receiver.wait_for(40, timeout=90)
    for event in events:
        await webhook_worker.handled_event(event.id, timeout=90)
    await asyncio.sleep(1.0)
    ids = Counter(r.json()["id"] for r in receiver.requests)
    assert set(ids) == {e.id for e in events} and max(ids.values()) == 1
    assert len(received) == 40 == len(await deliveries_of(wh_db, webhook["id"]))


async def _all_settled(db, webhook_id: str, count: int) -> list[dict] | None:
    found = await deliveries_of(db, webhook_id)
    done = [d for d in found if d["status"] not in ("pending", "delivering")]
    return found if len(found) == count == len(done) else None


async def test_deliveries_of_a_disabled_or_deleted_webhook_are_cancelled_not_sent(
    private_client, wh_db, webhook_worker
) -> None:
    """The delivery loop re-reads each webhook: a cached subscription is never trusted."""
    target = await Receiver().start()
    try:
        owner, workspace_id, webhook = await hook_for(private_client, target, ["task.created"])
        await private_client.patch(
            f"/api/v1/workspaces/{workspace_id}/webhooks/{webhook['id']}",
            json={"active": False},
            headers=owner.headers,
        )
        # deliveries made from a stale copy (as a replica with an old cache entry would)
        stale = {**(await wh_db.webhooks.find_one({"_id": webhook["id"]})), "active": True}
        event = task_created(workspace_id)
        now = utcnow()
        delivery = service._delivery(
            stale,
            event_id=event.id,
            event_type=event.type,
            body=service.payload(event),
            dedupe_key=f"{webhook['id']}:{event.id}",
            max_attempts=3,
            manual=False,
            now=now,
        )
        await store.insert_delivery(wh_db, delivery)

        async def cancelled():
            found = await wh_db.webhook_deliveries.find_one({"_id": delivery["_id"]})
            return found if found["status"] == "cancelled" else None

        settled = await eventually(cancelled)
        assert settled["error"] == "the webhook is disabled"
        assert target.requests == []
    finally:
        await target.stop()
