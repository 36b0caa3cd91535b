"""``planboard cache-warm`` (run as a subprocess) against the session's MongoDB and Redis
while the API serves: warmed values are the API's own bytes and are served as hits,
writes after a warm are seen at once, a warm racing a write never installs a stale
value, selection and ordering flags, bad flags (exit 2) and failures (exit 1)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from planboard.config import Settings
from planboard.services import cache, hot_reads, near_cache
from planboard.typedefs import metrics_key, near_cache_key
from planboard_devstack.paths import free_port
from tests.utils.api import expect, new_project, new_task, new_user, new_workspace

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLANBOARD_")}
    env.update(
        PLANBOARD_ENV="test",
        PLANBOARD_MONGODB_URI=settings.mongodb_uri,
        PLANBOARD_MONGODB_DB=settings.mongodb_db,
        PLANBOARD_REDIS_URL=settings.redis_url,
        PLANBOARD_LOG_LEVEL="WARNING",
    )
    env.update(extra)
    return env


async def warm(settings: Settings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "planboard", "cache-warm", *args],
        capture_output=True,
        text=True,
        env=_env(settings, **env),
        timeout=120,
        check=False,
        cwd=ROOT,
    )


def lookups(client, kind: str, result: str) -> float:
    labels = {"kind": kind, "result": result}
    registry = client.app[metrics_key].registry
    return float(registry.get_sample_value("planboard_cache_requests_total", labels) or 0.0)


def loads(client, kind: str) -> float:
    registry = client.app[metrics_key].registry
    value = registry.get_sample_value("planboard_cache_loads_total", {"kind": kind})
    return float(value or 0.0)


async def setup(client, tasks: int = 3, owner=None, ws: str | None = None):  # type: ignore[no-untyped-def]
    owner = owner or await new_user(client)
    ws = ws or await new_workspace(client, owner)
    project = await new_project(client, owner, ws, name=f"Warm {uuid.uuid4().hex[:6]}")
    created = [
        await new_task(client, owner, project["id"], title=f"w{i}", estimate_hours=1.0)
        for i in range(tasks)
    ]
    return owner, ws, project, created


def keys_of(project: dict[str, Any], tasks: list[dict[str, Any]]) -> list[str]:
    return [
        cache.project_key(project["id"]),
        cache.progress_key(project["id"]),
        *(cache.task_key(t["id"]) for t in tasks),
    ]


async def test_warmed_values_are_the_apis_own_and_are_served_as_hits(
    client, redis: Redis, settings: Settings
) -> None:
    owner, _, project, tasks = await setup(client)
    h = owner.headers
    keys = keys_of(project, tasks)
    assert await redis.exists(*keys) == 0  # the writes left nothing cached

    result = await warm(settings, "--project", project["id"])
    assert result.returncode == 0, result.stderr
    assert "done: 1 projects; 5 warmed, 0 skipped, 0 failed in" in result.stdout
    assert "cache-warm: warm projects 1/1" in result.stderr  # progress, as a plain log line
    warmed = {key: await redis.get(key) for key in keys}
    assert all(warmed.values())

    paths = {
        "project": f"/api/v1/projects/{project['id']}",
        "progress": f"/api/v1/projects/{project['id']}/progress",
        "task": f"/api/v1/tasks/{tasks[1]['id']}",
    }
    served: dict[str, Any] = {}
    for kind, path in paths.items():
        hits, fills = lookups(client, kind, "hit"), loads(client, kind)
        response = await client.get(path, headers=h)
        served[kind] = await expect(response, 200)
        assert lookups(client, kind, "hit") == hits + 1, kind
        assert loads(client, kind) == fills, kind  # nothing read from MongoDB
        if kind != "progress":
            key = cache.project_key(project["id"]) if kind == "project" else keys[3]
            assert response.headers["ETag"] == orjson.loads(warmed[key])["etag"]

    # Byte for byte what the API stores on a miss (same generation, same loader).
    await redis.delete(*keys)
    client.app[near_cache_key].invalidate([near_cache.ALL])  # its own copies too
    for kind, path in paths.items():
        fills = loads(client, kind)
        assert await expect(await client.get(path, headers=h), 200) == served[kind]
        assert loads(client, kind) == fills + 1, kind
    assert await redis.get(keys[0]) == warmed[keys[0]]
    assert await redis.get(keys[1]) == warmed[keys[1]]
    assert await redis.get(keys[3]) == warmed[keys[3]]

    # A second run finds them warm: nothing stored again.
    again = await warm(settings, "--project", project["id"])
    assert again.returncode == 0, again.stderr
    assert "done: 1 projects; 2 warmed, 3 skipped, 0 failed" in again.stdout

    # A write after warming is seen at once (the API invalidates; warm values die).
    patched = await client.patch(paths["task"], json={"title": "renamed"}, headers=h)
    await expect(patched, 200)
    assert (await expect(await client.get(paths["task"], headers=h), 200))["title"] == "renamed"
    progress = await expect(await client.get(paths["progress"], headers=h), 200)
    assert progress["total"] == 3

    # --invalidate: a new generation first, so everything is stored again.
    generation = await redis.get(cache.generation_key(project["id"]))
    fresh = await warm(settings, "--project", project["id"], "--invalidate")
    assert fresh.returncode == 0, fresh.stderr
    assert "done: 1 projects; 5 warmed, 0 skipped, 0 failed" in fresh.stdout
    assert await redis.get(cache.generation_key(project["id"])) != generation
    hits = lookups(client, "task", "hit")
    assert (await expect(await client.get(paths["task"], headers=h), 200))["title"] == "renamed"
    assert lookups(client, "task", "hit") == hits + 1


async def test_a_warm_racing_a_write_never_installs_a_stale_value(client, db, redis) -> None:
    owner, _, project, _ = await setup(client, tasks=0)
    h = owner.headers
    path = f"/api/v1/projects/{project['id']}"
    reads = cache.ReadThrough(redis, cache.CacheMetrics(CollectorRegistry()))

    async def load_then_lose_the_race() -> cache.Value | None:
        stale = await hot_reads.project_value(db, project["id"])
        renamed = await client.patch(path, json={"name": "After the warm read"}, headers=h)
        await expect(renamed, 200)  # written and invalidated while the warm holds a stale copy
        return stale

    key = cache.project_key(project["id"])
    assert await reads.warm("project", key, project["id"], load_then_lose_the_race) == "filled"
    assert (await expect(await client.get(path, headers=h), 200))["name"] == "After the warm read"


async def test_selection_order_limit_and_status(client, redis: Redis, settings: Settings) -> None:
    owner, ws1, quiet, quiet_tasks = await setup(client, tasks=2)
    _, _, busy, busy_tasks = await setup(client, tasks=2, owner=owner, ws=ws1)
    other_owner, ws2, elsewhere, elsewhere_tasks = await setup(client, tasks=1)
    archived_owner, _, archived, _ = await setup(client, tasks=0)
    await expect(
        await client.patch(
            f"/api/v1/projects/{archived['id']}",
            json={"status": "archived"},
            headers=archived_owner.headers,
        ),
        200,
    )
    # The most recent write anywhere is to a task of `busy`.
    await asyncio.sleep(0.01)
    await expect(
        await client.patch(
            f"/api/v1/tasks/{busy_tasks[0]['id']}", json={"title": "latest"}, headers=owner.headers
        ),
        200,
    )

    # --limit 1 over everything: the most recently active project, tasks newest first.
    result = await warm(settings, "--limit", "1", "--tasks", "1")
    assert result.returncode == 0, result.stderr
    assert "done: 1 projects; 3 warmed" in result.stdout
    assert await redis.exists(cache.project_key(busy["id"]), cache.task_key(busy_tasks[0]["id"]))
    assert not await redis.exists(cache.task_key(busy_tasks[1]["id"]))
    assert not await redis.exists(cache.project_key(quiet["id"]))

    # --workspace: only its projects; --tasks 0: no task values.
    result = await warm(settings, "--workspace", ws2, "--tasks", "0")
    assert result.returncode == 0, result.stderr
    assert "done: 1 projects; 2 warmed, 0 skipped, 0 failed" in result.stdout
    assert await redis.exists(*keys_of(elsewhere, [])) == 2
    assert not await redis.exists(cache.task_key(elsewhere_tasks[0]["id"]))
    assert not await redis.exists(cache.project_key(quiet["id"]))

    # Two workspaces at once, concurrency 2; an archived project is left out...
    result = await warm(settings, "--workspace", ws1, "--workspace", ws2, "--concurrency", "2")
    assert result.returncode == 0, result.stderr
    assert "done: 3 projects;" in result.stdout
    assert await redis.exists(*keys_of(quiet, quiet_tasks)) == 4
    assert not await redis.exists(cache.project_key(archived["id"]))
    # ...unless named.
    result = await warm(settings, "--project", archived["id"])
    assert result.returncode == 0, result.stderr
    assert "done: 1 projects; 2 warmed" in result.stdout
    assert await redis.exists(cache.project_key(archived["id"]))

    # A project and a workspace that do not match: an error, nothing warmed.
    result = await warm(settings, "--project", quiet["id"], "--workspace", ws2)
    assert result.returncode == 1
    assert f"LookupError: no project {quiet['id']} in the given workspaces" in result.stderr
    assert other_owner is not None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--limit", "0"], "argument --limit: a whole number, 1 to 1000000"),
        (["--limit", "many"], "argument --limit: a whole number, 1 to 1000000"),
        (["--tasks", "-1"], "argument --tasks: a whole number, 0 to 10000"),
        (["--concurrency", "65"], "argument --concurrency: a whole number, 1 to 64"),
        (["--project", "not-an-id"], "argument --project: an id: 24 lowercase hex digits"),
        (["--workspace", "6650C0FFEE0000000000ABCD"], "argument --workspace: an id"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
async def test_bad_flags_exit_2_and_warm_nothing(
    settings: Settings, args: list[str], message: str
) -> None:
    result = await warm(settings, *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


async def test_unknown_project_and_redis_down_fail_with_one_line(
    client, redis: Redis, settings: Settings
) -> None:
    result = await warm(settings, "--project", "6650c0ffee0000000000abcd")
    assert result.returncode == 1
    assert "no project 6650c0ffee0000000000abcd" in result.stderr
    _, _, project, _ = await setup(client, tasks=0)
    dead = f"redis://127.0.0.1:{free_port()}/0"
    result = await warm(settings, "--project", project["id"], PLANBOARD_REDIS_URL=dead)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("planboard cache-warm: error: ConnectionError")
    assert not await redis.exists(cache.project_key(project["id"]))
