"""Tenancy and roles: another workspace's resources are 404 on every verb; viewers read
but never write (403); a personal access token needs the scope (403 without)."""

from __future__ import annotations

import pytest

from tests.utils.api import (
    MARKDOWN,
    SAMPLE_PLAN,
    add_member,
    by_ref,
    expect,
    expect_problem,
    import_plan,
    new_pat,
    new_user,
    new_workspace,
)

pytestmark = pytest.mark.integration

# (method, path, body, scope, least role); {w} {p} {ph} {t} {b} {c} are filled per world
ENDPOINTS = [
    ("GET", "/api/v1/workspaces/{w}/projects", None, "projects:read", "viewer"),
    ("POST", "/api/v1/workspaces/{w}/projects", {"name": "x"}, "projects:write", "member"),
    ("POST", "/api/v1/workspaces/{w}/projects/import", "markdown", "projects:write", "member"),
    ("GET", "/api/v1/projects/{p}", None, "projects:read", "viewer"),
    ("PATCH", "/api/v1/projects/{p}", {"name": "x"}, "projects:write", "admin"),
    ("DELETE", "/api/v1/projects/{p}", None, "projects:write", "admin"),
    ("GET", "/api/v1/projects/{p}/phases", None, "projects:read", "viewer"),
    ("POST", "/api/v1/projects/{p}/phases", {"name": "x"}, "projects:write", "admin"),
    ("PATCH", "/api/v1/projects/{p}/phases/{ph}", {"name": "x"}, "projects:write", "admin"),
    ("DELETE", "/api/v1/projects/{p}/phases/{ph}", None, "projects:write", "admin"),
    ("GET", "/api/v1/projects/{p}/progress", None, "projects:read", "viewer"),
    ("GET", "/api/v1/projects/{p}/export", None, "projects:read", "viewer"),
    ("GET", "/api/v1/projects/{p}/activity", None, "projects:read", "viewer"),
    ("GET", "/api/v1/projects/{p}/tasks", None, "tasks:read", "viewer"),
    ("POST", "/api/v1/projects/{p}/tasks", {"title": "x"}, "tasks:write", "member"),
    (
        "POST",
        "/api/v1/projects/{p}/tasks/bulk",
        {"tasks": [{"title": "x"}]},
        "tasks:write",
        "member",
    ),
    (
        "POST",
        "/api/v1/projects/{p}/tasks/bulk-status",
        {"task_ids": ["{t}"], "status": "done"},
        "tasks:write",
        "member",
    ),
    ("GET", "/api/v1/tasks/{t}", None, "tasks:read", "viewer"),
    ("GET", "/api/v1/tasks/{tk}", None, "tasks:read", "viewer"),
    ("PATCH", "/api/v1/tasks/{t}", {"title": "x"}, "tasks:write", "member"),
    ("PATCH", "/api/v1/tasks/{tk}", {"title": "x"}, "tasks:write", "member"),
    ("DELETE", "/api/v1/tasks/{t}", None, "tasks:write", "member"),
    ("GET", "/api/v1/tasks/{t}/dependencies", None, "tasks:read", "viewer"),
    ("POST", "/api/v1/tasks/{t}/dependencies", {"blocked_by": "{b}"}, "tasks:write", "member"),
    ("DELETE", "/api/v1/tasks/{d}/dependencies/{b}", None, "tasks:write", "member"),
    ("GET", "/api/v1/tasks/{t}/activity", None, "tasks:read", "viewer"),
    ("GET", "/api/v1/tasks/{t}/comments", None, "comments:read", "viewer"),
    ("POST", "/api/v1/tasks/{t}/comments", {"body": "x"}, "comments:write", "member"),
    ("PATCH", "/api/v1/comments/{c}", {"body": "x"}, "comments:write", "member"),
    ("DELETE", "/api/v1/comments/{c}", None, "comments:write", "member"),
]
IDS = [f"{m} {p}" for m, p, *_ in ENDPOINTS]


@pytest.fixture(scope="module")
async def world(client):
    """Alice's workspace with a project, a phase, tasks, a dependency and a comment."""
    alice = await new_user(client)
    workspace_id = await new_workspace(client, alice)
    project = await import_plan(client, alice, workspace_id, key="ISO")
    tasks = await by_ref(client, alice, project["id"])
    comment = await expect(
        await client.post(
            f"/api/v1/tasks/{tasks['T2.1']['id']}/comments",
            json={"body": "mine"},
            headers=alice.headers,
        ),
        201,
    )
    return {
        "alice": alice,
        "w": workspace_id,
        "p": project["id"],
        "ph": project["phases"][0]["id"],
        "t": tasks["T2.1"]["id"],
        "tk": tasks["T2.1"]["key"],
        "b": tasks["T1.1"]["id"],
        "d": tasks["T1.2"]["id"],  # T1.2 is blocked by T1.1
        "c": comment["id"],
    }


