"""Issue 19: project.forecast_changed, and notifications when a task becomes ready or its
slack runs out — through the outbox, Kafka and the notifications worker."""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.planning.test_schedule import link, network
from tests.utils.api import (
    add_member,
    expect,
    new_project,
    new_task,
    new_user,
)

pytestmark = pytest.mark.integration


async def notices(client, user, kind: str, count: int = 1, timeout: float = 60):
    async with asyncio.timeout(timeout):
        while True:
            body = await expect(
                await client.get("/api/v1/notifications", headers=user.headers), 200
            )
            found = [n for n in body["items"] if n["kind"] == kind]
            if len(found) >= count:
                return found
            await asyncio.sleep(0.2)


async def test_a_changed_forecast_is_an_event(client, db, owner, workspace_id):
    project, a, *_ = await network(client, owner, workspace_id, "automatic")
    url = f"/api/v1/projects/{project['id']}/forecast"
    params = {"runs": "300", "seed": "1"}
    await expect(await client.get(url, params=params, headers=owner.headers), 200)
    query = {"type": "project.forecast_changed", "key": project["id"]}
    assert await db.outbox.count_documents(query) == 0  # the first forecast is only kept
    await expect(await client.get(url, params=params, headers=owner.headers), 200)
    assert await db.outbox.count_documents(query) == 0  # the same forecast again
    await expect(
        await client.patch(
            f"/api/v1/tasks/{a['id']}", json={"estimate_hours": 80}, headers=owner.headers
        ),
        200,
    )
    body = await expect(await client.get(url, params=params, headers=owner.headers), 200)
    (event,) = [e async for e in db.outbox.find(query)]
    assert event["data"]["after"]["p50"] == body["project"]["p50"][:10]
    assert event["data"]["after"]["p50"] > event["data"]["before"]["p50"]


async def test_a_task_that_becomes_ready_notifies_its_assignee(client, db, owner, workspace_id):
    project = await new_project(client, owner, workspace_id)
    worker = await new_user(client)
    await add_member(db, workspace_id, worker, "member")
    a = await new_task(client, owner, project["id"], title="Foundation")
    b = await new_task(client, owner, project["id"], title="Walls")
    c = await new_task(client, owner, project["id"], title="Roof", assignee_id=worker.id)
    await link(client, owner, c, a)
    await link(client, owner, c, b)
    # one blocker done: C still waits for B, nobody hears
    await expect(
        await client.patch(
            f"/api/v1/tasks/{a['id']}", json={"status": "done"}, headers=owner.headers
        ),
        200,
    )
    await expect(
        await client.patch(
            f"/api/v1/tasks/{b['id']}", json={"status": "cancelled"}, headers=owner.headers
        ),
        200,
    )
    (ready,) = await notices(client, worker, "task_ready")
    assert ready["task_id"] == c["id"] and c["key"] in ready["title"]
    # the worker reads the current state: the event that finds C ready names its blocker
    # (A's may come late, after B was cancelled); either way C is announced once
    assert a["key"] in ready["body"] or b["key"] in ready["body"]
    await asyncio.sleep(1)
    assert len(await notices(client, worker, "task_ready")) == 1


async def test_a_task_whose_slack_runs_out_notifies_its_assignee(client, db, owner, workspace_id):
    """Q (2 h) → P (4 h) → M, and R (8 h) → M: P has 2 h of slack until Q takes 4 h."""
    project = await new_project(
        client, owner, workspace_id, start_date="2026-11-02", scheduling_mode="automatic"
    )
    worker = await new_user(client)
    await add_member(db, workspace_id, worker, "member")
    pid = project["id"]
    q = await new_task(client, owner, pid, title="Q", estimate_hours=2)
    p = await new_task(client, owner, pid, title="P", estimate_hours=4, assignee_id=worker.id)
    r = await new_task(client, owner, pid, title="R", estimate_hours=8)
    m = await new_task(client, owner, pid, title="M", milestone=True)
    await link(client, owner, p, q)
    await link(client, owner, m, p)
    await link(client, owner, m, r)
    await expect(
        await client.patch(
            f"/api/v1/tasks/{q['id']}", json={"estimate_hours": 4}, headers=owner.headers
        ),
        200,
    )
    event = await db.outbox.find_one({"type": "task.slack_exhausted", "data.task_id": p["id"]})
    assert event is not None and event["data"]["total_slack_hours"] == [2.0, 0.0]
    assert event["data"]["cause_key"] == q["key"]
    (notice,) = await notices(client, worker, "slack_zero")
    assert notice["task_id"] == p["id"] and q["key"] in notice["body"]
