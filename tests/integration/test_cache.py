"""The Redis read-through cache of GET project, GET progress, GET task (by id) and
the pages of a project's task list:
read-after-write, concurrency, invalidation by the rollups worker from events, Redis
down (fail open), single flight (stampede) and stale fills racing an invalidation."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from planboard.app import create_app
from planboard.events import outbox
from planboard.events.consumer import ConsumerRunner
from planboard.events.envelope import Event
from planboard.services import cache
from planboard.typedefs import metrics_key
from planboard.workers.registry import GROUPS, WorkerDeps
from planboard_devstack.paths import free_port
from tests.utils.api import (
    add_member,
    expect,
    new_project,
    new_task,
    new_user,
    new_workspace,
)


def loads(client, kind: str) -> float:
    registry = client.app[metrics_key].registry
    value = registry.get_sample_value("planboard_cache_loads_total", {"kind": kind})
    return float(value or 0.0)


def lookups(client, kind: str, result: str) -> float:
    registry = client.app[metrics_key].registry
    labels = {"kind": kind, "result": result}
    return float(registry.get_sample_value("planboard_cache_requests_total", labels) or 0.0)


def served(client, kind: str) -> float:
    """Reads answered from a cache tier: Redis ("hit") or the process's near cache."""
    return lookups(client, kind, "hit") + lookups(client, kind, "near")


async def setup_project(client, tasks: int = 3) -> tuple[Any, dict[str, Any], list[dict[str, Any]]]:
    owner = await new_user(client)
    ws = await new_workspace(client, owner)
    project = await new_project(client, owner, ws, name=f"Cached {uuid.uuid4().hex[:4]}")
    created = [
        await new_task(client, owner, project["id"], title=f"t{i}", estimate_hours=2.0)
        for i in range(tasks)
    ]
    return owner, project, created


async def get(client, path: str, headers: dict[str, str]) -> Any:
    return await expect(await client.get(path, headers=headers), 200)


async def test_reads_hit_the_cache_and_every_write_is_read_back_at_once(client) -> None:
    owner, project, tasks = await setup_project(client)
    h = owner.headers
    task_path, progress_path = (
        f"/api/v1/tasks/{tasks[0]['id']}",
        f"/api/v1/projects/{project['id']}/progress",
    )
    project_path = f"/api/v1/projects/{project['id']}"
    for path in (task_path, progress_path, project_path):
        await get(client, path, h)
    hits = served(client, "task")
    assert (await get(client, task_path, h))["title"] == "t0"
    assert served(client, "task") == hits + 1
    for i in range(50):
        patched = await client.patch(task_path, json={"title": f"r{i}"}, headers=h)
        await expect(patched, 200)
        assert (await get(client, task_path, h))["title"] == f"r{i}"
        status = "done" if i % 2 == 0 else "todo"
        await expect(await client.patch(task_path, json={"status": status}, headers=h), 200)
        assert (await get(client, progress_path, h))["completed"] == (1 if status == "done" else 0)
        renamed = await client.patch(project_path, json={"name": f"Project {i}"}, headers=h)
        await expect(renamed, 200)
        assert (await get(client, project_path, h))["name"] == f"Project {i}"
    # Sparse fields and If-None-Match still work on a cached task.
    sparse = await get(client, f"{task_path}?fields=title", h)
    assert sparse == {"id": tasks[0]["id"], "title": "r49"}
    first = await client.get(task_path, headers=h)
    again = await client.get(task_path, headers={**h, "If-None-Match": first.headers["ETag"]})
    assert again.status == 304
    # Deleting is seen at once too.
    await expect(await client.delete(task_path, headers=h), 204)
    assert (await client.get(task_path, headers=h)).status == 404
    assert (await get(client, progress_path, h))["total"] == 2


async def test_concurrent_writes_and_reads_end_consistent(client, db) -> None:
    owner, project, tasks = await setup_project(client, tasks=4)
    h = owner.headers

    async def writer(task: dict[str, Any]) -> None:
        for i in range(8):
            await expect(
                await client.patch(
                    f"/api/v1/tasks/{task['id']}", json={"title": f"w{i}"}, headers=h
                ),
                200,
            )

    async def reader(task: dict[str, Any]) -> None:
        for _ in range(20):
            await get(client, f"/api/v1/tasks/{task['id']}", h)
            await get(client, f"/api/v1/projects/{project['id']}/progress", h)

    await asyncio.gather(*(writer(t) for t in tasks), *(reader(t) for t in tasks * 2))
    for task in tasks:
        stored = await db.tasks.find_one({"_id": task["id"]})
        body = await get(client, f"/api/v1/tasks/{task['id']}", h)
        assert body["title"] == stored["title"] == "w7"
        assert body["version"] == stored["version"]