def fill(value, world):
    if isinstance(value, str):
        for name in ("ph", "tk", "w", "p", "t", "b", "d", "c"):
            value = value.replace("{" + name + "}", world[name])
        return value
    if isinstance(value, list):
        return [fill(v, world) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, world) for k, v in value.items()}
    return value


async def call(client, headers, world, method, path, body):
    url = fill(path, world)
    if body == "markdown":
        return await client.request(
            method, url, data=SAMPLE_PLAN.encode(), headers={**headers, **MARKDOWN}
        )
    return await client.request(method, url, json=fill(body, world), headers=headers)


async def snapshot(db, workspace_id):
    state = {}
    for name in ("projects", "tasks", "comments", "activity"):
        state[name] = sorted(
            [doc async for doc in db[name].find({"workspace_id": workspace_id})],
            key=lambda d: d["_id"],
        )
    state["memberships"] = [d async for d in db.memberships.find({"workspace_id": workspace_id})]
    return state


@pytest.fixture(scope="module")
async def mallory(client):
    mallory = await new_user(client)
    await new_workspace(client, mallory, "Mallory's")
    return mallory


@pytest.mark.parametrize(("method", "path", "body", "scope", "role"), ENDPOINTS, ids=IDS)
async def test_another_workspace_is_404_on_every_verb(
    client, db, world, mallory, method, path, body, scope, role
):
    before = await snapshot(db, world["w"])
    response = await call(client, mallory.headers, world, method, path, body)
    await expect_problem(response, 404)
    assert await snapshot(db, world["w"]) == before


@pytest.mark.parametrize(("method", "path", "body", "scope", "role"), ENDPOINTS, ids=IDS)
async def test_viewers_read_and_never_write(client, db, world, method, path, body, scope, role):
    viewer = await new_user(client)
    await add_member(db, world["w"], viewer, "viewer")
    before = await snapshot(db, world["w"])
    response = await call(client, viewer.headers, world, method, path, body)
    if role == "viewer":
        assert response.status == 200, await response.text()
    else:
        await expect_problem(response, 403)
        after = await snapshot(db, world["w"])
        assert {k: v for k, v in after.items() if k != "memberships"} == {
            k: v for k, v in before.items() if k != "memberships"
        }


@pytest.mark.parametrize(("method", "path", "body", "scope", "role"), ENDPOINTS, ids=IDS)
async def test_tokens_need_the_scope(client, db, world, method, path, body, scope, role):
    alice = world["alice"]
    area = scope.split(":")[0]
    unrelated = "webhooks:write" if area != "webhooks" else "members:read"
    lacking = [unrelated, f"{area}:read"] if scope.endswith(":write") else [unrelated]
    before = await snapshot(db, world["w"])
    response = await call(client, await new_pat(client, alice, lacking), world, method, path, body)
    problem = await expect_problem(response, 403)
    assert scope in problem["detail"]
    assert await snapshot(db, world["w"]) == before


async def test_a_token_with_the_scope_works(client, world):
    alice = world["alice"]
    headers = await new_pat(client, alice, ["tasks:write"])  # write implies read
    await expect(await client.get(f"/api/v1/tasks/{world['tk']}", headers=headers), 200)
    await expect(await client.get(f"/api/v1/projects/{world['p']}/tasks", headers=headers), 200)
    await expect_problem(await client.get(f"/api/v1/projects/{world['p']}", headers=headers), 403)


async def test_keys_resolve_only_in_the_callers_workspaces(client, world, mallory):
    # Mallory has her own ISO project: ISO-4 is hers, never Alice's
    own = await import_plan(
        client, mallory, (await new_workspace(client, mallory, "M2")), key="ISO"
    )
    got = await expect(
        await client.get(f"/api/v1/tasks/{world['tk']}", headers=mallory.headers), 200
    )
    assert got["project_id"] == own["id"]
    assert got["id"] != world["t"]


async def test_unauthenticated_calls_are_401(client, world):
    response = await client.get(f"/api/v1/projects/{world['p']}")
    await expect_problem(response, 401)
    response = await client.post(f"/api/v1/projects/{world['p']}/tasks", json={"title": "x"})
    await expect_problem(response, 401)
