"""Tasks: create (one and in bulk), read by id or key, update, delete, bulk status."""

from __future__ import annotations

import asyncio

import pytest

from planboard.services import tasks as task_service
from planboard.services.activity import Actor
from planboard.services.context import ServiceContext
from planboard.store import projects as projects_store
from tests.utils.api import (
    add_member,
    by_ref,
    expect,
    expect_problem,
    import_plan,
    new_project,
    new_task,
    new_user,
    new_workspace,
)

pytestmark = pytest.mark.integration

SPEC_FIELDS = {
    "id",
    "key",
    "project_id",
    "plan_ref",
    "title",
    "status",
    "complexity",
    "estimate_hours",
    "phase",
    "blocked_by",
    "ready",
    "version",
}


@pytest.fixture
async def project(client, owner, workspace_id):
    project = await new_project(client, owner, workspace_id, name="Tasks", key="TSK")
    for name in ("Design", "Build"):
        await expect(
            await client.post(
                f"/api/v1/projects/{project['id']}/phases",
                json={"name": name},
                headers=owner.headers,
            ),
            201,
        )
    return project


async def test_create_a_task_with_every_field(client, db, owner, workspace_id, project):
    mate = await new_user(client)
    await add_member(db, workspace_id, mate, "member")
    body = {
        "title": "  Write the API  ",
        "description": "## Notes\n\n- markdown *kept*\n",
        "checklist": [{"text": "spec", "done": True}, {"text": "code"}],
        "status": "in_progress",
        "complexity": "high",
        "estimate_hours": 6.5,
        "assignee_id": mate.id,
        "labels": ["api", "backend", "api"],
        "due_date": "2026-11-30",
        "phase": "Build",
        "plan_ref": "T9.1",
    }
    response = await client.post(
        f"/api/v1/projects/{project['id']}/tasks", json=body, headers=owner.headers
    )
    task = await expect(response, 201)
    assert set(task) >= SPEC_FIELDS
    assert response.headers["Location"] == f"/api/v1/tasks/{task['id']}"
    assert task["key"] == "TSK-1" and task["title"] == "Write the API"
    assert task["description"] == "## Notes\n\n- markdown *kept*"
    assert task["checklist"] == [{"text": "spec", "done": True}, {"text": "code", "done": False}]
    assert (task["status"], task["complexity"], task["estimate_hours"]) == (
        "in_progress",
        "high",
        6.5,
    )
    assert (task["assignee_id"], task["labels"], task["due_date"]) == (
        mate.id,
        ["api", "backend"],
        "2026-11-30",
    )
    assert task["phase"] == "Build" and task["phase_id"]
    assert (task["plan_ref"], task["blocked_by"], task["blocks"], task["blocked_by_open"]) == (
        "T9.1",
        [],
        [],
        [],
    )
    assert (task["ready"], task["version"], task["workspace_id"]) == (True, 1, workspace_id)
    minimal = await new_task(client, owner, project["id"], title="Minimal")
    assert (minimal["key"], minimal["status"], minimal["phase"], minimal["plan_ref"]) == (
        "TSK-2",
        "todo",
        None,
        None,
    )
    stored = await db.tasks.find_one({"_id": minimal["id"]})
    assert "plan_ref" not in stored  # absent, never null (partial unique index)
    event = await db.outbox.find_one({"type": "task.created", "data.task_id": task["id"]})
    assert event["key"] == project["id"] and event["data"]["key"] == "TSK-1"


async def test_keys_are_allocated_atomically(client, db, owner, project):
    responses = await asyncio.gather(
        *(
            client.post(
                f"/api/v1/projects/{project['id']}/tasks",
                json={"title": f"t{n}"},
                headers=owner.headers,
            )
            for n in range(20)
        )
    )
    keys = [(await expect(r, 201))["key"] for r in responses]
    assert sorted(keys, key=lambda k: int(k.split("-")[1])) == [f"TSK-{n}" for n in range(1, 21)]


