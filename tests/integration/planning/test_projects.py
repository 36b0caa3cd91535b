"""Projects and phases: create, read, list, update, delete (cascade), events and roles."""

from __future__ import annotations

import asyncio

import pytest

from tests.utils.api import (
    add_member,
    expect,
    expect_problem,
    import_plan,
    new_project,
    new_task,
    new_user,
    new_workspace,
)

pytestmark = pytest.mark.integration


async def events_of(db, project_id: str) -> list[dict]:
    return [e async for e in db.outbox.find({"key": project_id}).sort("occurred_at", 1)]


async def test_create_derives_a_key_and_answers_the_project(client, db, owner, workspace_id):
    response = await client.post(
        f"/api/v1/workspaces/{workspace_id}/projects",
        json={"name": "Plan Board", "description": "# Big\n\nplans", "start_date": "2026-01-01"},
        headers=owner.headers,
    )
    body = await expect(response, 201)
    assert body["key"] == "PB"
    assert response.headers["Location"] == f"/api/v1/projects/{body['id']}"
    assert response.headers["ETag"].startswith('W/"')
    assert {"id", "key", "name", "description", "workspace_id"} <= set(body)
    assert body["workspace_id"] == workspace_id
    assert body["description"] == "# Big\n\nplans"
    assert (body["status"], body["start_date"], body["target_date"]) == (
        "active",
        "2026-01-01",
        None,
    )
    assert body["phases"] == [] and body["version"] == 1 and body["created_by"] == owner.id
    again = await new_project(client, owner, workspace_id, name="Plan Board")
    assert again["key"] == "PB2"  # derived keys never clash
    stored = await db.projects.find_one({"_id": body["id"]})
    assert stored["graph_version"] == 0 and stored["name_sort"] == "n:plan board"
    assert [e["type"] for e in await events_of(db, body["id"])] == ["project.created"]


async def test_explicit_keys_are_upper_cased_and_unique_per_workspace(
    client, db, owner, workspace_id
):
    project = await new_project(client, owner, workspace_id, name="Alpha", key="alp1")
    assert project["key"] == "ALP1"
    response = await client.post(
        f"/api/v1/workspaces/{workspace_id}/projects",
        json={"name": "Other", "key": "ALP1"},
        headers=owner.headers,
    )
    await expect_problem(response, 409)
    assert await db.projects.count_documents({"workspace_id": workspace_id}) == 1
    other_workspace = await new_workspace(client, owner, "Second")
    assert (await new_project(client, owner, other_workspace, name="x", key="ALP1"))[
        "key"
    ] == "ALP1"


async def test_concurrent_creates_with_the_same_key_make_one_project(
    client, db, owner, workspace_id
):
    responses = await asyncio.gather(
        *(
            client.post(
                f"/api/v1/workspaces/{workspace_id}/projects",
                json={"name": f"Race {n}", "key": "RACE"},
                headers=owner.headers,
            )
            for n in range(6)
        )
    )
    assert sorted(r.status for r in responses) == [201, 409, 409, 409, 409, 409]
    assert await db.projects.count_documents({"workspace_id": workspace_id, "key": "RACE"}) == 1


async def test_get_and_patch_a_project(client, db, owner, workspace_id):
    project = await new_project(client, owner, workspace_id, name="Gamma")
    got = await expect(
        await client.get(f"/api/v1/projects/{project['id']}", headers=owner.headers), 200
    )
    assert got == project
    response = await client.patch(
        f"/api/v1/projects/{project['id']}",
        json={"name": "Gamma 2", "status": "paused", "target_date": "2026-12-31"},
        headers=owner.headers,
    )
    body = await expect(response, 200)
    assert (body["name"], body["status"], body["target_date"], body["version"]) == (
        "Gamma 2",
        "paused",
        "2026-12-31",
        2,
    )
    assert body["key"] == project["key"]  # keys never change
    # a no-op patch changes nothing, not even the version
    same = await expect(
        await client.patch(
            f"/api/v1/projects/{project['id']}", json={"name": "Gamma 2"}, headers=owner.headers
        ),
        200,
    )
    assert same["version"] == 2
    updated = [e for e in await events_of(db, project["id"]) if e["type"] == "project.updated"]
    assert len(updated) == 1
    assert updated[0]["data"]["changes"] == {
        "name": ["Gamma", "Gamma 2"],
        "status": ["active", "paused"],
        "target_date": [None, "2026-12-31"],
    }
    bad = await client.patch(
        f"/api/v1/projects/{project['id']}",
        json={"start_date": "2027-01-01"},
        headers=owner.headers,
    )
    await expect_problem(bad, 422, "target_date")


