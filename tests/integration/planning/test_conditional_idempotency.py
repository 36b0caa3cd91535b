"""ETag / If-None-Match / If-Match on reads and writes, and Idempotency-Key on POST."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from tests.utils.api import (
    MARKDOWN,
    SAMPLE_PLAN,
    expect,
    expect_problem,
    new_project,
    new_task,
    new_user,
    with_headers,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def project(client, owner, workspace_id):
    return await new_project(client, owner, workspace_id, name="Conditional")


# --------------------------------------------------------------------------- ETags


@pytest.mark.parametrize("kind", ["project", "task", "phases"])
async def test_reads_carry_a_weak_etag_and_answer_304(client, owner, project, kind):
    task = await new_task(client, owner, project["id"])
    url = {
        "project": f"/api/v1/projects/{project['id']}",
        "task": f"/api/v1/tasks/{task['key']}",
        "phases": f"/api/v1/projects/{project['id']}/phases",
    }[kind]
    first = await client.get(url, headers=owner.headers)
    etag = first.headers["ETag"]
    assert first.status == 200 and etag.startswith('W/"')
    cached = await client.get(url, headers=with_headers(owner, **{"If-None-Match": etag}))
    assert cached.status == 304 and cached.headers["ETag"] == etag
    assert await cached.read() == b""
    listed = await client.get(
        url, headers=with_headers(owner, **{"If-None-Match": f'"nope", {etag}'})
    )
    assert listed.status == 304
    strong = await client.get(
        url, headers=with_headers(owner, **{"If-None-Match": etag.removeprefix("W/")})
    )
    assert strong.status == 304  # If-None-Match compares weakly
    other = await client.get(url, headers=with_headers(owner, **{"If-None-Match": '"other"'}))
    assert other.status == 200


async def test_etags_change_with_the_resource_and_with_derived_state(client, owner, project):
    blocker = await new_task(client, owner, project["id"], title="blocker")
    task = await new_task(client, owner, project["id"], title="task")
    await expect(
        await client.post(
            f"/api/v1/tasks/{task['id']}/dependencies",
            json={"blocked_by": blocker["id"]},
            headers=owner.headers,
        ),
        201,
    )
    etag = (await client.get(f"/api/v1/tasks/{task['id']}", headers=owner.headers)).headers["ETag"]
    # the blocker being done makes the task ready: same version, new representation
    await expect(
        await client.patch(
            f"/api/v1/tasks/{blocker['id']}", json={"status": "done"}, headers=owner.headers
        ),
        200,
    )
    fresh = await client.get(
        f"/api/v1/tasks/{task['id']}", headers=with_headers(owner, **{"If-None-Match": etag})
    )
    body = await expect(fresh, 200)
    assert body["ready"] is True and fresh.headers["ETag"] != etag
    project_etag = (
        await client.get(f"/api/v1/projects/{project['id']}", headers=owner.headers)
    ).headers["ETag"]
    await expect(
        await client.post(
            f"/api/v1/projects/{project['id']}/phases", json={"name": "New"}, headers=owner.headers
        ),
        201,
    )
    after = await client.get(
        f"/api/v1/projects/{project['id']}",
        headers=with_headers(owner, **{"If-None-Match": project_etag}),
    )
    assert after.status == 200  # phases are part of the project representation


@pytest.mark.parametrize("kind", ["project", "task"])
async def test_if_match_guards_writes(client, db, owner, project, kind):
    task = await new_task(client, owner, project["id"], title="guarded")
    url = (
        f"/api/v1/projects/{project['id']}" if kind == "project" else f"/api/v1/tasks/{task['id']}"
    )
    field = "name" if kind == "project" else "title"
    collection = db.projects if kind == "project" else db.tasks
    resource_id = project["id"] if kind == "project" else task["id"]
    etag = (await client.get(url, headers=owner.headers)).headers["ETag"]
    ok = await client.patch(
        url, json={field: "first"}, headers=with_headers(owner, **{"If-Match": etag})
    )
    await expect(ok, 200)
    stale = await client.patch(
        url, json={field: "lost"}, headers=with_headers(owner, **{"If-Match": etag})
    )
    await expect_problem(stale, 412)
    stale_body = await client.patch(url, json={field: "lost", "version": 1}, headers=owner.headers)
    await expect_problem(stale_body, 412)
    assert (await collection.find_one({"_id": resource_id}))[field] == "first"
    current = ok.headers["ETag"]
    both_disagree = await client.patch(
        url,
        json={field: "lost", "version": 1},
        headers=with_headers(owner, **{"If-Match": current}),
    )
    await expect_problem(both_disagree, 412)
    by_version = await client.patch(
        url, json={field: "second", "version": 2}, headers=owner.headers
    )
    assert (await expect(by_version, 200))["version"] == 3
    star = await client.patch(
        url, json={field: "third"}, headers=with_headers(owner, **{"If-Match": "*"})
    )
    await expect(star, 200)
    foreign = (
        await client.get(
            f"/api/v1/projects/{project['id']}"
            if kind == "task"
            else f"/api/v1/tasks/{task['id']}",
            headers=owner.headers,
        )
    ).headers["ETag"]
    await expect_problem(
        await client.patch(
            url, json={field: "x"}, headers=with_headers(owner, **{"If-Match": foreign})
        ),
        412,
    )
    await expect_problem(
        await client.delete(url, headers=with_headers(owner, **{"If-Match": etag})), 412
    )
    assert await collection.count_documents({"_id": resource_id}) == 1
    latest = (await client.get(url, headers=owner.headers)).headers["ETag"]
    assert (
        await client.delete(url, headers=with_headers(owner, **{"If-Match": latest}))
    ).status == 204


async def test_concurrent_patches_never_lose_an_update(client, db, owner, project):
    task = await new_task(client, owner, project["id"], title="hot")
    fields = [
        {"title": "hot!"},
        {"description": "desc"},
        {"estimate_hours": 4},
        {"labels": ["a"]},
        {"due_date": "2026-05-01"},
        {"complexity": "low"},
        {"status": "in_progress"},
        {"plan_ref": "H1"},
    ]
    responses = await asyncio.gather(
        *(
            client.patch(f"/api/v1/tasks/{task['id']}", json=body, headers=owner.headers)
            for body in fields
        )
    )
    assert [r.status for r in responses] == [200] * len(fields)
    final = await expect(
        await client.get(f"/api/v1/tasks/{task['id']}", headers=owner.headers), 200
    )
    for body in fields:
        for name, value in body.items():
            assert final[name] == value, name
    assert final["version"] == 1 + len(fields)
    assert await db.outbox.count_documents(
        {"type": "task.updated", "data.task_id": task["id"]}
    ) == len(fields)


async def test_concurrent_guarded_patches_let_exactly_one_win(client, owner, project):
    task = await new_task(client, owner, project["id"], title="race")
    responses = await asyncio.gather(
        *(
            client.patch(
                f"/api/v1/tasks/{task['id']}",
                json={"title": f"w{n}", "version": 1},
                headers=owner.headers,
            )
            for n in range(6)
        )
    )
    assert sorted(r.status for r in responses) == [200, 412, 412, 412, 412, 412]


# --------------------------------------------------------------------------- Idempotency-Key


async def test_a_retried_create_returns_the_first_result_and_creates_once(
    client, db, owner, workspace_id
):
    url = f"/api/v1/workspaces/{workspace_id}/projects"
    headers = with_headers(owner, **{"Idempotency-Key": "create-42"})
    first = await client.post(url, json={"name": "Once"}, headers=headers)
    body = await expect(first, 201)
    again = await client.post(url, json={"name": "Once"}, headers=headers)
    assert again.status == 201
    assert await again.json() == body
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == first.headers["Location"]
    assert await db.projects.count_documents({"workspace_id": workspace_id, "name": "Once"}) == 1
    assert await db.outbox.count_documents({"type": "project.created", "key": body["id"]}) == 1
    reordered = await client.post(
        url, data='{ "name" :"Once" }', headers={**headers, "Content-Type": "application/json"}
    )
    assert reordered.status == 201 and (await reordered.json())["id"] == body["id"]
    different = await client.post(url, json={"name": "Twice"}, headers=headers)
    await expect_problem(different, 422, "Idempotency-Key")
    other_path = await client.post(
        f"/api/v1/projects/{body['id']}/tasks", json={"title": "t"}, headers=headers
    )
    await expect(other_path, 201)  # keys are scoped per path
    intruder = await new_user(client)
    theirs = await client.post(
        "/api/v1/workspaces",
        json={"name": "Other"},
        headers=with_headers(intruder, **{"Idempotency-Key": "create-42"}),
    )
    await expect(theirs, 201)  # and per caller


async def test_import_and_task_creates_are_idempotent_too(client, db, owner, workspace_id, project):
    headers = with_headers(owner, **{"Idempotency-Key": "imp-1", **MARKDOWN})
    url = f"/api/v1/workspaces/{workspace_id}/projects/import"
    first = await expect(await client.post(url, data=SAMPLE_PLAN.encode(), headers=headers), 201)
    second = await expect(await client.post(url, data=SAMPLE_PLAN.encode(), headers=headers), 201)
    assert first == second
    assert (
        await db.projects.count_documents({"workspace_id": workspace_id, "name": "Bookshelf"}) == 1
    )
    task_headers = with_headers(owner, **{"Idempotency-Key": "task-1"})
    tasks_url = f"/api/v1/projects/{project['id']}/tasks"
    a = await expect(await client.post(tasks_url, json={"title": "x"}, headers=task_headers), 201)
    b = await expect(await client.post(tasks_url, json={"title": "x"}, headers=task_headers), 201)
    assert a == b and await db.tasks.count_documents({"project_id": project["id"]}) == 1


def record_id(user, url: str, key: str) -> str:
    return hashlib.sha256(f"{user.id}\x00POST\x00{url}\x00{key}".encode()).hexdigest()


async def test_a_duplicate_while_the_first_runs_is_409(client, db, owner, workspace_id):
    url = f"/api/v1/workspaces/{workspace_id}/projects"
    # a finished request shows how this body is fingerprinted
    probe_headers = with_headers(owner, **{"Idempotency-Key": "probe"})
    await expect(await client.post(url, json={"name": "Dup"}, headers=probe_headers), 201)
    probe = await db.idempotency_keys.find_one({"_id": record_id(owner, url, "probe")})
    assert probe["state"] == "done" and probe["expires_at"] > datetime.now(UTC) + timedelta(
        hours=23
    )
    # the claim a first request holds while its handler runs
    now = datetime.now(UTC)
    await db.idempotency_keys.insert_one(
        {
            "_id": record_id(owner, url, "in-flight"),
            "state": "running",
            "claim": "the-first-request",
            "request_hash": probe["request_hash"],
            "created_at": now,
            "locked_until": now + timedelta(minutes=5),
            "expires_at": now + timedelta(hours=24),
        }
    )
    before = await db.projects.count_documents({"workspace_id": workspace_id})
    headers = with_headers(owner, **{"Idempotency-Key": "in-flight"})
    running = await client.post(url, json={"name": "Dup"}, headers=headers)
    problem = await expect_problem(running, 409)
    assert running.headers["Retry-After"] == "1" and "in progress" in problem["detail"]
    different = await client.post(url, json={"name": "Other"}, headers=headers)
    await expect_problem(different, 422, "Idempotency-Key")
    assert await db.projects.count_documents({"workspace_id": workspace_id}) == before
    # a claim abandoned by a crashed request is taken over once its lease ran out
    await db.idempotency_keys.update_one(
        {"_id": record_id(owner, url, "in-flight")},
        {"$set": {"locked_until": now - timedelta(seconds=1)}},
    )
    await expect(await client.post(url, json={"name": "Dup"}, headers=headers), 201)
    assert await db.projects.count_documents({"workspace_id": workspace_id}) == before + 1


async def test_concurrent_duplicates_create_one_project(client, db, owner, workspace_id):
    url = f"/api/v1/workspaces/{workspace_id}/projects/import"
    headers = with_headers(owner, **{"Idempotency-Key": "race-import", **MARKDOWN})
    responses = await asyncio.gather(
        *(client.post(url, data=SAMPLE_PLAN.encode(), headers=headers) for _ in range(5))
    )
    statuses = sorted(r.status for r in responses)
    assert set(statuses) <= {201, 409} and statuses.count(201) >= 1, statuses
    created = {(await r.json())["id"] for r in responses if r.status == 201}
    assert len(created) == 1
    assert (
        await db.projects.count_documents({"workspace_id": workspace_id, "name": "Bookshelf"}) == 1
    )


async def test_failures_release_the_key_and_expired_keys_run_again(client, db, owner, workspace_id):
    url = f"/api/v1/workspaces/{workspace_id}/projects"
    headers = with_headers(owner, **{"Idempotency-Key": "fix-and-retry"})
    await new_project(client, owner, workspace_id, name="Taken", key="TKN")
    failed = await client.post(url, json={"name": "A", "key": "TKN"}, headers=headers)
    await expect_problem(failed, 409)
    fixed = await client.post(url, json={"name": "A", "key": "TKN2"}, headers=headers)
    await expect(fixed, 201)
    scope = f"{owner.id}\x00POST\x00{url}\x00fix-and-retry"
    record_id = hashlib.sha256(scope.encode()).hexdigest()
    await db.idempotency_keys.update_one(
        {"_id": record_id}, {"$set": {"expires_at": datetime.now(UTC) - timedelta(seconds=1)}}
    )
    rerun = await client.post(url, json={"name": "A", "key": "TKN2"}, headers=headers)
    await expect_problem(rerun, 409)  # it ran again: the key TKN2 is taken now


async def test_responses_with_credentials_are_not_stored(client, db, owner):
    headers = with_headers(owner, **{"Idempotency-Key": "pat-1"})
    body = {"name": "bot", "scopes": ["tasks:read"], "expires_in_days": 1}
    first = await expect(await client.post("/api/v1/tokens", json=body, headers=headers), 201)
    record = await db.idempotency_keys.find_one({"path": "/api/v1/tokens", "user_id": owner.id})
    assert (
        record["response"]["withheld"] is True and first["token"] not in record["response"]["body"]
    )
    again = await client.post("/api/v1/tokens", json=body, headers=headers)
    await expect_problem(again, 409)
    assert await db.personal_access_tokens.count_documents({"user_id": owner.id}) == 1


@pytest.mark.parametrize("key", ["", " ", "x" * 201, "tab\there", "ünïcode"])
async def test_bad_idempotency_keys_are_422(client, db, owner, workspace_id, key):
    before = await db.projects.count_documents({"workspace_id": workspace_id})
    response = await client.post(
        f"/api/v1/workspaces/{workspace_id}/projects",
        json={"name": "k"},
        headers=with_headers(owner, **{"Idempotency-Key": key}),
    )
    await expect_problem(response, 422, "Idempotency-Key")
    assert await db.projects.count_documents({"workspace_id": workspace_id}) == before