async def test_read_by_id_or_key_in_any_case(client, owner, project):
    task = await new_task(client, owner, project["id"], title="find me")
    for ref in (task["id"], task["key"], task["key"].lower()):
        got = await expect(await client.get(f"/api/v1/tasks/{ref}", headers=owner.headers), 200)
        assert got["id"] == task["id"]
    sparse = await expect(
        await client.get(
            f"/api/v1/tasks/{task['key']}", params={"fields": "title,status"}, headers=owner.headers
        ),
        200,
    )
    assert sparse == {"id": task["id"], "title": "find me", "status": "todo"}
    await expect_problem(await client.get("/api/v1/tasks/TSK-999", headers=owner.headers), 404)
    await expect_problem(
        await client.get("/api/v1/tasks/ffffffffffffffffffffffff", headers=owner.headers), 404
    )


async def test_assignees_must_be_members_of_the_workspace(client, db, owner, project):
    stranger = await new_user(client)
    response = await client.post(
        f"/api/v1/projects/{project['id']}/tasks",
        json={"title": "x", "assignee_id": stranger.id},
        headers=owner.headers,
    )
    await expect_problem(response, 422, "assignee_id")
    assert await db.tasks.count_documents({"project_id": project["id"]}) == 0
    mine = await new_task(client, owner, project["id"], assignee_id=owner.id)
    assert mine["assignee_id"] == owner.id


async def test_patch_changes_fields_records_changes_and_bumps_the_version(
    client, db, owner, project
):
    task = await new_task(
        client, owner, project["id"], title="Old", phase="Design", estimate_hours=2
    )
    response = await client.patch(
        f"/api/v1/tasks/{task['key']}",
        json={
            "title": "New",
            "phase": "Build",
            "estimate_hours": None,
            "labels": ["x"],
            "checklist": [{"text": "one"}],
            "plan_ref": "R1",
        },
        headers=owner.headers,
    )
    body = await expect(response, 200)
    assert (body["title"], body["phase"], body["estimate_hours"], body["labels"]) == (
        "New",
        "Build",
        None,
        ["x"],
    )
    assert (body["plan_ref"], body["version"]) == ("R1", 2)
    assert response.headers["ETag"]
    event = await db.outbox.find_one({"type": "task.updated", "data.task_id": task["id"]})
    assert event["data"]["changes"] == {
        "title": ["Old", "New"],
        "checklist": [[], [{"text": "one", "done": False}]],
        "estimate_hours": [2.0, None],
        "labels": [[], ["x"]],
        "plan_ref": [None, "R1"],
        "phase": ["Design", "Build"],
    }
    other = await new_task(client, owner, project["id"], title="Other")
    clash = await client.patch(
        f"/api/v1/tasks/{other['id']}", json={"plan_ref": "R1"}, headers=owner.headers
    )
    await expect_problem(clash, 422, "plan_ref")
    cleared = await expect(
        await client.patch(
            f"/api/v1/tasks/{task['id']}",
            json={"plan_ref": None, "phase": None},
            headers=owner.headers,
        ),
        200,
    )
    assert (cleared["plan_ref"], cleared["phase"], cleared["phase_id"]) == (None, None, None)
    assert "plan_ref" not in await db.tasks.find_one({"_id": task["id"]})
    reused = await expect(
        await client.patch(
            f"/api/v1/tasks/{other['id']}", json={"plan_ref": "R1"}, headers=owner.headers
        ),
        200,
    )
    assert reused["plan_ref"] == "R1"