async def test_task_list_pages_are_cached_and_every_write_shows_at_once(client, db) -> None:
    owner, project, tasks = await setup_project(client, tasks=5)
    h = owner.headers
    base = f"/api/v1/projects/{project['id']}/tasks"
    first = await get(client, f"{base}?limit=2", h)
    loads_before = loads(client, "task_list")
    hits = served(client, "task_list")
    assert await get(client, f"{base}?limit=2", h) == first
    assert served(client, "task_list") == hits + 1
    assert loads(client, "task_list") == loads_before
    # the next page (a different cursor) is its own entry, and the pages join up
    second = await get(client, f"{base}?limit=2&cursor={first['next_cursor']}", h)
    assert [t["id"] for t in first["items"] + second["items"]] == [t["id"] for t in tasks[:4]]
    # every kind of write shows in the very next read of a cached page
    todo = f"{base}?status=todo&limit=50"
    assert len((await get(client, todo, h))["items"]) == 5
    for i, task in enumerate(tasks):
        path = f"/api/v1/tasks/{task['id']}"
        await expect(await client.patch(path, json={"status": "done"}, headers=h), 200)
        assert len((await get(client, todo, h))["items"]) == 4 - i
    created = await new_task(client, owner, project["id"], title="late")
    assert [t["id"] for t in (await get(client, todo, h))["items"]] == [created["id"]]
    renamed = await client.patch(
        f"/api/v1/tasks/{created['id']}", json={"title": "renamed"}, headers=h
    )
    await expect(renamed, 200)
    assert (await get(client, f"{todo}&fields=title", h))["items"] == [
        {"id": created["id"], "title": "renamed"}
    ]
    deleted = await client.delete(f"/api/v1/tasks/{created['id']}", headers=h)
    assert deleted.status == 204
    assert (await get(client, todo, h))["items"] == []


async def test_assignee_me_pages_are_per_caller(client, db) -> None:
    owner, project, tasks = await setup_project(client, tasks=2)
    other = await new_user(client)
    await add_member(db, project["workspace_id"], other, "member")
    path = f"/api/v1/tasks/{tasks[0]['id']}"
    await expect(
        await client.patch(path, json={"assignee_id": other.id}, headers=owner.headers), 200
    )
    mine = f"/api/v1/projects/{project['id']}/tasks?assignee=me"
    for _ in range(2):  # the second round is served from the cache
        assert (await get(client, mine, owner.headers))["items"] == []
        theirs = await get(client, mine, other.headers)
        assert [t["id"] for t in theirs["items"]] == [tasks[0]["id"]]


@pytest_asyncio.fixture
async def rollups(settings, db, redis) -> AsyncIterator[set[str]]:
    """The rollups group running; yields the ids of the events it has handled."""
    handled: set[str] = set()
    runner = ConsumerRunner(
        settings, db, GROUPS["rollups"](WorkerDeps(settings, db, redis)), on_handled=handled.update
    )
    running = asyncio.create_task(runner.run())
    yield handled
    runner.stop()
    await running


async def test_rollups_worker_invalidates_on_events_from_other_processes(
    client, db, rollups
) -> None:
    owner, project, tasks = await setup_project(client)
    h = owner.headers
    path = f"/api/v1/projects/{project['id']}/progress"
    # the worker has invalidated for the setup's own events (else one may land mid-test):
    # a marker event of the project's key is handled after every earlier one of that key
    marker = Event(
        type="task.updated", key=project["id"], workspace_id=project["workspace_id"], data={}
    )
    await outbox.record(db, [marker])
    deadline = asyncio.get_running_loop().time() + 60
    while marker.id not in rollups:
        assert asyncio.get_running_loop().time() < deadline, "setup events not consumed"
        await asyncio.sleep(0.1)
    assert (await get(client, path, h))["completed"] == 0
    # Another process changes the task (no API call here): the cache still answers...
    await db.tasks.update_one({"_id": tasks[0]["id"]}, {"$set": {"status": "done"}})
    assert (await get(client, path, h))["completed"] == 0
    # ...until its event reaches the rollups worker (relay → Kafka → consumer group).
    event = Event(
        type="task.updated",
        key=project["id"],
        workspace_id=project["workspace_id"],
        data={"project_id": project["id"], "task_id": tasks[0]["id"]},
    )
    await outbox.record(db, [event])
    deadline = asyncio.get_running_loop().time() + 60
    while (await get(client, path, h))["completed"] != 1:
        assert asyncio.get_running_loop().time() < deadline, "not invalidated from the event"
        await asyncio.sleep(0.2)


