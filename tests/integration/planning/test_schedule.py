"""Issue 19: GET /projects/{id}/schedule (CPM over stored tasks, typed links and the
calendar) and automatic rescheduling with task.rescheduled events."""

from __future__ import annotations

import pytest

from tests.utils.api import (
    add_member,
    expect,
    expect_problem,
    new_project,
    new_task,
    new_user,
)

pytestmark = pytest.mark.integration


async def link(client, user, task, blocker, **typed):
    await expect(
        await client.post(
            f"/api/v1/tasks/{task['id']}/dependencies",
            json={"blocked_by": blocker["id"], **typed},
            headers=user.headers,
        ),
        201,
    )


async def network(client, owner, workspace_id, mode: str):
    """A (8 h) → B (16 h) → D (milestone); C (4 h) starts 4 h after A starts (SS+4h) and
    precedes D. The project starts on Monday 2026-11-02, Mon-Fri 09:00-17:00 UTC."""
    project = await new_project(
        client, owner, workspace_id, start_date="2026-11-02", scheduling_mode=mode
    )
    pid = project["id"]
    a = await new_task(client, owner, pid, title="A", estimate_hours=8)
    b = await new_task(client, owner, pid, title="B", estimate_hours=16)
    c = await new_task(client, owner, pid, title="C", estimate_hours=4)
    d = await new_task(client, owner, pid, title="D", milestone=True)
    await link(client, owner, b, a)
    await link(client, owner, c, a, type="SS", lag=4)
    await link(client, owner, d, b)
    await link(client, owner, d, c)
    return project, a, b, c, d


async def schedule_of(client, user, project_id):
    return await expect(
        await client.get(f"/api/v1/projects/{project_id}/schedule", headers=user.headers), 200
    )


async def test_the_schedule_of_an_automatic_project(client, owner, workspace_id):
    project, a, b, c, d = await network(client, owner, workspace_id, "automatic")
    body = await schedule_of(client, owner, project["id"])
    assert body["mode"] == "automatic"
    assert body["calendar"]["source"] == "default" and body["calendar"]["timezone"] == "UTC"
    assert body["project_start"] == "2026-11-02T09:00:00.000Z"
    assert body["project_finish"] == "2026-11-04T17:00:00.000Z"
    assert body["duration_hours"] == 24.0
    assert [t["key"] for t in body["critical_path"]] == [a["key"], b["key"], d["key"]]
    tasks = {t["key"]: t for t in body["tasks"]}
    assert (tasks[b["key"]]["early_start"], tasks[b["key"]]["early_finish"]) == (
        "2026-11-03T09:00:00.000Z",
        "2026-11-04T17:00:00.000Z",
    )
    sc = tasks[c["key"]]
    assert (sc["early_start"], sc["early_finish"]) == (
        "2026-11-02T13:00:00.000Z",
        "2026-11-02T17:00:00.000Z",
    )
    assert (sc["total_slack_hours"], sc["free_slack_hours"], sc["critical"]) == (16.0, 16.0, False)
    assert tasks[d["key"]]["early_start"] == "2026-11-04T17:00:00.000Z"
    assert tasks[d["key"]]["duration_hours"] == 0.0
    assert body["violations"] == []


async def test_the_calendar_decides_the_dates(client, owner, workspace_id):
    project, *_ = await network(client, owner, workspace_id, "automatic")
    # the workspace's calendar applies until the project has its own
    await expect(
        await client.patch(
            f"/api/v1/workspaces/{workspace_id}",
            json={"calendar": {"hours_per_day": 4, "timezone": "Europe/Berlin"}},
            headers=owner.headers,
        ),
        200,
    )
    body = await schedule_of(client, owner, project["id"])
    assert body["calendar"]["source"] == "workspace"
    assert body["project_start"] == "2026-11-02T08:00:00.000Z"  # 09:00 in Berlin (CET)
    assert body["duration_hours"] == 24.0  # the same work, over six 4-hour days
    assert body["project_finish"] == "2026-11-09T12:00:00.000Z"  # Monday 13:00 CET
    await expect(
        await client.patch(
            f"/api/v1/projects/{project['id']}",
            json={"calendar": {"holidays": ["2026-11-03"]}},
            headers=owner.headers,
        ),
        200,
    )
    body = await schedule_of(client, owner, project["id"])
    assert body["calendar"]["source"] == "project"
    assert body["project_finish"] == "2026-11-05T17:00:00.000Z"  # a holiday on Tuesday


async def test_a_manual_project_reports_broken_links(client, owner, workspace_id):
    project, a, b, _, _ = await network(client, owner, workspace_id, "manual")
    await expect(
        await client.patch(
            f"/api/v1/tasks/{b['id']}", json={"start_date": "2026-11-02"}, headers=owner.headers
        ),
        200,
    )
    body = await schedule_of(client, owner, project["id"])
    assert body["mode"] == "manual"
    (violation,) = body["violations"]
    assert (violation["key"], violation["predecessor_key"], violation["type"]) == (
        b["key"],
        a["key"],
        "FS",
    )
    assert violation["shortfall_hours"] == 8.0
    # nothing was moved: manual projects keep their dates
    got = await expect(await client.get(f"/api/v1/tasks/{b['id']}", headers=owner.headers), 200)
    assert got["start_date"] == "2026-11-02"