async def test_delete_removes_edges_on_both_sides_and_comments(client, db, owner, workspace_id):
    project = await import_plan(client, owner, workspace_id, key="DLT")
    tasks = await by_ref(client, owner, project["id"])
    middle = tasks["T1.2"]  # blocked by T1.1; blocks T1.3 and T2.1
    await expect(
        await client.post(
            f"/api/v1/tasks/{middle['id']}/comments", json={"body": "bye"}, headers=owner.headers
        ),
        201,
    )
    assert (
        await client.delete(f"/api/v1/tasks/{middle['key']}", headers=owner.headers)
    ).status == 204
    after = await by_ref(client, owner, project["id"])
    assert "T1.2" not in after
    assert after["T1.1"]["blocks"] == []
    assert after["T1.3"]["blocked_by"] == [] and after["T2.1"]["blocked_by"] == []
    assert after["T2.1"]["ready"] is True
    assert (
        await db.tasks.count_documents(
            {"$or": [{"blocked_by": middle["id"]}, {"blocks": middle["id"]}]}
        )
        == 0
    )
    assert await db.comments.count_documents({"task_id": middle["id"]}) == 0
    assert (
        await db.outbox.count_documents({"type": "task.deleted", "data.task_id": middle["id"]}) == 1
    )
    await expect_problem(
        await client.get(f"/api/v1/tasks/{middle['id']}", headers=owner.headers), 404
    )
    await expect_problem(
        await client.delete(f"/api/v1/tasks/{middle['id']}", headers=owner.headers), 404
    )


async def test_bulk_create_up_to_500_in_one_call(client, db, owner, project):
    items = [{"title": f"Bulk {n}", "phase": "Design", "plan_ref": f"B{n}"} for n in range(500)]
    response = await client.post(
        f"/api/v1/projects/{project['id']}/tasks/bulk", json={"tasks": items}, headers=owner.headers
    )
    body = await expect(response, 201)
    assert len(body["items"]) == 500
    assert [t["key"] for t in body["items"][:3]] == ["TSK-1", "TSK-2", "TSK-3"]
    assert body["items"][-1]["key"] == "TSK-500"
    assert await db.tasks.count_documents({"project_id": project["id"]}) == 500
    assert await db.outbox.count_documents({"type": "task.created", "key": project["id"]}) == 500
    too_many = await client.post(
        f"/api/v1/projects/{project['id']}/tasks/bulk",
        json={"tasks": [{"title": "x"}] * 501},
        headers=owner.headers,
    )
    await expect_problem(too_many, 422, "tasks")


async def test_bulk_create_is_all_or_nothing(client, db, owner, project):
    before = await db.tasks.count_documents({"project_id": project["id"]})
    cases = [
        ([{"title": "ok"}, {"title": ""}], "tasks.1.title"),
        ([{"title": "ok"}, {"title": "x", "phase": "Nope"}], "tasks.1.phase"),
        ([{"title": "a", "plan_ref": "D"}, {"title": "b", "plan_ref": "D"}], "tasks.1.plan_ref"),
        ([{"title": "ok"}, {"title": "x", "estimate_hours": -1}], "tasks.1.estimate_hours"),
        ([{"title": "ok", "surprise": 1}], "tasks.0.surprise"),
    ]
    for items, field in cases:
        response = await client.post(
            f"/api/v1/projects/{project['id']}/tasks/bulk",
            json={"tasks": items},
            headers=owner.headers,
        )
        await expect_problem(response, 422, field)
    assert await db.tasks.count_documents({"project_id": project["id"]}) == before
    assert (await db.projects.find_one({"_id": project["id"]}))["task_seq"] == 0


async def test_bulk_status_by_ids_and_keys(client, db, owner, workspace_id, project):
    tasks = [await new_task(client, owner, project["id"], title=f"s{n}") for n in range(4)]
    response = await client.post(
        f"/api/v1/projects/{project['id']}/tasks/bulk-status",
        json={
            "task_ids": [tasks[0]["id"]],
            "keys": [tasks[1]["key"], tasks[2]["key"].lower()],
            "status": "done",
        },
        headers=owner.headers,
    )
    body = await expect(response, 200)
    assert sorted(t["key"] for t in body["items"]) == ["TSK-1", "TSK-2", "TSK-3"]
    assert {t["status"] for t in body["items"]} == {"done"}
    untouched = await expect(
        await client.get(f"/api/v1/tasks/{tasks[3]['id']}", headers=owner.headers), 200
    )
    assert untouched["status"] == "todo"
    foreign_project = await new_project(client, owner, workspace_id, name="Other")
    foreign = await new_task(client, owner, foreign_project["id"])
    response = await client.post(
        f"/api/v1/projects/{project['id']}/tasks/bulk-status",
        json={"task_ids": [tasks[3]["id"], foreign["id"]], "status": "cancelled"},
        headers=owner.headers,
    )
    await expect_problem(response, 422, "task_ids.1")
    assert (await db.tasks.find_one({"_id": tasks[3]["id"]}))["status"] == "todo"
    response = await client.post(
        f"/api/v1/projects/{project['id']}/tasks/bulk-status",
        json={"status": "done"},
        headers=owner.headers,
    )
    await expect_problem(response, 422, "task_ids")


