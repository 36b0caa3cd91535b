"""Invariants under races, fired for real: parallel requests against the API on the real
stack, repeated, with the invariant checked after every round (store/quotas.py).

- A workspace always keeps an owner: two owners demoting each other, or leaving, at once.
- Limits hold under parallel creates: webhooks per workspace, tasks per project,
  attachments per task, personal access tokens per user, pending invitations per
  workspace; a removal gives its place back.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from planboard.app import create_app
from planboard.services.personal_tokens import MAX_TOKENS_PER_USER
from planboard.services.tasks import MAX_TASKS_PER_PROJECT
from planboard.services.webhooks import MAX_WEBHOOKS_PER_WORKSPACE
from planboard.services.workspaces import MAX_PENDING_INVITATIONS
from tests.integration.attachments.conftest import form
from tests.utils.api import add_member, new_project, new_task, new_user, new_workspace

pytestmark = pytest.mark.integration

ROUNDS = 10
PUBLIC_URL = "https://93.184.215.14/planboard/hook"


async def status_of(request: Awaitable[Any]) -> int:
    """Send one request and read its answer (the connection goes back to the pool)."""
    response = await request
    await response.read()
    return int(response.status)


async def statuses(*requests: Awaitable[Any]) -> list[int]:
    return list(await asyncio.gather(*(status_of(r) for r in requests)))


async def owners_of(db, workspace_id: str) -> list[str]:
    cursor = db.memberships.find({"workspace_id": workspace_id, "role": "owner"})
    return sorted([str(m["user_id"]) async for m in cursor])


async def counter(db, collection: str, parent_id: str, field: str) -> int:
    doc = await db[collection].find_one({"_id": parent_id})
    assert doc is not None
    return int(doc[field])


async def assert_owned(client, db, workspace_id: str) -> str:
    """The workspace has an owner, counted exactly, who can still manage it."""
    owners = await owners_of(db, workspace_id)
    assert owners, "the workspace was left without an owner"
    assert await counter(db, "workspaces", workspace_id, "owner_count") == len(owners)
    return owners[0]


# --- the last owner -----------------------------------------------------------------------


@pytest.fixture(scope="module")
async def people(client) -> dict[str, Any]:
    """Accounts are slow to make (password hashing): three for the module."""
    return {name: await new_user(client, name=f"Owner {name}") for name in ("a", "b", "c")}


async def test_two_owners_demoting_each_other_at_once_leave_an_owner(client, db, people) -> None:
    a, b = people["a"], people["b"]
    for _ in range(ROUNDS):
        ws = await new_workspace(client, a)
        await add_member(db, ws, b, "owner")
        members = f"/api/v1/workspaces/{ws}/members"
        done = await statuses(
            client.patch(f"{members}/{b.id}", json={"role": "admin"}, headers=a.headers),
            client.patch(f"{members}/{a.id}", json={"role": "admin"}, headers=b.headers),
        )
        # one wins; the other is the last owner now (409), or no longer an owner (403)
        assert sorted(done)[0] == 204 and sorted(done)[1] in (403, 409), done
        owner = await assert_owned(client, db, ws)
        who = a if owner == a.id else b
        assert (
            await status_of(client.delete(f"/api/v1/workspaces/{ws}", headers=who.headers)) == 204
        )


async def test_two_owners_leaving_at_once_leave_an_owner(client, db, people) -> None:
    a, b = people["a"], people["b"]
    for _ in range(ROUNDS):
        ws = await new_workspace(client, a)
        await add_member(db, ws, b, "owner")
        members = f"/api/v1/workspaces/{ws}/members"
        done = await statuses(
            client.delete(f"{members}/{a.id}", headers=a.headers),
            client.delete(f"{members}/{b.id}", headers=b.headers),
        )
        assert sorted(done) == [204, 409], done
        owner = await assert_owned(client, db, ws)
        who = a if owner == a.id else b
        assert (
            await status_of(client.delete(f"/api/v1/workspaces/{ws}", headers=who.headers)) == 204
        )


async def test_three_owners_all_stepping_down_at_once_leave_one(client, db, people) -> None:
    a, b, c = people["a"], people["b"], people["c"]
    for _ in range(ROUNDS):
        ws = await new_workspace(client, a)
        await add_member(db, ws, b, "owner")
        await add_member(db, ws, c, "owner")
        members = f"/api/v1/workspaces/{ws}/members"
        done = await statuses(
            client.patch(f"{members}/{b.id}", json={"role": "member"}, headers=a.headers),
            client.patch(f"{members}/{c.id}", json={"role": "viewer"}, headers=b.headers),
            client.delete(f"{members}/{c.id}", headers=c.headers),
            client.delete(f"{members}/{a.id}", headers=a.headers),
        )
        assert all(s in (204, 403, 404, 409) for s in done), done
        assert 204 in done
        owner = await assert_owned(client, db, ws)
        assert len(await owners_of(db, ws)) >= 1
        who = next(p for p in (a, b, c) if p.id == owner)
        rename = client.patch(
            f"/api/v1/workspaces/{ws}", json={"name": "still run"}, headers=who.headers
        )
        assert await status_of(rename) == 200


async def test_promotions_racing_a_demotion_keep_the_count_exact(client, db, people) -> None:
    """Role changes are conditional on the role read, so concurrent changes of one member
    can never count an owner twice or not at all."""
    a, b = people["a"], people["b"]
    for _ in range(ROUNDS):
        ws = await new_workspace(client, a)
        await add_member(db, ws, b, "admin")
        member = f"/api/v1/workspaces/{ws}/members/{b.id}"
        done = await statuses(
            client.patch(member, json={"role": "owner"}, headers=a.headers),
            client.patch(member, json={"role": "member"}, headers=a.headers),
            client.patch(member, json={"role": "owner"}, headers=a.headers),
            client.patch(member, json={"role": "viewer"}, headers=a.headers),
        )
        assert set(done) <= {204, 409}, done
        await assert_owned(client, db, ws)
        # whatever b ended as, a can hand over and step down exactly once
        role = (await db.memberships.find_one({"workspace_id": ws, "user_id": b.id}))["role"]
        if role != "owner":
            assert (
                await status_of(client.patch(member, json={"role": "owner"}, headers=a.headers))
                == 204
            )
        leave = client.delete(f"/api/v1/workspaces/{ws}/members/{a.id}", headers=a.headers)
        assert await status_of(leave) == 204
        assert await owners_of(db, ws) == [b.id]
        assert await counter(db, "workspaces", ws, "owner_count") == 1


# --- limits ------------------------------------------------------------------------------


async def test_parallel_webhook_creates_stop_at_the_limit(client, db) -> None:
    owner = await new_user(client)
    for _ in range(3):
        ws = await new_workspace(client, owner)
        url = f"/api/v1/workspaces/{ws}/webhooks"
        body = {"url": PUBLIC_URL, "events": ["task.created"]}
        done = await statuses(
            *(client.post(url, json=body, headers=owner.headers) for _ in range(30))
        )
        assert done.count(201) == MAX_WEBHOOKS_PER_WORKSPACE, done
        assert done.count(409) == 30 - MAX_WEBHOOKS_PER_WORKSPACE, done
        assert await db.webhooks.count_documents({"workspace_id": ws}) == 25
        assert await counter(db, "workspaces", ws, "webhook_count") == 25
    # a delete gives its place back, once
    first = await db.webhooks.find_one({"workspace_id": ws})
    gone = client.delete(f"{url}/{first['_id']}", headers=owner.headers)
    assert await status_of(gone) == 204
    again = await statuses(*(client.post(url, json=body, headers=owner.headers) for _ in range(5)))
    assert sorted(again) == [201, 409, 409, 409, 409]


async def test_parallel_task_creates_stop_at_the_project_limit(client, db) -> None:
    owner = await new_user(client)
    ws = await new_workspace(client, owner)
    for _ in range(3):
        project = await new_project(client, owner, ws)
        # as if the project held all but 5 of its tasks (the count is what is enforced)
        await db.projects.update_one(
            {"_id": project["id"]}, {"$set": {"task_count": MAX_TASKS_PER_PROJECT - 5}}
        )
        url = f"/api/v1/projects/{project['id']}/tasks"
        done = await statuses(
            *(client.post(url, json={"title": f"t{i}"}, headers=owner.headers) for i in range(30))
        )
        assert done.count(201) == 5 and done.count(422) == 25, done
        assert await db.tasks.count_documents({"project_id": project["id"]}) == 5
        counted = await counter(db, "projects", project["id"], "task_count")
        assert counted == MAX_TASKS_PER_PROJECT
    # a deleted task gives its place back; a refused bulk create takes none
    task = await db.tasks.find_one({"project_id": project["id"]})
    assert (
        await status_of(client.delete(f"/api/v1/tasks/{task['_id']}", headers=owner.headers)) == 204
    )
    bulk = client.post(
        f"{url}/bulk", json={"tasks": [{"title": "x"}, {"title": "y"}]}, headers=owner.headers
    )
    assert await status_of(bulk) == 422
    assert await status_of(client.post(url, json={"title": "fits"}, headers=owner.headers)) == 201
    assert await counter(db, "projects", project["id"], "task_count") == MAX_TASKS_PER_PROJECT


async def test_a_plan_ref_race_creates_all_or_nothing(client, db) -> None:
    """Two bulk creates racing for one plan_ref: the loser writes none of its tasks (no
    transaction on the dev server: the tasks before the duplicate are taken back) and
    gives back its count."""
    owner = await new_user(client)
    ws = await new_workspace(client, owner)
    for _ in range(ROUNDS):
        project = await new_project(client, owner, ws)
        url = f"/api/v1/projects/{project['id']}/tasks/bulk"
        ref = f"R{uuid.uuid4().hex[:6]}"
        bodies = [
            {
                "tasks": [{"title": f"{side} {i}"} for i in range(3)]
                + [{"title": side, "plan_ref": ref}]
            }
            for side in ("left", "right")
        ]
        done = await statuses(*(client.post(url, json=b, headers=owner.headers) for b in bodies))
        assert 201 in done and set(done) <= {201, 409}, done
        created = await db.tasks.count_documents({"project_id": project["id"]})
        assert created == 4 * done.count(201)
        assert await counter(db, "projects", project["id"], "task_count") == created


@pytest.fixture(scope="module")
async def four_per_task(settings, db, pipeline) -> AsyncIterator[TestClient[Any, Any]]:
    """An API instance allowing 4 attachments per task."""
    app = create_app(settings.replace(attachment_max_per_task=4))
    test_client: TestClient[Any, Any] = TestClient(TestServer(app))
    await test_client.start_server()
    yield test_client
    await test_client.close()


async def test_parallel_uploads_stop_at_the_task_limit(four_per_task, db) -> None:
    api = four_per_task
    owner = await new_user(api)
    ws = await new_workspace(api, owner)
    project = await new_project(api, owner, ws)
    for round_ in range(3):
        task = await new_task(api, owner, project["id"], title=f"files {round_}")
        url = f"/api/v1/tasks/{task['id']}/attachments"
        done = await statuses(
            *(
                api.post(url, data=form(f"note {i}\n".encode(), f"n{i}.txt"), headers=owner.headers)
                for i in range(12)
            )
        )
        assert done.count(201) == 4 and done.count(409) == 8, done
        stored = await db.attachments.count_documents({"task_id": task["id"], "state": "stored"})
        assert stored == 4
        assert await counter(db, "tasks", task["id"], "attachment_count") == 4
    # a deleted attachment, and a refused upload (bad content after the count was taken),
    # give their places back
    one = await db.attachments.find_one({"task_id": task["id"], "state": "stored"})
    gone = api.delete(f"/api/v1/attachments/{one['_id']}", headers=owner.headers)
    assert await status_of(gone) == 204
    bad = api.post(url, data=form(b"ok\n" + b"\xff" * 10, "bad.txt"), headers=owner.headers)
    assert await status_of(bad) == 415
    assert await counter(db, "tasks", task["id"], "attachment_count") == 3
    again = await statuses(
        *(api.post(url, data=form(b"x\n", f"x{i}.txt"), headers=owner.headers) for i in range(3))
    )
    assert sorted(again) == [201, 409, 409]


async def test_parallel_token_creates_stop_at_the_limit(client, db) -> None:
    user = await new_user(client)
    body = {"name": "bot", "scopes": ["tasks:read"], "expires_in_days": 1}
    done = await statuses(
        *(client.post("/api/v1/tokens", json=body, headers=user.headers) for _ in range(60))
    )
    assert done.count(201) == MAX_TOKENS_PER_USER and done.count(422) == 10, done
    assert await db.personal_access_tokens.count_documents({"user_id": user.id}) == 50
    assert await counter(db, "users", user.id, "token_count") == 50
    token = await db.personal_access_tokens.find_one({"user_id": user.id})
    path = f"/api/v1/tokens/{token['_id']}"
    assert await status_of(client.delete(path, headers=user.headers)) == 204
    assert await status_of(client.delete(path, headers=user.headers)) == 404  # given back once
    again = await statuses(
        *(client.post("/api/v1/tokens", json=body, headers=user.headers) for _ in range(3))
    )
    assert sorted(again) == [201, 422, 422]


async def test_parallel_invitations_stop_at_the_pending_limit(client, db) -> None:
    owner = await new_user(client)
    ws = await new_workspace(client, owner)
    # as if all but 3 invitations were pending (the count is what is enforced)
    await db.workspaces.update_one(
        {"_id": ws}, {"$set": {"invitation_count": MAX_PENDING_INVITATIONS - 3}}
    )
    url = f"/api/v1/workspaces/{ws}/invitations"
    done = await statuses(
        *(
            client.post(
                url,
                json={"email": f"i{i}-{uuid.uuid4().hex[:6]}@example.test", "role": "member"},
                headers=owner.headers,
            )
            for i in range(20)
        )
    )
    assert done.count(201) == 3 and done.count(422) == 17, done
    assert await db.invitations.count_documents({"workspace_id": ws}) == 3
    assert await counter(db, "workspaces", ws, "invitation_count") == MAX_PENDING_INVITATIONS
    invitation = await db.invitations.find_one({"workspace_id": ws})
    revoke = client.delete(f"{url}/{invitation['_id']}", headers=owner.headers)
    assert await status_of(revoke) == 204
    assert await counter(db, "workspaces", ws, "invitation_count") == MAX_PENDING_INVITATIONS - 1
