"""Migrations and demo seed data on the real dev MongoDB server."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pymongo.errors import DuplicateKeyError

from planboard.app import create_app
from planboard.services.context import ServiceContext
from planboard.services.seed import DEMO_PROJECT_KEY, seed_demo
from planboard.store import migrations, quotas
from planboard.store import tasks as task_store
from tests.integration.attachments.conftest import form
from tests.utils.api import (
    add_member,
    expect,
    expect_problem,
    new_pat,
    new_project,
    new_task,
    new_user,
    new_workspace,
    unique_email,
)

pytestmark = pytest.mark.integration


async def test_migrations_are_recorded_and_idempotent(db) -> None:
    assert await migrations.pending_migrations(db) == []
    assert await migrations.migrate(db) == []  # second run applies nothing
    versions = await migrations.applied_versions(db)
    assert versions == {m.version for m in migrations.MIGRATIONS}
    names = set(await db.list_collection_names())
    assert {"outbox", "projects", "tasks", "workspaces", "locks"} <= names


async def test_concurrent_migrate_runs_never_apply_twice(mongo_client, settings) -> None:
    fresh = mongo_client[f"{settings.mongodb_db}_race"]
    try:
        results = await asyncio.gather(
            *(migrations.migrate(fresh) for _ in range(4)), return_exceptions=True
        )
        applied = [r for r in results if isinstance(r, list) and r]
        locked = [r for r in results if isinstance(r, migrations.MigrationLocked)]
        assert len(applied) + len(locked) + sum(1 for r in results if r == []) == 4
        assert sum(len(r) for r in applied) == len(migrations.MIGRATIONS)
        records = await fresh[migrations.MIGRATIONS_COLLECTION].count_documents({})
        assert records == len(migrations.MIGRATIONS)
    finally:
        await mongo_client.drop_database(fresh.name)


async def test_waiting_migrate_runs_all_succeed_and_apply_once(mongo_client, settings) -> None:
    fresh = mongo_client[f"{settings.mongodb_db}_wait"]
    try:
        results = await asyncio.gather(*(migrations.migrate(fresh, wait_s=60) for _ in range(3)))
        assert sorted(len(r) for r in results) == [0, 0, len(migrations.MIGRATIONS)]
    finally:
        await mongo_client.drop_database(fresh.name)


async def test_unique_indexes_are_enforced(db) -> None:
    await db.projects.insert_one({"_id": "p-uniq-1", "workspace_id": "w-uniq", "key": "UNQ"})
    with pytest.raises(DuplicateKeyError):
        await db.projects.insert_one({"_id": "p-uniq-2", "workspace_id": "w-uniq", "key": "UNQ"})
    await db.projects.insert_one({"_id": "p-uniq-3", "workspace_id": "w-other", "key": "UNQ"})


async def test_seed_loads_the_sample_plan_once(mongo_client, db, settings) -> None:
    before = await db.outbox.count_documents({})
    project, created = await seed_demo(ServiceContext(mongo_client, db, settings))
    assert created
    assert project["key"] == DEMO_PROJECT_KEY
    assert project["name"] == "Bookshelf"
    assert [p["name"] for p in project["phases"]] == ["Phase 1: Foundation", "Phase 2: Core API"]

    tasks = await task_store.in_project(db, str(project["_id"]))
    by_ref = {t["plan_ref"]: t for t in tasks}
    assert [t["key"] for t in tasks] == [f"BOOK-{n}" for n in range(1, 6)]
    assert [t["status"] for t in tasks] == ["done", "done", "in_progress", "todo", "blocked"]
    assert by_ref["T2.2"]["blocked_by"] == [by_ref["T1.3"]["_id"], by_ref["T2.1"]["_id"]]
    assert sorted(by_ref["T1.2"]["blocks"]) == sorted(
        [by_ref["T1.3"]["_id"], by_ref["T2.1"]["_id"]]
    )
    assert by_ref["T1.1"]["estimate_hours"] == 1.5
    assert by_ref["T1.1"]["checklist"][0] == {"text": "Initialize the service", "done": False}
    # one project.created + five task.created events, keyed by the project id
    events = await db.outbox.find({"key": project["_id"]}).to_list()
    assert sorted(e["type"] for e in events) == ["project.created"] + ["task.created"] * 5
    assert await db.outbox.count_documents({}) == before + 6

    again, created_again = await seed_demo(ServiceContext(mongo_client, db, settings))
    assert not created_again
    assert again["_id"] == project["_id"]
    assert await db.tasks.count_documents({"project_id": project["_id"]}) == 5


async def test_migration_12_counts_what_existing_data_holds(mongo_client, settings) -> None:
    """Data written before the counters of store/quotas.py existed gets them from migration
    12, equal to what the code keeps, and the limits and the last-owner rule hold on it."""
    fresh = mongo_client[f"{settings.mongodb_db}_quotas"]
    await migrations.migrate(fresh)
    api = TestClient(TestServer(create_app(settings.replace(mongodb_db=fresh.name))))
    await api.start_server()
    try:
        a, b = await new_user(api), await new_user(api)
        ws = await new_workspace(api, a)
        await add_member(fresh, ws, b, "owner")
        hooks = f"/api/v1/workspaces/{ws}/webhooks"
        for _ in range(2):
            body = {"url": "https://93.184.215.14/hook", "events": ["task.created"]}
            await expect(await api.post(hooks, json=body, headers=a.headers), 201)
        invites = f"/api/v1/workspaces/{ws}/invitations"
        sent = [
            await expect(
                await api.post(
                    invites, json={"email": unique_email(), "role": "member"}, headers=a.headers
                ),
                201,
            )
            for _ in range(3)
        ]
        await expect(await api.delete(f"{invites}/{sent[0]['id']}", headers=a.headers), 204)
        project = await new_project(api, a, ws)
        made = [await new_task(api, a, project["id"]) for _ in range(3)]
        await expect(await api.delete(f"/api/v1/tasks/{made[0]['id']}", headers=a.headers), 204)
        files = f"/api/v1/tasks/{made[1]['id']}/attachments"
        for name in ("a.txt", "b.txt"):
            await expect(await api.post(files, data=form(b"text\n", name), headers=a.headers), 201)
        for _ in range(2):
            await new_pat(api, a, ["tasks:read"])
        token = await fresh.personal_access_tokens.find_one({"user_id": a.id})
        await expect(await api.delete(f"/api/v1/tokens/{token['_id']}", headers=a.headers), 204)

        parents = {
            "workspaces": ws,
            "projects": project["id"],
            "tasks": made[1]["id"],
            "users": a.id,
        }
        fields = {c.field: c.collection for c in quotas.COUNTERS}

        async def counters() -> dict[str, int]:
            found = {}
            for field, collection in fields.items():
                doc = await fresh[collection].find_one({"_id": parents[collection]})
                assert doc is not None
                found[field] = doc.get(field)
            return found

        kept = await counters()
        assert kept == {
            "owner_count": 2,
            "webhook_count": 2,
            "invitation_count": 2,
            "task_count": 2,
            "attachment_count": 2,
            "token_count": 1,
        }
        # the data as it was before migration 12
        for field, collection in fields.items():
            await fresh[collection].update_many({}, {"$unset": {field: ""}})
        assert set((await counters()).values()) == {None}

        await migrations._quota_counters(fresh)  # what migration 12 does
        assert await counters() == kept
        other = await fresh.tasks.find_one({"_id": made[2]["id"]})
        assert other is not None and other["attachment_count"] == 0

        # the rules hold on migrated data: one owner may step down, not the last one
        members = f"/api/v1/workspaces/{ws}/members"
        await expect(
            await api.patch(f"{members}/{a.id}", json={"role": "admin"}, headers=b.headers), 204
        )
        await expect_problem(await api.delete(f"{members}/{b.id}", headers=b.headers), 409)
        body = {"url": "https://93.184.215.14/hook", "events": ["task.created"]}
        for _ in range(23):
            await expect(await api.post(hooks, json=body, headers=b.headers), 201)
        await expect_problem(await api.post(hooks, json=body, headers=b.headers), 409)
    finally:
        await api.close()
        await mongo_client.drop_database(fresh.name)
