"""Dependencies: the DAG, its inverse, readiness, cycles (also under concurrency)."""

from __future__ import annotations

import asyncio

import pytest

from planboard.domain.dag import topological_order
from tests.utils.api import (
    by_ref,
    expect,
    expect_problem,
    import_plan,
    new_project,
    new_task,
)

pytestmark = pytest.mark.integration


async def depend(client, user, task, blocker):
    return await client.post(
        f"/api/v1/tasks/{task}/dependencies", json={"blocked_by": blocker}, headers=user.headers
    )


async def test_add_keeps_both_directions_and_readiness(client, db, owner, workspace_id):
    project = await new_project(client, owner, workspace_id, name="Deps", key="DEP")
    a, b, c = [await new_task(client, owner, project["id"], title=t) for t in "abc"]
    body = await expect(await depend(client, owner, b["key"], a["key"]), 201)
    assert [t["key"] for t in body["blocked_by"]] == ["DEP-1"]
    assert body["blocked_by"][0] == {
        "id": a["id"],
        "key": "DEP-1",
        "title": "a",
        "status": "todo",
        # issue 19: a link made without a type is finish-to-start without lag
        "type": "FS",
        "lag": 0.0,
        "lag_unit": "h",
    }
    assert (body["blocks"], body["blocked_by_open"], body["ready"]) == ([], [a["id"]], False)
    await expect(await depend(client, owner, c["id"], b["id"]), 201)
    got_b = await expect(await client.get(f"/api/v1/tasks/{b['id']}", headers=owner.headers), 200)
    assert (got_b["blocked_by"], got_b["blocks"], got_b["ready"]) == ([a["id"]], [c["id"]], False)
    assert got_b["version"] == 3  # once as the dependent, once as the blocker
    listed = await expect(
        await client.get(f"/api/v1/tasks/{b['key']}/dependencies", headers=owner.headers), 200
    )
    assert [t["key"] for t in listed["blocked_by"]] == ["DEP-1"]
    assert [t["key"] for t in listed["blocks"]] == ["DEP-3"]
    # done and cancelled blockers no longer block
    await expect(
        await client.patch(
            f"/api/v1/tasks/{a['id']}", json={"status": "cancelled"}, headers=owner.headers
        ),
        200,
    )
    got_b = await expect(await client.get(f"/api/v1/tasks/{b['id']}", headers=owner.headers), 200)
    assert (got_b["blocked_by_open"], got_b["ready"]) == ([], True)
    event = await db.outbox.find_one({"type": "task.dependency_added", "data.task_id": b["id"]})
    assert event["data"]["blocked_by"] == a["id"] and event["key"] == project["id"]


async def test_a_cycle_is_a_409_naming_it_with_keys_in_order(client, db, owner, workspace_id):
    project = await import_plan(client, owner, workspace_id, key="CYC")
    tasks = await by_ref(client, owner, project["id"])
    # T1.1 <- T1.2 <- T1.3 <- T2.2: making T1.1 wait for T2.2 closes the loop
    response = await depend(client, owner, tasks["T1.1"]["key"], tasks["T2.2"]["key"])
    problem = await expect_problem(response, 409)
    keys = {t["id"]: t["key"] for t in tasks.values()}
    t = {ref: task["key"] for ref, task in tasks.items()}
    assert problem["cycle"] == [t["T1.1"], t["T2.2"], t["T1.3"], t["T1.2"], t["T1.1"]]
    assert " -> ".join(problem["cycle"]) in problem["detail"]
    after = await by_ref(client, owner, project["id"])
    assert after["T1.1"]["blocked_by"] == [] and after["T2.2"]["blocks"] == []
    assert (
        await db.outbox.count_documents({"type": "task.dependency_added", "key": project["id"]})
        == 0
    )
    assert keys  # every task still there


