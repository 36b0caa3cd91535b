"""Comments with @mentions, and the activity log per task and per project."""

from __future__ import annotations

import uuid

import pytest

from tests.utils.api import (
    add_member,
    expect,
    expect_problem,
    login,
    new_project,
    new_task,
    new_user,
    new_workspace,
    register,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def people(client):
    """Accounts are slow to make (password hashing): one set for the module."""
    return {
        "owner": await new_user(client, name="Olivia Owner"),
        "grace": await login(client, await register(client, name="Grace Hopper")),
        "alan": await login(client, await register(client, name="Alan Turing")),
        "admin": await new_user(client, name="Ada Admin"),
        "outsider": await new_user(client, name="Eve Outsider"),
    }


@pytest.fixture
async def team(client, db, people):
    """A fresh workspace per test, with the same people in it."""
    owner, grace, alan, admin = (people[k] for k in ("owner", "grace", "alan", "admin"))
    outsider = people["outsider"]
    workspace_id = await new_workspace(client, owner)
    await add_member(db, workspace_id, grace, "member")
    await add_member(db, workspace_id, alan, "member")
    await add_member(db, workspace_id, admin, "admin")
    # keys resolve across all of a caller's workspaces: one key per workspace here
    key = "T" + uuid.uuid4().hex[:6].upper()
    project = await new_project(client, owner, workspace_id, name="Talk", key=key)
    task = await new_task(client, owner, project["id"], title="Discuss")
    return {
        "owner": owner,
        "grace": grace,
        "alan": alan,
        "admin": admin,
        "outsider": outsider,
        "workspace_id": workspace_id,
        "project": project,
        "task": task,
    }


async def comment(client, user, task, body):
    return await client.post(
        f"/api/v1/tasks/{task}/comments", json={"body": body}, headers=user.headers
    )


async def test_comments_resolve_mentions_of_members_only(client, db, team):
    grace, alan, outsider = team["grace"], team["alan"], team["outsider"]
    body = (
        f'Hey @{alan.email.upper()} and @"Grace Hopper", also @GraceHopper again,\n'
        f"not @{outsider.email} nor @nobody; mail me at x@example.test. @Alan!"
    )
    response = await comment(client, grace, team["task"]["key"], body)
    created = await expect(response, 201)
    assert response.headers["Location"] == f"/api/v1/comments/{created['id']}"
    assert created["body"] == body
    assert created["mentions"] == [alan.id, grace.id]
    assert (created["author_id"], created["edited"], created["version"]) == (grace.id, False, 1)
    event = await db.outbox.find_one({"type": "comment.created", "data.comment_id": created["id"]})
    assert event["data"]["mentions"] == [alan.id, grace.id]
    assert event["data"]["task_id"] == team["task"]["id"] and event["key"] == team["project"]["id"]


async def test_list_comments_oldest_first_with_cursors(client, team):
    owner, task = team["owner"], team["task"]
    for n in range(5):
        await expect(await comment(client, owner, task["id"], f"c{n}"), 201)
    seen, cursor = [], None
    while True:
        params = {"limit": "2"}
        if cursor:
            params["cursor"] = cursor
        page = await expect(
            await client.get(
                f"/api/v1/tasks/{task['key']}/comments", params=params, headers=owner.headers
            ),
            200,
        )
        seen += [c["body"] for c in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [f"c{n}" for n in range(5)]


async def test_authors_and_admins_edit_and_delete(client, db, team):
    grace, alan, admin = team["grace"], team["alan"], team["admin"]
    created = await expect(await comment(client, grace, team["task"]["id"], "first draft"), 201)
    url = f"/api/v1/comments/{created['id']}"
    await expect_problem(
        await client.patch(url, json={"body": "hijack"}, headers=alan.headers), 403
    )
    await expect_problem(await client.delete(url, headers=alan.headers), 403)
    edited = await expect(
        await client.patch(url, json={"body": f"final, cc @{alan.email}"}, headers=grace.headers),
        200,
    )
    assert (edited["body"], edited["edited"], edited["version"], edited["mentions"]) == (
        f"final, cc @{alan.email}",
        True,
        2,
        [alan.id],
    )
    await expect_problem(
        await client.patch(url, json={"body": "x", "version": 1}, headers=grace.headers), 412
    )
    event = await db.outbox.find_one({"type": "comment.updated", "data.comment_id": created["id"]})
    assert event["data"]["new_mentions"] == [alan.id]
    moderated = await expect(
        await client.patch(url, json={"body": "moderated"}, headers=admin.headers), 200
    )
    assert moderated["body"] == "moderated"
    assert (await client.delete(url, headers=admin.headers)).status == 204
    await expect_problem(await client.patch(url, json={"body": "gone"}, headers=grace.headers), 404)
    assert (
        await db.outbox.count_documents(
            {"type": "comment.deleted", "data.comment_id": created["id"]}
        )
        == 1
    )
    own = await expect(await comment(client, grace, team["task"]["id"], "mine"), 201)
    assert (
        await client.delete(f"/api/v1/comments/{own['id']}", headers=grace.headers)
    ).status == 204


async def test_task_activity_records_who_changed_what(client, team):
    owner, grace = team["owner"], team["grace"]
    project, task = team["project"], team["task"]
    other = await new_task(client, owner, project["id"], title="Blocker")
    await expect(
        await client.patch(
            f"/api/v1/tasks/{task['id']}",
            json={"title": "Discuss more", "estimate_hours": 2, "labels": ["talk"]},
            headers=grace.headers,
        ),
        200,
    )
    await expect(
        await client.patch(
            f"/api/v1/tasks/{task['id']}", json={"status": "in_progress"}, headers=owner.headers
        ),
        200,
    )
    await expect(
        await client.post(
            f"/api/v1/tasks/{task['id']}/dependencies",
            json={"blocked_by": other["key"]},
            headers=owner.headers,
        ),
        201,
    )
    await expect(await comment(client, grace, task["id"], "noted"), 201)
    assert (
        await client.delete(
            f"/api/v1/tasks/{task['id']}/dependencies/{other['id']}", headers=owner.headers
        )
    ).status == 204
    body = await expect(
        await client.get(f"/api/v1/tasks/{task['key']}/activity", headers=owner.headers), 200
    )
    items = body["items"]
    assert [i["action"] for i in items] == [
        "dependency_removed",
        "comment_added",
        "dependency_added",
        "status_changed",
        "updated",
        "created",
    ]
    removed, commented, added, status, updated, created = items
    assert updated["actor_id"] == grace.id and status["actor_id"] == owner.id
    assert updated["changes"] == [
        {"field": "title", "before": "Discuss", "after": "Discuss more"},
        {"field": "estimate_hours", "before": None, "after": 2.0},
        {"field": "labels", "before": [], "after": ["talk"]},
    ]
    assert status["changes"] == [{"field": "status", "before": "todo", "after": "in_progress"}]
    assert (
        added["data"]["blocked_by"] == other["key"]
        and removed["data"]["blocked_by"] == other["key"]
    )
    assert commented["entity"] == "comment" and commented["task_key"] == task["key"]
    assert created["data"]["title"] == "Discuss"
    assert all(i["at"].endswith("Z") for i in items)
    blocker_side = await expect(
        await client.get(f"/api/v1/tasks/{other['id']}/activity", headers=owner.headers), 200
    )
    assert [i["action"] for i in blocker_side["items"]] == [
        "dependent_removed",
        "dependent_added",
        "created",
    ]
    page = await expect(
        await client.get(
            f"/api/v1/tasks/{task['id']}/activity", params={"limit": "4"}, headers=owner.headers
        ),
        200,
    )
    rest = await expect(
        await client.get(
            f"/api/v1/tasks/{task['id']}/activity",
            params={"limit": "4", "cursor": page["next_cursor"]},
            headers=owner.headers,
        ),
        200,
    )
    assert [i["id"] for i in page["items"] + rest["items"]] == [i["id"] for i in items]
    assert rest["next_cursor"] is None


async def test_project_activity_includes_project_and_deleted_task_entries(client, team):
    owner, project, task = team["owner"], team["project"], team["task"]
    await expect(
        await client.patch(
            f"/api/v1/projects/{project['id']}", json={"status": "paused"}, headers=owner.headers
        ),
        200,
    )
    await expect(
        await client.post(
            f"/api/v1/projects/{project['id']}/phases", json={"name": "P1"}, headers=owner.headers
        ),
        201,
    )
    assert (await client.delete(f"/api/v1/tasks/{task['id']}", headers=owner.headers)).status == 204
    body = await expect(
        await client.get(f"/api/v1/projects/{project['id']}/activity", headers=owner.headers), 200
    )
    summary = [(i["entity"], i["action"]) for i in body["items"]]
    assert summary == [
        ("task", "deleted"),
        ("phase", "created"),
        ("project", "updated"),
        ("task", "created"),
        ("project", "created"),
    ]
    assert (
        body["items"][0]["task_key"] == task["key"]
        and body["items"][0]["data"]["title"] == "Discuss"
    )
    assert body["items"][2]["changes"] == [
        {"field": "status", "before": "active", "after": "paused"}
    ]
    await expect_problem(
        await client.get(f"/api/v1/tasks/{task['id']}/activity", headers=owner.headers), 404
    )


async def test_viewers_read_comments_but_cannot_write(client, db, team):
    viewer = await new_user(client)
    await add_member(db, team["workspace_id"], viewer, "viewer")
    await expect(await comment(client, team["grace"], team["task"]["id"], "hello"), 201)
    listed = await expect(
        await client.get(f"/api/v1/tasks/{team['task']['id']}/comments", headers=viewer.headers),
        200,
    )
    assert [c["body"] for c in listed["items"]] == ["hello"]
    await expect_problem(await comment(client, viewer, team["task"]["id"], "me too"), 403)