async def test_a_project_holds_at_most_ten_thousand_tasks(client, db, owner) -> None:
    ws = await new_workspace(client, owner)
    project = await new_project(client, owner, ws, key="CAP")
    path = f"/api/v1/projects/{project['id']}/tasks"
    # Numbers handed out past the limit (tasks created, then deleted) are not tasks: the
    # numbering alone does not refuse a create, the project's task_count decides.
    await db.projects.update_one({"_id": project["id"]}, {"$set": {"task_seq": 12_000}})
    await expect(await client.post(path, json={"title": "fits"}, headers=owner.headers), 201)
    filler = [
        {"_id": f"{i:024x}", "project_id": project["id"], "workspace_id": ws, "seq": 20_000 + i}
        for i in range(9_999)
    ]
    await db.tasks.insert_many(filler)
    # written around the API: counted as migration 12 counts existing tasks
    await db.projects.update_one({"_id": project["id"]}, {"$inc": {"task_count": 9_999}})
    try:
        full = await client.post(path, json={"title": "one too many"}, headers=owner.headers)
        problem = await expect_problem(full, 422)
        assert "at most 10000 tasks" in str(problem["errors"])
        bulk = await client.post(
            f"{path}/bulk", json={"tasks": [{"title": "a"}, {"title": "b"}]}, headers=owner.headers
        )
        await expect_problem(bulk, 422)
        assert await db.tasks.count_documents({"project_id": project["id"]}) == 10_000
    finally:
        await db.tasks.delete_many({"project_id": project["id"]})


async def test_a_create_failing_in_the_database_gives_its_task_numbers_back(
    client, mongo_client, db, settings, owner, project
):
    """A write that fails after the numbers were reserved (here a string MongoDB cannot
    encode, as a lone surrogate was before the API refused them) takes no task key."""
    doc = await db.projects.find_one({"_id": project["id"]})
    before, counted = doc["task_seq"], doc["task_count"]
    with pytest.raises(UnicodeEncodeError):
        await task_service.create_tasks(
            ServiceContext(mongo_client, db, settings),
            doc,
            Actor(owner.id, None),
            [{"title": "a"}, {"title": "b\ud800"}],
        )
    after = await db.projects.find_one({"_id": project["id"]})
    assert (after["task_seq"], after["task_count"]) == (before, counted)
    created = await new_task(client, owner, project["id"], title="next")
    assert created["key"] == f"TSK-{before + 1}"


async def test_reserved_task_numbers_are_given_back_only_while_last(db, project):
    project_id = project["id"]
    first = await projects_store.allocate_task_seqs(db, project_id, 3, max_tasks=10_000)
    assert await projects_store.release_task_seqs(db, project_id, first, 3)
    assert await projects_store.allocate_task_seqs(db, project_id, 2, max_tasks=10_000) == first
    later = await projects_store.allocate_task_seqs(db, project_id, 1, max_tasks=10_000)
    # a reservation behind the first one: giving the first back would reuse numbers
    assert not await projects_store.release_task_seqs(db, project_id, first, 2)
    assert await projects_store.release_task_seqs(db, project_id, later, 1)
    assert (await db.projects.find_one({"_id": project_id}))["task_seq"] == first + 1