async def test_delete_cascades_tasks_comments_and_activity(client, db, owner, workspace_id):
    project = await import_plan(client, owner, workspace_id, key="DEL")
    task = await new_task(client, owner, project["id"], title="with a comment")
    await expect(
        await client.post(
            f"/api/v1/tasks/{task['id']}/comments", json={"body": "hi"}, headers=owner.headers
        ),
        201,
    )
    keep = await import_plan(client, owner, workspace_id, key="KEEP")
    assert await db.tasks.count_documents({"project_id": project["id"]}) == 6
    response = await client.delete(f"/api/v1/projects/{project['id']}", headers=owner.headers)
    assert response.status == 204
    for collection in ("tasks", "comments", "activity"):
        assert await db[collection].count_documents({"project_id": project["id"]}) == 0
    assert await db.projects.count_documents({"_id": project["id"]}) == 0
    assert await db.tasks.count_documents({"project_id": keep["id"]}) == 5
    assert (
        await client.get(f"/api/v1/projects/{project['id']}", headers=owner.headers)
    ).status == 404
    assert (await client.get(f"/api/v1/tasks/{task['id']}", headers=owner.headers)).status == 404
    assert (await client.get("/api/v1/tasks/DEL-1", headers=owner.headers)).status == 404
    deleted = [e for e in await events_of(db, project["id"]) if e["type"] == "project.deleted"]
    assert deleted and deleted[0]["data"]["project_id"] == project["id"]
    again = await client.delete(f"/api/v1/projects/{project['id']}", headers=owner.headers)
    await expect_problem(again, 404)


