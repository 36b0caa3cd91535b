"""The MongoDB server stopped and started again under the same API process: /readyz turns
503 naming mongodb, requests that need MongoDB answer a prompt 503 problem+json with
Retry-After (never a 500 or a hang), and everything works again once the server is back on
the same port and data, without restarting the API. Nothing written before is lost."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from pymongo import AsyncMongoClient

from planboard.app import create_app
from planboard.config import Settings
from planboard.store import migrations
from planboard.store.document import Document
from planboard_devstack.mongo import mongo_server
from planboard_devstack.paths import free_port
from planboard_devstack.process import Server
from tests.utils.api import expect, expect_problem, new_project, new_task, new_user, new_workspace

pytestmark = pytest.mark.integration

TIMEOUT_S = 1.0  # PLANBOARD_DEPENDENCY_TIMEOUT_S of the API under test
# The client gives up selecting a server after 3 x the dependency timeout (store/mongo.py);
# the rest is slack for a loaded machine.
ANSWER_WITHIN_S = 3 * TIMEOUT_S + 7.0
WAIT_S = 60.0


@pytest.fixture(scope="module")
def own_mongo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A MongoDB dev server of this module's own (the kind the session uses), so stopping
    it disturbs no other test."""
    server = mongo_server(None, tmp_path_factory.mktemp("mongo-restart"), free_port())
    server.start()
    yield server
    server.stop()


@pytest_asyncio.fixture(scope="module")
async def restart_settings(own_mongo: Server, settings: Settings) -> AsyncIterator[Settings]:
    tagged = settings.replace(
        mongodb_uri=own_mongo.url,
        mongodb_db=f"{settings.mongodb_db}_restart",
        dependency_timeout_s=TIMEOUT_S,
    )
    client: AsyncMongoClient[Document] = AsyncMongoClient(tagged.mongodb_uri, tz_aware=True)
    await migrations.migrate(client[tagged.mongodb_db])
    await client.close()
    yield tagged


async def readyz(client: TestClient[Any, Any]) -> tuple[int, dict[str, Any]]:
    response = await client.get("/readyz")
    return response.status, await response.json(content_type=None)


async def wait_until(check, what: str) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < WAIT_S, f"{what}: not within {WAIT_S:.0f} s"
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def test_mongodb_restart_answers_503_then_recovers_in_the_same_process(
    own_mongo: Server, restart_settings: Settings
) -> None:
    api: TestClient[Any, Any] = TestClient(TestServer(create_app(restart_settings)))
    await api.start_server()
    try:
        owner = await new_user(api)
        ws = await new_workspace(api, owner)
        project = await new_project(api, owner, ws)
        before = [await new_task(api, owner, project["id"], title=f"before {i}") for i in range(5)]
        tasks_path = f"/api/v1/projects/{project['id']}/tasks"
        assert (await readyz(api))[0] == 200

        await asyncio.to_thread(own_mongo.stop)
        stopped_at = time.monotonic()

        async def reported_down() -> bool:
            status, body = await readyz(api)
            return status == 503 and "mongodb" in body.get("down", [])

        down_after = await wait_until(reported_down, "readyz 503 naming mongodb")
        _, body = await readyz(api)
        assert body["checks"]["mongodb"]["status"] == "down"
        assert body["checks"]["redis"]["status"] == "up"

        # Reads, writes and logins that need MongoDB: a prompt, clean 503 each.
        calls = [
            ("GET", tasks_path, None, owner.headers),
            ("GET", f"/api/v1/tasks/{before[0]['id']}", None, owner.headers),
            ("POST", tasks_path, {"title": "while down"}, owner.headers),
            ("PATCH", f"/api/v1/tasks/{before[1]['id']}", {"status": "done"}, owner.headers),
            ("POST", "/api/v1/auth/login", {"email": owner.email, "password": owner.password}, {}),
        ]
        slowest = 0.0
        for method, path, json, headers in calls:
            started = time.monotonic()
            response = await api.request(method, path, json=json, headers=headers)
            took = time.monotonic() - started
            slowest = max(slowest, took)
            problem = await expect_problem(response, 503)
            assert response.headers["Retry-After"] == "5", (method, path)
            assert "X-Request-ID" in response.headers
            assert "Traceback" not in problem["detail"] and "pymongo" not in problem["detail"]
            assert problem["detail"] == "The database is unavailable; retry shortly."
            assert took < ANSWER_WITHIN_S, f"{method} {path} took {took:.1f} s"
        # The process itself stays alive (liveness never depends on MongoDB).
        assert (await api.get("/healthz")).status == 200

        down_for = time.monotonic() - stopped_at
        restart_at = time.monotonic()
        await asyncio.to_thread(own_mongo.start)  # same port, same data directory

        async def ready() -> bool:
            return (await readyz(api))[0] == 200

        await wait_until(ready, "readyz 200 after mongodb returned")
        ready_after = time.monotonic() - restart_at

        async def writes() -> bool:
            response = await api.post(tasks_path, json={"title": "after"}, headers=owner.headers)
            await response.read()
            assert response.status in (201, 503), response.status
            return response.status == 201

        await wait_until(writes, "a write succeeds after mongodb returned")
        write_after = time.monotonic() - restart_at
        for i in range(5):  # from now on every write succeeds
            await new_task(api, owner, project["id"], title=f"after {i}")

        # Everything written before the restart is still there, unchanged.
        for task in before:
            got = await expect(
                await api.get(f"/api/v1/tasks/{task['id']}", headers=owner.headers), 200
            )
            assert got["title"] == task["title"] and got["version"] == task["version"]
        listed = await expect(
            await api.get(tasks_path, params={"limit": "200"}, headers=owner.headers), 200
        )
        titles = sorted(t["title"] for t in listed["items"])
        assert titles == sorted(
            [f"before {i}" for i in range(5)] + ["after"] + [f"after {i}" for i in range(5)]
        )
        assert "while down" not in titles
    finally:
        await api.close()
    print(
        f"\nmongodb restart: readyz 503 {down_after:.2f} s after the stop; slowest 503 answer "
        f"{slowest:.2f} s; down {down_for:.1f} s; from the start command: readyz 200 after "
        f"{ready_after:.2f} s, first write after {write_after:.2f} s"
    )
