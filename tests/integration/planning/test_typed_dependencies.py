"""Issue 19: typed dependencies (FS/SS/FF/SF) with a signed lag on the dependency
endpoints, and migration 14 giving existing links FS with lag 0."""

from __future__ import annotations

import pytest

from planboard.store import migrations
from tests.utils.api import (
    expect,
    expect_problem,
    new_project,
    new_task,
    new_workspace,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def project(client, owner):
    return await new_project(client, owner, await new_workspace(client, owner))


async def test_a_typed_link_is_kept_shown_and_changed(client, db, owner, project):
    a = await new_task(client, owner, project["id"], estimate_hours=8)
    b = await new_task(client, owner, project["id"], estimate_hours=4)
    c = await new_task(client, owner, project["id"])
    body = await expect(
        await client.post(
            f"/api/v1/tasks/{b['key']}/dependencies",
            json={"blocked_by": a["key"], "type": "SS", "lag": 2, "lag_unit": "d"},
            headers=owner.headers,
        ),
        201,
    )
    assert [(x["key"], x["type"], x["lag"], x["lag_unit"]) for x in body["blocked_by"]] == [
        (a["key"], "SS", 2.0, "d")
    ]
    # no type: FS without lag, as before
    await expect(
        await client.post(
            f"/api/v1/tasks/{b['key']}/dependencies",
            json={"blocked_by": c["key"]},
            headers=owner.headers,
        ),
        201,
    )
    task = await expect(await client.get(f"/api/v1/tasks/{b['id']}", headers=owner.headers), 200)
    assert task["blocked_by"] == [a["id"], c["id"]]
    assert task["dependencies"] == [
        {"task_id": a["id"], "type": "SS", "lag": 2.0, "lag_unit": "d"},
        {"task_id": c["id"], "type": "FS", "lag": 0.0, "lag_unit": "h"},
    ]
    # change it: a lead of 4 hours, finish to finish
    changed = await expect(
        await client.patch(
            f"/api/v1/tasks/{b['key']}/dependencies/{a['key']}",
            json={"type": "FF", "lag": -4, "lag_unit": "h", "version": task["version"]},
            headers=owner.headers,
        ),
        200,
    )
    assert (changed["blocked_by"][0]["type"], changed["blocked_by"][0]["lag"]) == ("FF", -4.0)
    # a stale version is a 412 and changes nothing
    await expect_problem(
        await client.patch(
            f"/api/v1/tasks/{b['key']}/dependencies/{a['key']}",
            json={"type": "SF", "version": task["version"]},
            headers=owner.headers,
        ),
        412,
    )
    # a zero lag is always 0 h; only the lag changes, the type stays
    zero = await expect(
        await client.patch(
            f"/api/v1/tasks/{b['key']}/dependencies/{a['key']}",
            json={"lag": 0, "lag_unit": "d"},
            headers=owner.headers,
        ),
        200,
    )
    assert {k: zero["blocked_by"][0][k] for k in ("type", "lag", "lag_unit")} == {
        "type": "FF",
        "lag": 0.0,
        "lag_unit": "h",
    }
    # the event carries the link
    event = await db.outbox.find_one(
        {"type": "task.dependency_changed", "data.task_id": b["id"]}, sort=[("_id", -1)]
    )
    assert event is not None and event["data"]["type"] == "FF"
    # removing the link removes its type too
    await expect(
        await client.delete(
            f"/api/v1/tasks/{b['key']}/dependencies/{a['key']}", headers=owner.headers
        ),
        204,
    )
    stored = await db.tasks.find_one({"_id": b["id"]})
    assert stored["blocked_by"] == [c["id"]] and set(stored["link_types"]) == {c["id"]}
    # deleting a predecessor removes the link and its type from its successors
    await expect(await client.delete(f"/api/v1/tasks/{c['id']}", headers=owner.headers), 204)
    stored = await db.tasks.find_one({"_id": b["id"]})
    assert stored["blocked_by"] == [] and stored["link_types"] == {}


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"type": "XX"}, "type"),
        ({"type": "fs"}, "type"),
        ({"lag": "2"}, "lag"),
        ({"lag": True}, "lag"),
        ({"lag": 10_001}, "lag"),
        ({"lag_unit": "w"}, "lag_unit"),
        ({"lag": 2, "lag_unit": None}, "lag_unit"),
        ({"weight": 1}, "weight"),
    ],
)
async def test_bad_links_are_refused_and_change_nothing(client, db, owner, project, extra, field):
    a = await new_task(client, owner, project["id"])
    b = await new_task(client, owner, project["id"])
    response = await client.post(
        f"/api/v1/tasks/{b['id']}/dependencies",
        json={"blocked_by": a["id"], **extra},
        headers=owner.headers,
    )
    await expect_problem(response, 422, field)
    stored = await db.tasks.find_one({"_id": b["id"]})
    assert stored["blocked_by"] == [] and stored["version"] == b["version"]


async def test_patching_a_missing_link_or_with_nothing_is_refused(client, owner, project):
    a = await new_task(client, owner, project["id"])
    b = await new_task(client, owner, project["id"])
    url = f"/api/v1/tasks/{b['id']}/dependencies/{a['id']}"
    await expect_problem(await client.patch(url, json={"type": "SS"}, headers=owner.headers), 404)
    await expect_problem(await client.patch(url, json={}, headers=owner.headers), 422, "type")


async def test_a_cycle_of_typed_links_is_still_named(client, owner, project):
    a = await new_task(client, owner, project["id"])
    b = await new_task(client, owner, project["id"])
    await expect(
        await client.post(
            f"/api/v1/tasks/{b['id']}/dependencies",
            json={"blocked_by": a["id"], "type": "SS", "lag": -1},
            headers=owner.headers,
        ),
        201,
    )
    body = await expect_problem(
        await client.post(
            f"/api/v1/tasks/{a['id']}/dependencies",
            json={"blocked_by": b["id"], "type": "FF"},
            headers=owner.headers,
        ),
        409,
    )
    assert body["cycle"] == [a["key"], b["key"], a["key"]]


async def test_migration_14_gives_existing_links_fs_without_lag(mongo_client, settings):
    fresh = mongo_client[f"{settings.mongodb_db}_links14"]
    try:
        await migrations.migrate(fresh)
        # tasks as they were stored before issue 19: blocked_by only
        await fresh.tasks.insert_many(
            [
                {"_id": "t1", "project_id": "p", "blocked_by": []},
                {"_id": "t2", "project_id": "p", "blocked_by": ["t1"]},
                {"_id": "t3", "project_id": "p", "blocked_by": ["t1", "t2"]},
                {
                    "_id": "t4",
                    "project_id": "p",
                    "blocked_by": ["t1", "t2"],
                    "link_types": {"t1": {"type": "SS", "lag": 1.0, "lag_unit": "d"}},
                },
            ]
        )
        fs = {"type": "FS", "lag": 0.0, "lag_unit": "h"}
        for _ in range(2):  # a rerun changes nothing
            await migrations._typed_links(fresh)
            stored = {d["_id"]: d["link_types"] async for d in fresh.tasks.find({})}
            assert stored == {
                "t1": {},
                "t2": {"t1": fs},
                "t3": {"t1": fs, "t2": fs},
                "t4": {"t1": {"type": "SS", "lag": 1.0, "lag_unit": "d"}, "t2": fs},
            }
    finally:
        await mongo_client.drop_database(fresh.name)
