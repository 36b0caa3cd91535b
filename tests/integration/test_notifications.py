"""In-app notifications and mail by preference, driven by real events through Kafka."""

from __future__ import annotations

import asyncio

import pytest

from planboard.events import outbox
from planboard.events.envelope import Event
from planboard.store.ids import new_id, utcnow
from planboard.workers.notifications import notifications_group
from tests.utils.api import mails_to, new_user, new_workspace

pytestmark = pytest.mark.integration


async def a_task(db, workspace_id: str, assignee: str | None) -> dict:
    seq = await db.tasks.count_documents({"workspace_id": workspace_id}) + 1
    task = {
        "_id": new_id(),
        "workspace_id": workspace_id,
        "project_id": new_id(),
        "key": f"NT-{seq}",
        "seq": seq,
        "title": "Wire the relay",
        "status": "todo",
        "assignee_id": assignee,
        "created_at": utcnow(),
        "updated_at": utcnow(),
        "version": 1,
    }
    await db.tasks.insert_one(task)
    return task


async def wait_notifications(client, user, count: int, timeout: float = 45) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            body = await (await client.get("/api/v1/notifications", headers=user.headers)).json()
            if len(body["items"]) >= count:
                return body
            await asyncio.sleep(0.2)


async def test_assignment_status_and_mention_notify_once_by_preference(
    client, db, mail_url, settings
) -> None:
    actor, assignee = await new_user(client), await new_user(client)
    workspace_id = await new_workspace(client, actor)
    # the assignee wants status changes by mail too, and no mail for mentions
    prefs = await client.patch(
        "/api/v1/me/notification-preferences",
        json={"status_change": {"email": True}, "mention": {"email": False}},
        headers=assignee.headers,
    )
    assert prefs.status == 200
    assert (await prefs.json())["status_change"] == {"in_app": True, "email": True}

    task = await a_task(db, workspace_id, assignee.id)
    events = [
        Event(
            type="task.created",
            key=task["project_id"],
            workspace_id=workspace_id,
            data={"task_id": task["_id"], "key": "NT-1"},
            actor_id=actor.id,
        ),
        Event(
            type="task.updated",
            key=task["project_id"],
            workspace_id=workspace_id,
            data={"task_id": task["_id"], "changes": {"status": ["todo", "in_progress"]}},
            actor_id=actor.id,
        ),
        Event(
            type="comment.created",
            key=task["project_id"],
            workspace_id=workspace_id,
            data={
                "task_id": task["_id"],
                "comment_id": new_id(),
                "mentions": [assignee.id, actor.id],
            },
            actor_id=actor.id,
        ),
    ]
    await outbox.record(db, events)
    body = await wait_notifications(client, assignee, 3)
    # a redelivered event (as after a worker crash) notifies nobody twice
    group = notifications_group(settings, db)
    await group.handle(events[0])
    await group.handle(events[0])
    await asyncio.sleep(1)
    body = await (await client.get("/api/v1/notifications", headers=assignee.headers)).json()
    assert sorted(n["kind"] for n in body["items"]) == ["assignment", "mention", "status_change"]
    assert body["unread_count"] == 3
    stamps = [n["created_at"] for n in body["items"]]
    assert stamps == sorted(stamps, reverse=True)  # newest first
    # the actor mentioned themself: not notified
    assert (await (await client.get("/api/v1/notifications", headers=actor.headers)).json())[
        "items"
    ] == []

    async with asyncio.timeout(30):
        while len(subjects := [m["subject"] for m in await mails_to(mail_url, assignee.email)]) < 3:
            await asyncio.sleep(0.2)
    assert f"Assigned to you: {task['key']} Wire the relay" in subjects
    assert any("todo → in_progress" in s for s in subjects)
    assert not any("mentioned" in s for s in subjects)

    first = body["items"][0]["id"]
    assert (
        await client.post(f"/api/v1/notifications/{first}/read", headers=assignee.headers)
    ).status == 204
    unread = await (
        await client.get(
            "/api/v1/notifications", params={"unread": "true"}, headers=assignee.headers
        )
    ).json()
    assert len(unread["items"]) == 2 and unread["unread_count"] == 2
    marked = await (
        await client.post("/api/v1/notifications/read-all", headers=assignee.headers)
    ).json()
    assert marked == {"marked": 2}
    # someone else's notification is a 404
    assert (
        await client.post(f"/api/v1/notifications/{first}/read", headers=actor.headers)
    ).status == 404