async def test_self_duplicate_and_cross_project_dependencies_are_refused(
    client, db, owner, workspace_id
):
    project = await new_project(client, owner, workspace_id, name="One")
    other = await new_project(client, owner, workspace_id, name="Two")
    a, b = (
        await new_task(client, owner, project["id"]),
        await new_task(client, owner, project["id"]),
    )
    foreign = await new_task(client, owner, other["id"])
    await expect_problem(await depend(client, owner, a["id"], a["key"]), 422, "blocked_by")
    await expect_problem(await depend(client, owner, a["id"], foreign["id"]), 422, "blocked_by")
    await expect_problem(await depend(client, owner, a["id"], foreign["key"]), 422, "blocked_by")
    await expect_problem(await depend(client, owner, a["id"], "NOPE-1"), 422, "blocked_by")
    await expect(await depend(client, owner, a["id"], b["id"]), 201)
    await expect_problem(await depend(client, owner, a["id"], b["key"]), 409)
    stored = await db.tasks.find_one({"_id": a["id"]})
    assert stored["blocked_by"] == [b["id"]]


async def test_remove_a_dependency(client, db, owner, workspace_id):
    project = await new_project(client, owner, workspace_id, name="Remove")
    a, b = (
        await new_task(client, owner, project["id"]),
        await new_task(client, owner, project["id"]),
    )
    await expect(await depend(client, owner, b["id"], a["id"]), 201)
    response = await client.delete(
        f"/api/v1/tasks/{b['key']}/dependencies/{a['key']}", headers=owner.headers
    )
    assert response.status == 204
    got = await expect(
        await client.get(f"/api/v1/tasks/{b['id']}/dependencies", headers=owner.headers), 200
    )
    assert (got["blocked_by"], got["blocks"], got["ready"]) == ([], [], True)
    assert (await db.tasks.find_one({"_id": a["id"]}))["blocks"] == []
    again = await client.delete(
        f"/api/v1/tasks/{b['id']}/dependencies/{a['id']}", headers=owner.headers
    )
    await expect_problem(again, 404)
    assert (
        await db.outbox.count_documents(
            {"type": "task.dependency_removed", "data.task_id": b["id"]}
        )
        == 1
    )


async def _graph_is_acyclic(db, project_id: str) -> bool:
    edges = {
        doc["_id"]: list(doc["blocked_by"])
        async for doc in db.tasks.find({"project_id": project_id}, {"blocked_by": 1})
    }
    try:
        topological_order(edges)
    except Exception:
        return False
    return True


async def _inverse_matches(db, project_id: str) -> bool:
    docs = {d["_id"]: d async for d in db.tasks.find({"project_id": project_id})}
    pairs = {(t, b) for t, d in docs.items() for b in d["blocked_by"]}
    inverse = {(t, b) for b, d in docs.items() for t in d["blocks"]}
    return pairs == inverse


@pytest.mark.parametrize("size", [2, 3, 5])
async def test_racing_inserts_that_together_close_a_cycle_never_both_succeed(
    client, db, owner, workspace_id, size
):
    for _round in range(3):
        project = await new_project(client, owner, workspace_id, name=f"Race {size}")
        tasks = [await new_task(client, owner, project["id"]) for _ in range(size)]
        # a ring: every edge alone is fine, all of them together form a cycle
        ring = [(tasks[i]["id"], tasks[(i + 1) % size]["id"]) for i in range(size)]
        responses = await asyncio.gather(*(depend(client, owner, t, b) for t, b in ring))
        statuses = sorted(r.status for r in responses)
        assert statuses == [201] * (size - 1) + [409], statuses
        assert await _graph_is_acyclic(db, project["id"])
        assert await _inverse_matches(db, project["id"])


async def test_many_concurrent_edges_keep_the_graph_consistent(client, db, owner, workspace_id):
    project = await new_project(client, owner, workspace_id, name="Dense")
    tasks = [await new_task(client, owner, project["id"]) for _ in range(6)]
    pairs = [(a["id"], b["id"]) for a in tasks for b in tasks if a is not b]
    responses = await asyncio.gather(*(depend(client, owner, t, b) for t, b in pairs))
    assert {r.status for r in responses} <= {201, 409}
    added = sum(r.status == 201 for r in responses)
    assert added == 15  # a complete DAG on 6 nodes: n(n-1)/2 edges, all others close a cycle
    assert await _graph_is_acyclic(db, project["id"])
    assert await _inverse_matches(db, project["id"])
