"""Issue 19: baselines freeze a project's schedule; compare shows what slipped."""

from __future__ import annotations

import asyncio

import pytest

from planboard.store import baselines
from tests.integration.planning.test_schedule import network
from tests.utils.api import (
    add_member,
    expect,
    expect_problem,
    new_user,
)

pytestmark = pytest.mark.integration


async def test_a_baseline_is_frozen_listed_and_compared(client, db, owner, workspace_id):
    project, a, b, _, d = await network(client, owner, workspace_id, "automatic")
    url = f"/api/v1/projects/{project['id']}/baselines"
    first = await expect(
        await client.post(url, json={"name": "Plan of record"}, headers=owner.headers), 201
    )
    assert (first["name"], first["task_count"], first["mode"]) == ("Plan of record", 4, "automatic")
    assert first["project_finish"] == "2026-11-04T17:00:00.000Z"
    # nothing moved yet
    same = await expect(
        await client.get(f"{url}/{first['id']}/compare", headers=owner.headers), 200
    )
    assert (same["slipped"], same["pulled_in"], same["unchanged"]) == ([], [], 4)
    assert same["finish_change_hours"] == 0.0
    # A slips by a day: B and the milestone D slip with it, C does not
    await expect(
        await client.patch(
            f"/api/v1/tasks/{a['id']}", json={"estimate_hours": 16}, headers=owner.headers
        ),
        200,
    )
    e = await expect(
        await client.post(
            f"/api/v1/projects/{project['id']}/tasks", json={"title": "E"}, headers=owner.headers
        ),
        201,
    )
    body = await expect(
        await client.get(f"{url}/{first['id']}/compare", headers=owner.headers), 200
    )
    assert body["baseline"]["id"] == first["id"]
    # equal slips (a day each) in schedule order
    assert [s["key"] for s in body["slipped"]] == [a["key"], b["key"], d["key"]]
    slipped = {s["key"]: s for s in body["slipped"]}
    assert slipped[b["key"]]["finish_change_hours"] == 8.0
    assert slipped[b["key"]]["finish_change_seconds"] == 86400.0
    assert slipped[a["key"]]["start_change_hours"] == 0.0
    assert body["unchanged"] == 1 and body["pulled_in"] == []
    assert body["new_tasks"] == [e["id"]] and body["removed_tasks"] == []
    assert body["baseline_finish"] == "2026-11-04T17:00:00.000Z"
    assert body["current_finish"] == "2026-11-05T17:00:00.000Z"
    assert body["finish_change_hours"] == 8.0
    second = await expect(await client.post(url, json={}, headers=owner.headers), 201)
    assert second["name"].startswith("Baseline ")
    listed = await expect(await client.get(url, params={"limit": "1"}, headers=owner.headers), 200)
    assert [x["id"] for x in listed["items"]] == [second["id"]]
    rest = await expect(
        await client.get(url, params={"cursor": listed["next_cursor"]}, headers=owner.headers),
        200,
    )
    assert [x["id"] for x in rest["items"]] == [first["id"]] and rest["next_cursor"] is None
    event = await db.outbox.find_one(
        {"type": "project.baseline_created", "data.baseline_id": second["id"]}
    )
    assert event is not None


async def test_baseline_access_and_bad_input(client, db, owner, workspace_id):
    project, *_ = await network(client, owner, workspace_id, "manual")
    url = f"/api/v1/projects/{project['id']}/baselines"
    viewer = await new_user(client)
    await add_member(db, workspace_id, viewer, "viewer")
    await expect_problem(await client.post(url, json={}, headers=viewer.headers), 403)
    stranger = await new_user(client)
    await expect_problem(await client.post(url, json={}, headers=stranger.headers), 404)
    await expect_problem(await client.get(url, headers=stranger.headers), 404)
    for body, field in (({"name": ""}, "name"), ({"name": 5}, "name"), ({"x": 1}, "x")):
        await expect_problem(await client.post(url, json=body, headers=owner.headers), 422, field)
    assert await db.baselines.count_documents({"project_id": project["id"]}) == 0
    await expect(await client.get(url, headers=viewer.headers), 200)
    await expect_problem(await client.get(f"{url}/nope/compare", headers=owner.headers), 404)
    # another project's baseline is not this project's
    other, *_ = await network(client, owner, workspace_id, "manual")
    theirs = await expect(
        await client.post(
            f"/api/v1/projects/{other['id']}/baselines", json={}, headers=owner.headers
        ),
        201,
    )
    await expect_problem(
        await client.get(f"{url}/{theirs['id']}/compare", headers=owner.headers), 404
    )


async def test_the_baseline_limit_holds_under_concurrency(client, db, owner, workspace_id):
    project, *_ = await network(client, owner, workspace_id, "manual")
    url = f"/api/v1/projects/{project['id']}/baselines"
    await db.projects.update_one(
        {"_id": project["id"]}, {"$set": {"baseline_count": baselines.MAX_PER_PROJECT - 3}}
    )
    answers = await asyncio.gather(
        *(client.post(url, json={}, headers=owner.headers) for _ in range(8))
    )
    assert sorted(r.status for r in answers) == [201] * 3 + [409] * 5
    assert await db.baselines.count_documents({"project_id": project["id"]}) == 3