async def test_a_slip_moves_the_dependents_of_an_automatic_project(client, db, owner, workspace_id):
    project, a, b, c, d = await network(client, owner, workspace_id, "automatic")
    before = {t["id"]: (await db.tasks.find_one({"_id": t["id"]}))["version"] for t in (b, c, d)}
    await expect(
        await client.patch(
            f"/api/v1/tasks/{a['id']}", json={"estimate_hours": 16}, headers=owner.headers
        ),
        200,
    )
    got = {
        t["id"]: await expect(
            await client.get(f"/api/v1/tasks/{t['id']}", headers=owner.headers), 200
        )
        for t in (b, c, d)
    }
    # B and D moved (and keep their new start days), C (SS+4h from A's start) did not
    assert got[b["id"]]["start_date"] == "2026-11-04"
    assert got[d["id"]]["start_date"] == "2026-11-05"
    assert got[c["id"]]["start_date"] is None and got[c["id"]]["version"] == before[c["id"]]
    events = [
        e
        async for e in db.outbox.find(
            {"type": "task.rescheduled", "data.project_id": project["id"]}
        ).sort("_id", 1)
    ]
    assert sorted(e["data"]["key"] for e in events) == sorted([b["key"], d["key"]])
    moved_b = next(e for e in events if e["data"]["task_id"] == b["id"])
    assert moved_b["data"]["cause_key"] == a["key"]
    assert moved_b["data"]["start_date"] == [None, "2026-11-04"]
    body = await schedule_of(client, owner, project["id"])
    assert body["project_finish"] == "2026-11-05T17:00:00.000Z"
    # webhooks can subscribe to it
    hook = await expect(
        await client.post(
            f"/api/v1/workspaces/{workspace_id}/webhooks",
            json={"url": "https://93.184.215.14/hook", "events": ["task.rescheduled"]},
            headers=owner.headers,
        ),
        201,
    )
    assert hook["events"] == ["task.rescheduled"]
    # a manual project moves nothing
    _, ma, mb, _, _ = await network(client, owner, workspace_id, "manual")
    mb = await expect(await client.get(f"/api/v1/tasks/{mb['id']}", headers=owner.headers), 200)
    await expect(
        await client.patch(
            f"/api/v1/tasks/{ma['id']}", json={"estimate_hours": 16}, headers=owner.headers
        ),
        200,
    )
    got_mb = await expect(await client.get(f"/api/v1/tasks/{mb['id']}", headers=owner.headers), 200)
    assert got_mb["start_date"] is None and got_mb["version"] == mb["version"]


async def test_the_schedule_is_read_by_members_only(client, db, owner, workspace_id):
    project, *_ = await network(client, owner, workspace_id, "automatic")
    viewer = await new_user(client)
    await add_member(db, workspace_id, viewer, "viewer")
    await schedule_of(client, viewer, project["id"])
    stranger = await new_user(client)
    url = f"/api/v1/projects/{project['id']}/schedule"
    await expect_problem(await client.get(url, headers=stranger.headers), 404)
    await expect_problem(await client.get(url, params={"x": "1"}, headers=owner.headers), 422)


async def test_a_task_answers_its_own_line_of_the_schedule(client, db, owner, workspace_id):
    project, a, b, c, _ = await network(client, owner, workspace_id, "automatic")
    whole = await schedule_of(client, owner, project["id"])
    lines = {t["task_id"]: t for t in whole["tasks"]}
    for task, on_path in ((a, True), (c, False)):
        # by id and by key: the same line as the project's schedule, and the project's finish
        for address in (task["id"], task["key"]):
            mine = await expect(
                await client.get(f"/api/v1/tasks/{address}/schedule", headers=owner.headers), 200
            )
            assert {k: mine[k] for k in lines[task["id"]]} == lines[task["id"]]
            assert mine["on_critical_path"] is on_path
            assert (mine["project_id"], mine["mode"]) == (project["id"], "automatic")
            assert mine["project_finish"] == whole["project_finish"]
            assert mine["violations"] == []
    # manual mode: a task sees the violations of its own links only
    _, ma, mb, mc, _ = await network(client, owner, workspace_id, "manual")
    await expect(
        await client.patch(
            f"/api/v1/tasks/{mb['id']}", json={"start_date": "2026-11-02"}, headers=owner.headers
        ),
        200,
    )
    broken = await expect(
        await client.get(f"/api/v1/tasks/{mb['id']}/schedule", headers=owner.headers), 200
    )
    assert [(v["predecessor_key"], v["shortfall_hours"]) for v in broken["violations"]] == [
        (ma["key"], 8.0)
    ]
    clean = await expect(
        await client.get(f"/api/v1/tasks/{mc['id']}/schedule", headers=owner.headers), 200
    )
    assert clean["violations"] == []
    # members only; a foreign or unknown task is a 404; no query parameters
    viewer = await new_user(client)
    await add_member(db, workspace_id, viewer, "viewer")
    await expect(await client.get(f"/api/v1/tasks/{b['id']}/schedule", headers=viewer.headers), 200)
    stranger = await new_user(client)
    url = f"/api/v1/tasks/{b['id']}/schedule"
    await expect_problem(await client.get(url, headers=stranger.headers), 404)
    unknown = "0" * 24  # a well-formed id of no task (a malformed one is a 422 naming task)
    await expect_problem(
        await client.get(f"/api/v1/tasks/{unknown}/schedule", headers=owner.headers), 404
    )
    await expect_problem(
        await client.get("/api/v1/tasks/nope/schedule", headers=owner.headers), 422
    )
    await expect_problem(await client.get(url, params={"x": "1"}, headers=owner.headers), 422)
