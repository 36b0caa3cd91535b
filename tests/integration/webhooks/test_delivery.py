"""Webhook deliveries end to end: outbox → relay → Kafka → webhooks group → receiver.

Receivers are real aiohttp servers on 127.0.0.1; the worker (conftest
``webhook_worker``) allows private targets and retries after 0.3 s and 0.6 s,
disabling a webhook after 3 failed deliveries in a row.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from planboard.events import outbox
from planboard.events.envelope import Event
from planboard.services import webhooks as service
from planboard.store import migrations
from planboard.store import webhooks as store
from planboard.store.ids import utcnow
from planboard.workers.webhooks import WebhookMetrics, WebhookWorker
from tests.integration.webhooks.conftest import OPTIONS, Receiver
from tests.utils.api import new_user, new_workspace, wait_for_mail

pytestmark = pytest.mark.integration


async def eventually(check: Callable[[], Awaitable[object]], timeout: float = 30.0) -> object:
    async with asyncio.timeout(timeout):
        while True:
            result = await check()
            if result:
                return result
            await asyncio.sleep(0.05)


async def hook_for(client, receiver: Receiver, events: list[str], url: str | None = None):
    owner = await new_user(client)
    workspace_id = await new_workspace(client, owner)
    response = await client.post(
        f"/api/v1/workspaces/{workspace_id}/webhooks",
        json={"url": url or receiver.url, "events": events},
        headers=owner.headers,
    )
    webhook = await response.json()
    assert response.status == 201, webhook
    receiver.secret = webhook["secret"]
    return owner, workspace_id, webhook


def task_created(workspace_id: str, n: int = 1) -> Event:
    project_id = f"p-{uuid.uuid4().hex[:12]}"
    return Event(
        type="task.created",
        key=project_id,
        workspace_id=workspace_id,
        data={"project_id": project_id, "task_id": f"t-{uuid.uuid4().hex[:12]}", "key": f"PB-{n}"},
    )


async def deliveries_of(db, webhook_id: str) -> list[dict]:
    return [d async for d in db.webhook_deliveries.find({"webhook_id": webhook_id})]


async def test_events_arrive_signed_with_the_contract_headers(
    private_client, wh_db, receiver, webhook_worker
) -> None:
    owner, workspace_id, webhook = await hook_for(
        private_client, receiver, ["workspace.updated", "task.created"]
    )
    renamed = await private_client.patch(
        f"/api/v1/workspaces/{workspace_id}", json={"name": "Renamed"}, headers=owner.headers
    )
    assert renamed.status == 200
    event = task_created(workspace_id)
    await outbox.record(wh_db, [event])

    received = await receiver.wait_for(2)
    by_type = {r.headers["X-Planboard-Event"]: r for r in received}
    assert set(by_type) == {"workspace.updated", "task.created"}
    for request in received:
        assert request.signature_ok, request.headers
        assert request.headers["X-Planboard-Signature"].startswith("sha256=")
        assert request.headers["User-Agent"].startswith("Planboard-Webhooks/")
        assert request.headers["Content-Type"] == "application/json"
        body = request.json()
        assert set(body) >= {"id", "type", "occurred_at", "workspace_id", "data"}
        assert body["type"] == request.headers["X-Planboard-Event"]
        assert body["workspace_id"] == workspace_id and body["occurred_at"].endswith("Z")
    task_body = by_type["task.created"].json()
    assert task_body["id"] == event.id and task_body["data"]["task_id"] == event.data["task_id"]
    assert by_type["workspace.updated"].json()["data"]["name"] == "Renamed"
    ids = [r.headers["X-Planboard-Delivery"] for r in received]
    assert len(set(ids)) == 2

    log = await eventually(
        lambda: _settled_log(private_client, owner, workspace_id, webhook["id"], 2)
    )
    assert {d["id"] for d in log} == set(ids)
    for entry in log:
        assert entry["status"] == "delivered" and entry["attempts"] == 1
        assert entry["response_code"] == 200 and entry["response_body"] == "ok"
        assert entry["duration_ms"] >= 0 and entry["error"] == ""
    shown = await (
        await private_client.get(
            f"/api/v1/workspaces/{workspace_id}/webhooks/{webhook['id']}", headers=owner.headers
        )
    ).json()
    assert shown["last_delivery_status"] == "delivered" and shown["consecutive_failures"] == 0


async def _settled_log(client, owner, workspace_id, webhook_id, count):
    response = await client.get(
        f"/api/v1/workspaces/{workspace_id}/webhooks/{webhook_id}/deliveries",
        headers=owner.headers,
    )
    items = (await response.json())["items"]
    settled = [d for d in items if d["status"] not in ("pending", "delivering")]
    return items if len(settled) >= count else None


async def test_a_redelivered_kafka_event_sends_nothing_twice(
    private_client, private_settings, wh_db, receiver, webhook_worker
) -> None:
    # The webhooks group keeps no processed markers: a redelivered event (a crash before
    # the offsets were committed, a relay that published twice) runs the fan-out again,
    # and the delivery's unique dedupe_key (webhook id + event id) makes that a no-op.
    _, workspace_id, webhook = await hook_for(private_client, receiver, ["task.created"])
    event = task_created(workspace_id)
    await outbox.record(wh_db, [event])
    await receiver.wait_for(1)
    await webhook_worker.handled_event(event.id)

    producer = AIOKafkaProducer(bootstrap_servers=private_settings.kafka_bootstrap)
    await producer.start()
    try:
        topic = f"{private_settings.kafka_topic_prefix}task"
        for _ in range(2):
            webhook_worker.handled.discard(event.id)
            await producer.send_and_wait(topic, event.to_json(), key=event.key.encode())
            await webhook_worker.handled_event(event.id)  # handled again, as new
    finally:
        await producer.stop()
    group = webhook_worker.worker.group_name
    assert await wh_db.processed_events.count_documents({"group": group}) == 0
    await asyncio.sleep(1.0)  # time for a (wrong) second delivery to go out
    assert len(receiver.requests) == 1
    assert len(await deliveries_of(wh_db, webhook["id"])) == 1


async def test_failing_receiver_is_retried_then_failed_then_auto_disabled(
    private_client, wh_db, receiver, webhook_worker, mail_url
) -> None:
    worker = webhook_worker.worker
    receiver.status = 500
    owner, workspace_id, webhook = await hook_for(private_client, receiver, ["task.*"])
    errors_before = worker.metrics.registry.get_sample_value(
        "planboard_webhook_attempts_total", {"outcome": "http_error"}
    )
    events = [task_created(workspace_id, n) for n in range(3)]
    await outbox.record(wh_db, events)

    async def disabled():
        doc = await wh_db.webhooks.find_one({"_id": webhook["id"]})
        return doc if doc and not doc["active"] else None

    hook = await eventually(disabled, timeout=45)
    assert hook["consecutive_failures"] == 3
    assert "3 consecutive failed deliveries" in hook["disabled_reason"]
    assert "HTTP 500" in hook["disabled_reason"]

    received = await receiver.wait_for(9)
    await asyncio.sleep(0.5)
    assert len(received) == 9  # 3 deliveries x (1 attempt + 2 retries), then nothing
    per_delivery: dict[str, list[float]] = {}
    for request in received:
        assert request.signature_ok
        per_delivery.setdefault(request.headers["X-Planboard-Delivery"], []).append(request.at)
    assert len(per_delivery) == 3
    for times in per_delivery.values():
        assert len(times) == 3
        assert times[1] - times[0] >= 0.3 * 0.9 - 0.05  # backoff, with jitter
        assert times[2] - times[1] >= 0.6 * 0.9 - 0.05
    for delivery in await deliveries_of(wh_db, webhook["id"]):
        assert delivery["status"] == "failed" and delivery["attempts"] == 3
        assert delivery["response_status"] == 500 and delivery["error"] == "HTTP 500"

    mail = await wait_for_mail(mail_url, owner.email, "webhook disabled")
    assert webhook["id"] in mail["text"] and "consecutive failed deliveries" in mail["text"]
    errors_after = worker.metrics.registry.get_sample_value(
        "planboard_webhook_attempts_total", {"outcome": "http_error"}
    )
    assert (errors_after or 0) - (errors_before or 0) >= 9
    assert (
        worker.metrics.registry.get_sample_value("planboard_webhooks_auto_disabled_total") or 0
    ) >= 1

    path = f"/api/v1/workspaces/{workspace_id}/webhooks/{webhook['id']}"
    shown = await (await private_client.get(path, headers=owner.headers)).json()
    assert shown["active"] is False and "consecutive failed" in shown["disabled_reason"]
    log = await (
        await private_client.get(
            f"{path}/deliveries", params={"status": "failed"}, headers=owner.headers
        )
    ).json()
    assert len(log["items"]) == 3
    assert all(d["attempts"] == 3 and d["response_code"] == 500 for d in log["items"])
    assert all(
        d["response_body"] == "nope" and d["event_type"] == "task.created" for d in log["items"]
    )

    # disabled: a new event creates no delivery
    later = task_created(workspace_id, 9)
    await outbox.record(wh_db, [later])
    await webhook_worker.handled_event(later.id)
    assert len(await deliveries_of(wh_db, webhook["id"])) == 3

    # re-enabled: counters cleared, deliveries flow again
    receiver.status = 200
    enabled = await (
        await private_client.patch(path, json={"active": True}, headers=owner.headers)
    ).json()
    assert enabled["active"] is True and enabled["consecutive_failures"] == 0
    assert enabled["disabled_reason"] is None
    await outbox.record(wh_db, [task_created(workspace_id, 10)])
    await receiver.wait_for(10)


async def test_a_slow_receiver_counts_as_a_failure(
    private_client, wh_db, receiver, webhook_worker
) -> None:
    receiver.delay_s = 3.0  # the worker's total timeout is 1.5 s
    _, workspace_id, webhook = await hook_for(private_client, receiver, ["task.created"])
    await outbox.record(wh_db, [task_created(workspace_id)])

    async def failed():
        found = await deliveries_of(wh_db, webhook["id"])
        return found[0] if found and found[0]["status"] == "failed" else None

    delivery = await eventually(failed, timeout=45)
    assert delivery["attempts"] == 3 and delivery["outcome"] == "timeout"
    assert delivery["error"] == "no response within 1.5s"
    assert delivery["response_status"] is None
    assert 1400 <= delivery["duration_ms"] < 2900
    assert len(receiver.requests) == 3


@pytest.mark.parametrize(("per_host", "most"), [(2, 2), (8, 6)])
async def test_attempts_to_one_host_share_at_most_connections_per_host(
    private_settings, wh_db, per_host, most
) -> None:
    slow = await Receiver(delay_s=0.3).start()
    options = replace(OPTIONS, concurrency=8, connections_per_host=per_host)
    worker = WebhookWorker(private_settings, wh_db, options=options, metrics=WebhookMetrics())
    webhook = {"_id": "h", "url": slow.url, "secret": "s", "active": True}
    deliveries = [
        {"_id": f"d{n}", "event_type": "task.created", "body": f'{{"n": {n}}}'} for n in range(6)
    ]
    try:
        async with worker.http():
            results = await asyncio.gather(*(worker.send(webhook, d) for d in deliveries))
    finally:
        await slow.stop()
    assert all(result.ok for result in results)
    assert slow.most_in_flight == most  # the others waited for a kept-alive connection


async def test_redirects_are_not_followed(private_client, wh_db, webhook_worker) -> None:
    elsewhere = await Receiver().start()
    redirecting = await Receiver(redirect_to=elsewhere.url).start()
    try:
        _, workspace_id, webhook = await hook_for(private_client, redirecting, ["task.created"])
        await outbox.record(wh_db, [task_created(workspace_id)])

        async def failed():
            found = await deliveries_of(wh_db, webhook["id"])
            return found[0] if found and found[0]["status"] == "failed" else None

        delivery = await eventually(failed, timeout=45)
        assert delivery["response_status"] == 302 and delivery["outcome"] == "redirect"
        assert "redirect not followed" in delivery["error"]
        assert len(redirecting.requests) == 3
        assert elsewhere.requests == []
    finally:
        await redirecting.stop()
        await elsewhere.stop()


async def test_ping_redeliver_and_the_delivery_log(
    private_client, wh_db, receiver, webhook_worker
) -> None:
    receiver.status = 500
    owner, workspace_id, webhook = await hook_for(private_client, receiver, ["task.created"])
    path = f"/api/v1/workspaces/{workspace_id}/webhooks/{webhook['id']}"
    event = task_created(workspace_id)
    await outbox.record(wh_db, [event])
    log = await eventually(
        lambda: _settled_log(private_client, owner, workspace_id, webhook["id"], 1)
    )
    original = log[0]
    assert original["status"] == "failed" and original["attempts"] == 3
    first_body = receiver.requests[0].body

    receiver.status = 200
    ping = await private_client.post(f"{path}/test", headers=owner.headers)
    queued = await ping.json()
    assert ping.status == 202, queued
    assert queued["event_type"] == "webhook.ping" and queued["status"] == "pending"
    received = await receiver.wait_for(4)
    pinged = received[3]
    assert pinged.headers["X-Planboard-Event"] == "webhook.ping" and pinged.signature_ok
    assert pinged.headers["X-Planboard-Delivery"] == queued["id"]
    assert pinged.json()["data"]["webhook_id"] == webhook["id"]

    again = await private_client.post(
        f"{path}/deliveries/{original['id']}/redeliver", headers=owner.headers
    )
    copy = await again.json()
    assert again.status == 202, copy
    assert copy["id"] != original["id"] and copy["redelivery_of"] == original["id"]
    received = await receiver.wait_for(5)
    redelivered = received[4]
    assert redelivered.body == first_body  # the same event, byte for byte
    assert redelivered.headers["X-Planboard-Delivery"] == copy["id"] and redelivered.signature_ok

    async def detail():
        response = await private_client.get(
            f"{path}/deliveries/{copy['id']}", headers=owner.headers
        )
        body = await response.json()
        return body if body["status"] == "delivered" else None

    shown = await eventually(detail)
    assert shown["attempts"] == 1 and shown["manual"] is True
    assert orjson.loads(shown["request_body"])["id"] == event.id

    # newest first, cursor-paginated
    seen, cursor = [], None
    while True:
        params = {"limit": "1", **({"cursor": cursor} if cursor else {})}
        page = await (
            await private_client.get(f"{path}/deliveries", params=params, headers=owner.headers)
        ).json()
        seen += [d["id"] for d in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [copy["id"], queued["id"], original["id"]]
    typed = await (
        await private_client.get(
            f"{path}/deliveries", params={"event_type": "webhook.ping"}, headers=owner.headers
        )
    ).json()
    assert [d["id"] for d in typed["items"]] == [queued["id"]]

    missing = await private_client.post(
        f"{path}/deliveries/{uuid.uuid4().hex[:24]}/redeliver", headers=owner.headers
    )
    assert missing.status == 404
    bad = await private_client.get(
        f"{path}/deliveries", params={"status": "exploded"}, headers=owner.headers
    )
    assert bad.status == 422
    # a manual delivery never counts towards auto-disable
    hook = await wh_db.webhooks.find_one({"_id": webhook["id"]})
    assert hook["consecutive_failures"] == 1 and hook["active"] is True


async def test_delivery_loops_racing_never_send_a_delivery_twice(
    private_client, private_settings, wh_db, receiver, webhook_worker
) -> None:
    _, workspace_id, webhook = await hook_for(private_client, receiver, ["task.created"])
    racers = [
        WebhookWorker(
            private_settings,
            wh_db,
            options=replace(OPTIONS, poll_interval_s=0.01),
            metrics=WebhookMetrics(),
            group_name="webhooks-racer",
        )
        for _ in range(2)
    ]
    loops = [r.start_background() for r in racers]
    try:
        events = [task_created(workspace_id, n) for n in range(40)]
        created = await asyncio.gather(*(service.fan_out(wh_db, e, OPTIONS) for e in events))
        assert sum(len(c) for c in created) == 40
        # the fan-out is idempotent too
        again = await asyncio.gather(*(service.fan_out(wh_db, e, OPTIONS) for e in events))
        assert sum(len(c) for c in again) == 0
        await receiver.wait_for(40)
        await asyncio.sleep(1.0)
    finally:
        for racer in racers:
            racer.stop()
        await asyncio.gather(*loops)
    ids = Counter(r.headers["X-Planboard-Delivery"] for r in receiver.requests)
    assert len(receiver.requests) == 40 and len(ids) == 40 and max(ids.values()) == 1
    for delivery in await deliveries_of(wh_db, webhook["id"]):
        assert delivery["status"] == "delivered" and delivery["attempts"] == 1
    assert sum(r.attempts for r in racers) <= 40


async def test_a_claim_is_won_by_exactly_one_contender(mongo_client, settings) -> None:
    db = mongo_client[f"{settings.mongodb_db}_claims"]  # no running loop claims here
    await migrations.migrate(db)
    workspace = f"w-race-{uuid.uuid4().hex[:8]}"
    webhook = {"_id": f"race-{uuid.uuid4().hex[:8]}", "workspace_id": workspace}
    later = utcnow() + timedelta(hours=1)  # never due for the running loops
    deliveries = [
        service._delivery(
            webhook,
            event_id=f"e{n}",
            event_type="task.created",
            body=b"{}",
            dedupe_key=f"{webhook['_id']}:e{n}",
            max_attempts=3,
            manual=False,
            now=later,
        )
        for n in range(30)
    ]
    assert await store.insert_delivery(db, deliveries[0])
    assert not await store.insert_delivery(db, {**deliveries[0], "_id": "other"})  # unique key
    assert len(await store.insert_deliveries(db, deliveries)) == 29  # the first exists
    claim_at = later + timedelta(seconds=1)
    ours: list[dict] = []
    for _ in range(5):  # rounds of racing contenders, each claiming up to 8
        won = await asyncio.gather(
            *(
                store.claim_due(
                    db,
                    limit=8,
                    owner=f"loop-{n}",
                    token=f"claim-{n}-{uuid.uuid4().hex[:6]}",
                    now=claim_at,
                    lease_until=claim_at + timedelta(seconds=30),
                )
                for n in range(6)
            )
        )
        ours += [d for claimed in won for d in claimed]
    ids = Counter(d["_id"] for d in ours)
    assert set(ids) == {d["_id"] for d in deliveries}  # every one claimed...
    assert max(ids.values()) == 1  # ...by exactly one contender
    for claimed in ours:
        assert claimed["status"] == "delivering" and claimed["attempts"] == 1
    stored = await db.webhook_deliveries.find_one({"_id": deliveries[5]["_id"]})
    owner_claim = next(d["claim"] for d in ours if d["_id"] == deliveries[5]["_id"])
    assert stored["attempts"] == 1 and stored["claim"] == owner_claim
    # an expired lease is claimed again, by one contender, with the attempt counted
    expired = claim_at + timedelta(seconds=31)
    again = await asyncio.gather(
        *(
            store.claim_due(
                db,
                limit=50,
                owner=f"late-{n}",
                token=f"late-{n}-{uuid.uuid4().hex[:6]}",
                now=expired,
                lease_until=expired + timedelta(seconds=30),
            )
            for n in range(4)
        )
    )
    retaken = Counter(
        d["_id"] for claimed in again for d in claimed if d["workspace_id"] == workspace
    )
    assert set(retaken) == set(ids) and max(retaken.values()) == 1
    assert all(
        d["attempts"] == 2 for claimed in again for d in claimed if d["workspace_id"] == workspace
    )
    await mongo_client.drop_database(db.name)


async def test_the_worker_refuses_private_targets_at_delivery_time(settings, db, receiver) -> None:
    """The guard runs again for every attempt: an address allowed once is not trusted."""
    receiver.secret = "s" * 16
    guarded = WebhookWorker(settings, db, options=OPTIONS, metrics=WebhookMetrics())
    webhook = {"_id": "w", "url": receiver.url, "secret": "s" * 16}
    delivery = {"_id": "d", "event_type": "task.created", "body": "{}"}
    async with guarded.http():
        for url in (receiver.url, f"http://localhost:{receiver.port}/hook"):
            result = await guarded.send({**webhook, "url": url}, delivery)
            assert result.outcome == "refused" and "refused" in result.error, result
    assert receiver.requests == []
    allowed = WebhookWorker(
        settings.replace(allow_private_webhooks=True),
        db,
        options=OPTIONS,
        metrics=WebhookMetrics(),
    )
    async with allowed.http():
        result = await allowed.send(webhook, delivery)
    assert result.ok and len(receiver.requests) == 1 and receiver.requests[0].signature_ok


async def test_deleting_the_workspace_removes_its_webhooks(
    private_client, wh_db, receiver, webhook_worker
) -> None:
    owner, workspace_id, webhook = await hook_for(private_client, receiver, ["*"])
    deleted = await private_client.delete(
        f"/api/v1/workspaces/{workspace_id}", headers=owner.headers
    )
    assert deleted.status == 204

    async def gone():
        return await wh_db.webhooks.find_one({"_id": webhook["id"]}) is None

    await eventually(gone)
