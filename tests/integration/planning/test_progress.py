"""GET /projects/{id}/progress: the SPEC §7 answer for the sample plan, and how it moves."""

from __future__ import annotations

import pytest

from tests.utils.api import (
    by_ref,
    expect,
    import_plan,
    new_project,
    new_task,
    new_user,
    new_workspace,
)

pytestmark = pytest.mark.integration


async def progress_of(client, user, project_id):
    return await expect(
        await client.get(f"/api/v1/projects/{project_id}/progress", headers=user.headers), 200
    )


async def test_sample_plan_progress_is_exactly_the_spec_answer(client) -> None:
    user = await new_user(client)
    workspace_id = await new_workspace(client, user)
    project = await import_plan(client, user, workspace_id)
    body = await progress_of(client, user, project["id"])
    tasks = await by_ref(client, user, project["id"])
    focus = tasks["T1.3"]
    assert body == {
        "total": 5,
        "completed": 2,
        "in_progress": 1,
        "blocked": 1,
        "percent": 40,
        "remaining_estimate_hours": 16.0,
        "critical_path": ["T1.3", "T2.2"],
        "critical_path_hours": 12.0,
        "phases": [
            {"name": "Phase 1: Foundation", "total": 3, "completed": 2, "percent": 66},
            {"name": "Phase 2: Core API", "total": 2, "completed": 0, "percent": 0},
        ],
        "current_focus": [
            {"id": focus["id"], "key": focus["key"], "plan_ref": "T1.3", "title": focus["title"]}
        ],
    }
    assert list(body) == [
        "total",
        "completed",
        "in_progress",
        "blocked",
        "percent",
        "remaining_estimate_hours",
        "critical_path",
        "critical_path_hours",
        "phases",
        "current_focus",
    ]


async def test_progress_follows_status_changes_and_cancelled_tasks_do_not_count(client) -> None:
    user = await new_user(client)
    workspace_id = await new_workspace(client, user)
    project = await import_plan(client, user, workspace_id)
    tasks = await by_ref(client, user, project["id"])
    await expect(
        await client.patch(
            f"/api/v1/tasks/{tasks['T1.3']['key']}", json={"status": "done"}, headers=user.headers
        ),
        200,
    )
    await expect(
        await client.patch(
            f"/api/v1/tasks/{tasks['T2.2']['id']}",
            json={"status": "cancelled"},
            headers=user.headers,
        ),
        200,
    )
    body = await progress_of(client, user, project["id"])
    assert (body["total"], body["completed"], body["in_progress"], body["blocked"]) == (4, 3, 0, 0)
    assert body["percent"] == 75
    assert body["remaining_estimate_hours"] == 4.0
    assert body["critical_path"] == ["T2.1"]
    assert body["current_focus"] == []
    assert body["phases"][0] == {
        "name": "Phase 1: Foundation",
        "total": 3,
        "completed": 3,
        "percent": 100,
    }


async def test_tasks_without_plan_ref_are_named_by_key_on_the_critical_path(client) -> None:
    user = await new_user(client)
    workspace_id = await new_workspace(client, user)
    project = await new_project(client, user, workspace_id, name="Empty", key="EMP")
    empty = await progress_of(client, user, project["id"])
    assert empty["total"] == 0 and empty["percent"] == 0 and empty["critical_path"] == []
    first = await new_task(client, user, project["id"], title="a", estimate_hours=2)
    second = await new_task(client, user, project["id"], title="b", estimate_hours=3)
    await expect(
        await client.post(
            f"/api/v1/tasks/{second['id']}/dependencies",
            json={"blocked_by": first["key"]},
            headers=user.headers,
        ),
        201,
    )
    body = await progress_of(client, user, project["id"])
    assert body["critical_path"] == ["EMP-1", "EMP-2"]
    assert body["critical_path_hours"] == 5.0
