"""Migrations and demo seed data on the real dev MongoDB server."""

from __future__ import annotations

import asyncio

import pytest
from pymongo.errors import DuplicateKeyError

from planboard.services.seed import DEMO_PROJECT_KEY, seed_demo
from planboard.store import migrations
from planboard.store import tasks as task_store

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


async def test_seed_loads_the_sample_plan_once(mongo_client, db) -> None:
    before = await db.outbox.count_documents({})
    project, created = await seed_demo(mongo_client, db)
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

    again, created_again = await seed_demo(mongo_client, db)
    assert not created_again
    assert again["_id"] == project["_id"]
    assert await db.tasks.count_documents({"project_id": project["_id"]}) == 5
