"""Issue 19: the forecast calibrated from the activity log's in_progress → done times,
and done tasks pinned at their actual dates in the schedule. Tasks move through their
statuses by the API; only the recorded times of those moves are set in the database
(nobody can wait days in a test)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.integration.planning.test_schedule import link, network, schedule_of
from tests.utils.api import expect, new_project, new_task, new_user, new_workspace

pytestmark = pytest.mark.integration

# Monday 2026-10-05 09:00 UTC: on the default calendar (Mon-Fri 09:00-17:00 UTC)
MONDAY = datetime(2026, 10, 5, 9, tzinfo=UTC)


async def move(client, user, task, *statuses):
    for status in statuses:
        await expect(
            await client.patch(
                f"/api/v1/tasks/{task['id']}", json={"status": status}, headers=user.headers
            ),
            200,
        )


async def set_times(db, task_id, started, finished):
    """Date the task's recorded moves to in_progress and done."""
    async for doc in db.activity.find({"task_id": task_id}):
        for change in doc.get("changes") or []:
            if change["field"] == "status" and change["after"] in ("in_progress", "done"):
                at = started if change["after"] == "in_progress" else finished
                await db.activity.update_one({"_id": doc["_id"]}, {"$set": {"at": at}})


async def forecast(client, user, project_id):
    return await expect(
        await client.get(
            f"/api/v1/projects/{project_id}/forecast",
            params={"runs": "500", "seed": "11"},
            headers=user.headers,
        ),
        200,
    )


async def test_history_of_overruns_moves_the_forecast_later(client, db):
    owner = await new_user(client)
    workspace_id = await new_workspace(client, owner)
    history = await new_project(client, owner, workspace_id, name="History")
    # 20 tasks of 4 h that each took 12 working hours (Monday 09:00 to Tuesday 13:00)
    for n in range(20):
        task = await new_task(client, owner, history["id"], title=f"H{n}", estimate_hours=4)
        await move(client, owner, task, "in_progress", "done")
        start = MONDAY + timedelta(weeks=n % 4)
        await set_times(db, task["id"], start, start + timedelta(days=1, hours=4))
    # a task without an estimate and one done without being started are no samples
    loose = await new_task(client, owner, history["id"], title="loose")
    await move(client, owner, loose, "in_progress", "done")
    skipped = await new_task(client, owner, history["id"], title="skip", estimate_hours=4)
    await move(client, owner, skipped, "done")

    own = await forecast(client, owner, history["id"])
    assert own["calibration"] == {"calibrated": True, "source": "project", "samples": 20}

    # a new project of the workspace has no history of its own: the workspace's counts
    project, *_ = await network(client, owner, workspace_id, "automatic")
    calibrated = await forecast(client, owner, project["id"])
    assert calibrated["calibration"] == {"calibrated": True, "source": "workspace", "samples": 20}

    # the same network in a workspace without history: the default spread, unbiased
    other = await new_user(client)
    bare, *_ = await network(client, other, await new_workspace(client, other), "automatic")
    default = await forecast(client, other, bare["id"])
    assert default["calibration"] == {"calibrated": False, "source": "default", "samples": 0}

    # tasks took 3x their estimates: the median finish is about 3x later (CPM: 24 h)
    p, q = calibrated["project"], default["project"]
    assert 12 <= q["p50_hours"] <= 48
    assert 2.5 * q["p50_hours"] <= p["p50_hours"] <= 3.5 * q["p50_hours"]
    assert p["p50"] > q["p50"] and p["p95"] > q["p95"]


async def test_too_little_history_keeps_the_default_models(client, db):
    owner = await new_user(client)
    workspace_id = await new_workspace(client, owner)
    project, a, b, c, _ = await network(client, owner, workspace_id, "automatic")
    for task in (a, b, c):
        await move(client, owner, task, "in_progress", "done")
        await set_times(db, task["id"], MONDAY, MONDAY + timedelta(days=2))
    body = await forecast(client, owner, project["id"])
    assert body["calibration"] == {"calibrated": False, "source": "default", "samples": 3}


async def test_a_done_task_sits_at_its_actual_dates(client, db):
    owner = await new_user(client)
    workspace_id = await new_workspace(client, owner)
    project = await new_project(
        client, owner, workspace_id, start_date="2026-11-02", scheduling_mode="automatic"
    )
    a = await new_task(client, owner, project["id"], title="A", estimate_hours=8)
    b = await new_task(client, owner, project["id"], title="B", estimate_hours=8)
    await link(client, owner, b, a)
    before = {t["key"]: t for t in (await schedule_of(client, owner, project["id"]))["tasks"]}
    assert before[b["key"]]["early_start"] == "2026-11-03T09:00:00.000Z"
    await move(client, owner, a, "in_progress", "done")
    # A really ran Wednesday 09:00 to Thursday 13:00 (12 working hours instead of 8)
    started = datetime(2026, 11, 4, 9, tzinfo=UTC)
    await set_times(db, a["id"], started, started + timedelta(days=1, hours=4))
    body = await schedule_of(client, owner, project["id"])
    tasks = {t["key"]: t for t in body["tasks"]}
    assert (tasks[a["key"]]["early_start"], tasks[a["key"]]["early_finish"]) == (
        "2026-11-04T09:00:00.000Z",
        "2026-11-05T13:00:00.000Z",
    )
    assert tasks[a["key"]]["duration_hours"] == 12.0
    # B follows A's actual finish
    assert tasks[b["key"]]["early_start"] == "2026-11-05T13:00:00.000Z"
    assert body["project_finish"] == "2026-11-06T13:00:00.000Z"