async def test_pages_hold_only_visible_notifications_and_are_full(client, db, settings) -> None:
    """Notifications hidden by preference are left out before the page limit: every page
    is full while more visible ones exist, and the last one carries no cursor."""
    actor, user = await new_user(client), await new_user(client)
    workspace_id = await new_workspace(client, actor)
    response = await client.patch(
        "/api/v1/me/notification-preferences",
        json={"mention": {"in_app": False, "email": False}, "status_change": {"email": False}},
        headers=user.headers,
    )
    assert response.status == 200
    task = await a_task(db, workspace_id, user.id)
    group = notifications_group(settings, db)
    visible: list[str] = []
    for i in range(20):  # 5 visible status changes, each after three hidden mentions
        if i % 4 == 3:
            event = Event(
                type="task.updated",
                key=task["project_id"],
                workspace_id=workspace_id,
                data={"task_id": task["_id"], "changes": {"status": ["todo", f"s{i}"]}},
                actor_id=actor.id,
            )
            visible.append(f"{event.id}:{user.id}")
        else:
            event = Event(
                type="comment.created",
                key=task["project_id"],
                workspace_id=workspace_id,
                data={"task_id": task["_id"], "comment_id": new_id(), "mentions": [user.id]},
                actor_id=actor.id,
            )
        await group.handle(event)
    assert await db.notifications.count_documents({"user_id": user.id}) == 20
    for unread in ("false", "true"):
        pages: list[list[str]] = []
        cursor = None
        while True:
            params = {"limit": "2", "unread": unread, **({"cursor": cursor} if cursor else {})}
            response = await client.get(
                "/api/v1/notifications", params=params, headers=user.headers
            )
            body = await response.json()
            assert response.status == 200, body
            pages.append([n["id"] for n in body["items"]])
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert [len(p) for p in pages] == [2, 2, 1], pages
        assert [n for page in pages for n in page] == visible[::-1]  # newest first
        assert body["unread_count"] == 5
    # exactly a page's worth: no cursor pointing at an empty page
    response = await client.get(
        "/api/v1/notifications", params={"limit": "5"}, headers=user.headers
    )
    body = await response.json()
    assert len(body["items"]) == 5 and body["next_cursor"] is None


async def test_bad_preferences_are_refused(client) -> None:
    user = await new_user(client)
    for body in (
        {"assignment": {"sms": True}},
        {"digest": {"email": True}},
        {"mention": {"email": "yes please"}},
    ):
        response = await client.patch(
            "/api/v1/me/notification-preferences", json=body, headers=user.headers
        )
        assert response.status == 422, body


async def test_due_soon_reminders_once_per_task_and_digest(client, db, mail_url) -> None:
    from datetime import timedelta

    from planboard.services.reminders import remind_due_soon, send_digests

    owner, assignee = await new_user(client), await new_user(client)
    workspace_id = await new_workspace(client, owner)
    today = utcnow().date()
    due = await a_task(db, workspace_id, assignee.id)
    await db.tasks.update_one({"_id": due["_id"]}, {"$set": {"due_date": today.isoformat()}})
    later = await a_task(db, workspace_id, assignee.id)
    await db.tasks.update_one(
        {"_id": later["_id"]}, {"$set": {"due_date": (today + timedelta(days=9)).isoformat()}}
    )
    closed = await a_task(db, workspace_id, assignee.id)
    await db.tasks.update_one(
        {"_id": closed["_id"]}, {"$set": {"due_date": today.isoformat(), "status": "done"}}
    )
    assert await remind_due_soon(db) >= 1
    await remind_due_soon(db)  # the next hour's tick: nothing new
    mine = await (await client.get("/api/v1/notifications", headers=assignee.headers)).json()
    assert [n["kind"] for n in mine["items"]] == ["due_soon"]
    assert mine["items"][0]["task_id"] == due["_id"]

    assert await send_digests(db) >= 1
    async with asyncio.timeout(30):
        while not any("digest" in m["subject"] for m in await mails_to(mail_url, assignee.email)):
            await asyncio.sleep(0.2)