async def test_cache_switched_off_reads_mongodb_and_stores_nothing(
    client, settings_with, redis: Redis
) -> None:
    owner, project, tasks = await setup_project(client)
    off: TestClient[object, object] = TestClient(
        TestServer(create_app(settings_with(cache_enabled=False)))
    )
    await off.start_server()
    try:
        h = owner.headers
        await redis.delete(cache.task_key(tasks[0]["id"]), cache.progress_key(project["id"]))
        for _ in range(2):
            assert (await get(off, f"/api/v1/tasks/{tasks[0]['id']}", h))["title"] == "t0"
            assert (await get(off, f"/api/v1/projects/{project['id']}/progress", h))["total"] == 3
            page = await get(off, f"/api/v1/projects/{project['id']}/tasks", h)
            assert len(page["items"]) == 3
        assert lookups(off, "task", "off") == 2
        assert lookups(off, "task", "hit") == lookups(off, "task", "miss") == 0
        assert loads(off, "task_list") == 2
        assert await redis.exists(cache.task_key(tasks[0]["id"])) == 0
        assert await redis.exists(cache.progress_key(project["id"])) == 0
    finally:
        await off.close()


async def test_redis_down_still_serves_from_mongodb(client, settings_with) -> None:
    owner, project, tasks = await setup_project(client)
    dead = settings_with(redis_url=f"redis://127.0.0.1:{free_port()}/0", dependency_timeout_s=0.5)
    other: TestClient[object, object] = TestClient(TestServer(create_app(dead)))
    await other.start_server()
    try:
        h = owner.headers
        for _ in range(2):
            assert (await get(other, f"/api/v1/projects/{project['id']}", h))["id"] == project["id"]
            progress = await get(other, f"/api/v1/projects/{project['id']}/progress", h)
            assert progress["total"] == 3
            assert (await get(other, f"/api/v1/tasks/{tasks[0]['id']}", h))["title"] == "t0"
        patched = await other.patch(
            f"/api/v1/tasks/{tasks[0]['id']}", json={"title": "x"}, headers=h
        )
        await expect(patched, 200)
        assert (await get(other, f"/api/v1/tasks/{tasks[0]['id']}", h))["title"] == "x"
        assert lookups(other, "task", "error") >= 3
        assert lookups(other, "task", "hit") == 0
    finally:
        await other.close()


async def test_fifty_cold_reads_make_one_load(client) -> None:
    owner, project, tasks = await setup_project(client, tasks=5)
    h = owner.headers
    for kind, path in (
        ("progress", f"/api/v1/projects/{project['id']}/progress"),
        ("project", f"/api/v1/projects/{project['id']}"),
        ("task", f"/api/v1/tasks/{tasks[2]['id']}"),
    ):
        before = loads(client, kind)
        bodies = await asyncio.gather(*(get(client, path, h) for _ in range(50)))
        assert all(b == bodies[0] for b in bodies)
        assert loads(client, kind) - before == 1, kind