async def test_list_projects_paginates_filters_and_sorts(client, owner, workspace_id):
    names = ["delta", "Alpha", "charlie", "Bravo", "echo"]
    created = [await new_project(client, owner, workspace_id, name=n) for n in names]
    await expect(
        await client.patch(
            f"/api/v1/projects/{created[1]['id']}",
            json={"status": "archived"},
            headers=owner.headers,
        ),
        200,
    )
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", "sort": "name"}
        if cursor:
            params["cursor"] = cursor
        body = await expect(
            await client.get(
                f"/api/v1/workspaces/{workspace_id}/projects", params=params, headers=owner.headers
            ),
            200,
        )
        assert len(body["items"]) <= 2
        seen += [p["name"] for p in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == ["Alpha", "Bravo", "charlie", "delta", "echo"]  # case-insensitive
    newest = await expect(
        await client.get(f"/api/v1/workspaces/{workspace_id}/projects", headers=owner.headers), 200
    )
    assert [p["name"] for p in newest["items"]] == list(reversed(names))
    archived = await expect(
        await client.get(
            f"/api/v1/workspaces/{workspace_id}/projects",
            params={"status": "archived"},
            headers=owner.headers,
        ),
        200,
    )
    assert [p["name"] for p in archived["items"]] == ["Alpha"]
    several = await expect(
        await client.get(
            f"/api/v1/workspaces/{workspace_id}/projects",
            params=[("status", "archived"), ("status", "active"), ("sort", "-key")],
            headers=owner.headers,
        ),
        200,
    )
    assert [p["key"] for p in several["items"]] == sorted((p["key"] for p in created), reverse=True)
    first = await expect(
        await client.get(
            f"/api/v1/workspaces/{workspace_id}/projects",
            params={"limit": "1"},
            headers=owner.headers,
        ),
        200,
    )
    reused = await client.get(
        f"/api/v1/workspaces/{workspace_id}/projects",
        params={"limit": "1", "sort": "name", "cursor": first["next_cursor"]},
        headers=owner.headers,
    )
    await expect_problem(reused, 422, "cursor")


async def test_phases_are_ordered_unique_and_moved_with_their_tasks(
    client, db, owner, workspace_id
):
    project = await new_project(client, owner, workspace_id, name="Phased")
    base = f"/api/v1/projects/{project['id']}/phases"

    async def add(**body):
        return await expect(await client.post(base, json=body, headers=owner.headers), 201)

    design = await add(name="Design", estimate_hours=10)
    build = await add(name="Build")
    first = await add(name="Discovery", position=0, estimate_hours=2.5)
    listed = await expect(await client.get(base, headers=owner.headers), 200)
    assert [(p["name"], p["position"]) for p in listed["items"]] == [
        ("Discovery", 0),
        ("Design", 1),
        ("Build", 2),
    ]
    assert listed["items"][0]["estimate_hours"] == 2.5 and listed["items"][0]["task_count"] == 0
    await expect_problem(
        await client.post(base, json={"name": "design"}, headers=owner.headers), 409
    )
    moved = await expect(
        await client.patch(
            f"{base}/{build['id']}",
            json={"position": 0, "estimate_hours": 8},
            headers=owner.headers,
        ),
        200,
    )
    assert (moved["position"], moved["estimate_hours"]) == (0, 8.0)
    renamed = await client.patch(
        f"{base}/{build['id']}", json={"name": "Discovery"}, headers=owner.headers
    )
    await expect_problem(renamed, 409)
    listed = await expect(await client.get(base, headers=owner.headers), 200)
    assert [p["name"] for p in listed["items"]] == ["Build", "Discovery", "Design"]
    project_view = await expect(
        await client.get(f"/api/v1/projects/{project['id']}", headers=owner.headers), 200
    )
    assert [p["name"] for p in project_view["phases"]] == ["Build", "Discovery", "Design"]

    task = await new_task(client, owner, project["id"], title="t", phase="Design")
    assert (task["phase"], task["phase_id"]) == ("Design", design["id"])
    blocked = await client.delete(f"{base}/{design['id']}", headers=owner.headers)
    await expect_problem(blocked, 409)
    bad_target = await client.delete(
        f"{base}/{design['id']}", params={"move_to": design["id"]}, headers=owner.headers
    )
    await expect_problem(bad_target, 422, "move_to")
    response = await client.delete(
        f"{base}/{design['id']}", params={"move_to": first["id"]}, headers=owner.headers
    )
    assert response.status == 204
    moved_task = await expect(
        await client.get(f"/api/v1/tasks/{task['id']}", headers=owner.headers), 200
    )
    assert (moved_task["phase"], moved_task["version"]) == ("Discovery", 2)
    listed = await expect(await client.get(base, headers=owner.headers), 200)
    assert [(p["name"], p["position"], p["task_count"]) for p in listed["items"]] == [
        ("Build", 0, 0),
        ("Discovery", 1, 1),
    ]
    assert (await client.delete(f"{base}/{build['id']}", headers=owner.headers)).status == 204
    await expect_problem(await client.delete(f"{base}/{build['id']}", headers=owner.headers), 404)
    kinds = [e["type"] async for e in db.outbox.find({"key": project["id"], "family": "project"})]
    assert {"project.phase_created", "project.phase_updated", "project.phase_deleted"} <= set(kinds)


async def test_concurrent_phase_creates_all_land(client, owner, workspace_id):
    project = await new_project(client, owner, workspace_id, name="Many phases")
    base = f"/api/v1/projects/{project['id']}/phases"
    responses = await asyncio.gather(
        *(client.post(base, json={"name": f"P{n}"}, headers=owner.headers) for n in range(8))
    )
    assert [r.status for r in responses] == [201] * 8
    listed = await expect(await client.get(base, headers=owner.headers), 200)
    assert sorted(p["name"] for p in listed["items"]) == [f"P{n}" for n in range(8)]
    assert sorted(p["position"] for p in listed["items"]) == list(range(8))


async def test_members_create_projects_but_only_admins_or_creators_manage_them(
    client, db, owner, workspace_id
):
    member, other, admin = await new_user(client), await new_user(client), await new_user(client)
    await add_member(db, workspace_id, member, "member")
    await add_member(db, workspace_id, other, "member")
    await add_member(db, workspace_id, admin, "admin")
    mine = await new_project(client, member, workspace_id, name="Member made")
    await expect(
        await client.patch(
            f"/api/v1/projects/{mine['id']}", json={"name": "ok"}, headers=member.headers
        ),
        200,
    )
    await expect(
        await client.post(
            f"/api/v1/projects/{mine['id']}/phases", json={"name": "P"}, headers=member.headers
        ),
        201,
    )
    denied = await client.patch(
        f"/api/v1/projects/{mine['id']}", json={"name": "no"}, headers=other.headers
    )
    await expect_problem(denied, 403)
    denied = await client.post(
        f"/api/v1/projects/{mine['id']}/phases", json={"name": "Q"}, headers=other.headers
    )
    await expect_problem(denied, 403)
    await expect_problem(
        await client.delete(f"/api/v1/projects/{mine['id']}", headers=other.headers), 403
    )
    await expect(
        await client.patch(
            f"/api/v1/projects/{mine['id']}", json={"name": "admin"}, headers=admin.headers
        ),
        200,
    )
    assert (
        await client.delete(f"/api/v1/projects/{mine['id']}", headers=admin.headers)
    ).status == 204
