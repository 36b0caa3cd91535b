"""The cache of search answers (services/search_cache.py): repeated questions are served
from Redis, and an answer never outlives the index it was read from — the ``search``
worker's change to a workspace's entries (or a reindex) makes the next search fresh."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from planboard.app import create_app
from planboard.services import search_cache
from planboard.typedefs import metrics_key
from planboard_devstack.paths import free_port
from tests.integration.search.test_search import found, search, word
from tests.utils.api import expect, new_pat, new_project, new_task, new_user, new_workspace


def lookups(client: Any, result: str) -> float:
    registry = client.app[metrics_key].registry
    labels = {"kind": "search", "result": result}
    return float(registry.get_sample_value("planboard_cache_requests_total", labels) or 0.0)


async def test_repeated_searches_hit_and_every_index_change_shows(client) -> None:
    owner = await new_user(client)
    ws = await new_workspace(client, owner)
    w = word()
    project = await new_project(client, owner, ws, name=f"Cached {w}")
    first = await new_task(client, owner, project["id"], title=f"First {w}")
    await found(client, owner.headers, [first["id"], project["id"]], q=w)
    hits = lookups(client, "hit")
    again = await search(client, owner.headers, q=w)
    assert lookups(client, "hit") == hits + 1
    assert [i["id"] for i in again["items"]] == [first["id"], project["id"]]
    # a new task, a rename and a delete each reach the index through the worker, which
    # moves the workspace's generation: the cached answer is not served after that
    second = await new_task(client, owner, project["id"], title=f"Second {w}")
    await found(client, owner.headers, [second["id"], first["id"], project["id"]], q=w)
    renamed = await client.patch(
        f"/api/v1/tasks/{first['id']}", json={"title": "Renamed away"}, headers=owner.headers
    )
    await expect(renamed, 200)
    await found(client, owner.headers, [second["id"], project["id"]], q=w)
    deleted = await client.delete(f"/api/v1/tasks/{second['id']}", headers=owner.headers)
    assert deleted.status == 204
    await found(client, owner.headers, [project["id"]], q=w)


async def test_answers_are_per_caller_and_token_scopes(client) -> None:
    owner = await new_user(client)
    ws = await new_workspace(client, owner)
    w = word()
    project = await new_project(client, owner, ws, name=f"Scoped {w}")
    task = await new_task(client, owner, project["id"], title=f"Scoped {w}")
    await found(client, owner.headers, [task["id"], project["id"]], q=w)
    pat = await new_pat(client, owner, scopes=["tasks:read"])
    only_tasks = await search(client, pat, q=w)
    assert [i["id"] for i in only_tasks["items"]] == [task["id"]]
    stranger = await new_user(client)
    assert (await search(client, stranger.headers, q=w))["items"] == []


async def test_a_reindex_generation_and_redis_down(client, settings_with, redis: Redis) -> None:
    owner = await new_user(client)
    ws = await new_workspace(client, owner)
    w = word()
    project = await new_project(client, owner, ws, name=f"Whole {w}")
    await found(client, owner.headers, [project["id"]], q=w)
    misses = lookups(client, "miss")
    await search_cache.bump(redis, everything=True)  # what `planboard reindex` does
    await search(client, owner.headers, q=w)
    assert lookups(client, "miss") == misses + 1
    off: TestClient[object, object] = TestClient(
        TestServer(create_app(settings_with(cache_enabled=False)))
    )
    await off.start_server()
    try:
        for _ in range(2):
            answer = await search(off, owner.headers, q=w)
            assert [i["id"] for i in answer["items"]] == [project["id"]]
        assert lookups(off, "off") == 2 and lookups(off, "hit") == 0
    finally:
        await off.close()
    dead = settings_with(redis_url=f"redis://127.0.0.1:{free_port()}/0", dependency_timeout_s=0.5)
    other: TestClient[object, object] = TestClient(TestServer(create_app(dead)))
    await other.start_server()
    try:
        answer = await search(other, owner.headers, q=w)
        assert [i["id"] for i in answer["items"]] == [project["id"]]
        assert lookups(other, "error") >= 1
    finally:
        await other.close()


async def test_generations_are_per_workspace(redis: Redis) -> None:
    ws_a, ws_b = uuid.uuid4().hex, uuid.uuid4().hex
    calls: list[str] = []

    async def compute() -> dict[str, Any]:
        calls.append("x")
        return {"items": [len(calls)]}

    question = {"q": "same"}
    one = await search_cache.answer(redis, [ws_a, ws_b], question, compute)
    assert await search_cache.answer(redis, [ws_b, ws_a], question, compute) == one
    await search_cache.bump(redis, [ws_b])
    assert await search_cache.answer(redis, [ws_a, ws_b], question, compute) != one
    assert await search_cache.answer(redis, [ws_a], question, compute) != one  # other set
    assert len(calls) == 3