async def test_single_flight_across_processes_and_no_stale_fill(redis: Redis) -> None:
    project_id = uuid.uuid4().hex[:24]
    key = cache.progress_key(project_id)
    calls = 0
    stale = False

    async def load() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.2)
        return {"p": project_id, "body": calls}

    # Two "processes" (two caches, separate in-process state) over one Redis.
    a = cache.ReadThrough(redis, cache.CacheMetrics(CollectorRegistry()))
    b = cache.ReadThrough(redis, cache.CacheMetrics(CollectorRegistry()))
    got = await asyncio.gather(
        *(c.get("progress", key, project_id, load) for c in (a, b) for _ in range(25))
    )
    assert calls == 1 and {g["body"] for g in got if g} == {1}

    # A fill that read the generation before a racing invalidation never gets served.
    await cache.invalidate_project(redis, project_id)

    async def racing_load() -> dict[str, Any]:
        nonlocal stale
        await cache.invalidate_project(redis, project_id)  # a write lands meanwhile
        stale = True
        return {"p": project_id, "body": "old"}

    assert (await a.get("progress", key, project_id, racing_load))["body"] == "old"
    assert stale
    fresh = await a.get("progress", key, project_id, load)
    assert fresh["body"] == 2 and calls == 2


async def test_a_miss_that_reaches_the_lock_after_another_fill_loads_nothing(
    redis: Redis,
) -> None:
    project_id = uuid.uuid4().hex[:24]
    key = cache.task_key(uuid.uuid4().hex[:24])
    loads = 0

    async def load() -> dict[str, Any]:
        nonlocal loads
        loads += 1
        return {"p": project_id, "body": loads}

    read_through = cache.ReadThrough(redis, cache.CacheMetrics(CollectorRegistry()))
    filled = asyncio.Event()

    async def resolved_late() -> str:  # a task read by id: its project is known after a read
        await filled.wait()
        return project_id

    async def resolved_now() -> str:
        return project_id

    # The straggler misses, then resolves its project only after another request has
    # loaded, stored the value and let the lock go: it must find the value, not load.
    straggler = asyncio.create_task(read_through.get("task", key, resolved_late, load))
    await asyncio.sleep(0.1)
    first = await read_through.get("task", key, resolved_now, load)
    filled.set()
    assert await straggler == first
    assert loads == 1


async def test_waiters_survive_a_cancelled_leader(redis: Redis) -> None:
    project_id = uuid.uuid4().hex[:24]
    key = cache.project_key(project_id)
    started = asyncio.Event()

    async def slow() -> dict[str, Any]:
        started.set()
        await asyncio.sleep(5)
        return {"p": project_id, "body": "never"}

    async def fast() -> dict[str, Any]:
        return {"p": project_id, "body": "fresh"}

    rt = cache.ReadThrough(redis, cache.CacheMetrics(CollectorRegistry()))
    leader = asyncio.create_task(rt.get("project", key, project_id, slow))
    await started.wait()
    waiter = asyncio.create_task(rt.get("project", key, project_id, fast))
    await asyncio.sleep(0.05)
    leader.cancel()
    assert (await waiter)["body"] == "fresh"
    assert leader.cancelled()


async def test_invalidations_missed_during_an_outage_are_replayed_first(
    redis: Redis, monkeypatch
) -> None:
    dead: Redis = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_timeout=0.5)
    rt = cache.ReadThrough(redis, cache.CacheMetrics(CollectorRegistry()))
    projects = [uuid.uuid4().hex[:24] for _ in range(5)]
    version = dict.fromkeys(projects, 1)

    def loader(project_id: str):  # type: ignore[no-untyped-def]
        async def load() -> dict[str, Any]:
            return {"p": project_id, "version": version[project_id]}

        return load

    async def read(project_id: str) -> int:
        key = cache.project_key(project_id)
        return int((await rt.get("project", key, project_id, loader(project_id)))["version"])

    for p in projects:
        assert await read(p) == 1  # cached now
    try:
        rt.redis = dead  # Redis unreachable: the write's invalidation fails quietly
        version[projects[0]] = 2
        await rt.invalidate(projects[0])
        assert rt.pending == 1
        assert await read(projects[0]) == 2  # bypassed meanwhile
        rt.redis = redis  # back, with the value cached before the outage still in it
        assert await read(projects[0]) == 2
        assert rt.pending == 0
        assert await read(projects[1]) == 1  # the others were not touched

        # More missed projects than remembered one by one: every generation is dropped.
        monkeypatch.setattr(cache, "MAX_PENDING", 2)
        rt.redis = dead
        for p in projects[1:]:
            version[p] = 3
            await rt.invalidate(p)
        assert rt.pending == 3  # MAX_PENDING + 1: "all"
        rt.redis = redis
        assert [await read(p) for p in projects[1:]] == [3, 3, 3, 3]
        assert rt.pending == 0
    finally:
        await dead.aclose()
