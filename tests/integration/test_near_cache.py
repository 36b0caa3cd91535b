"""The near cache across processes (services/near_cache.py), on real Redis and MongoDB.

Two API instances share the session's MongoDB and Redis and nothing else: each has its
own near cache and its own subscription, as two processes would. A write, a membership
change or a logout made through one must reach the other through the invalidation
channel, and the process that wrote must never serve the old answer afterwards.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from planboard.app import create_app
from planboard.config import Settings
from planboard.services import near_cache
from planboard.services.near_cache import Listener, NearCache
from planboard.typedefs import metrics_key, near_cache_key
from planboard_devstack.paths import free_port
from planboard_devstack.redis import RedisServer
from tests.utils.api import (
    expect,
    login,
    new_project,
    new_task,
    new_user,
    new_workspace,
    token_in,
    wait_for_mail,
)

pytestmark = pytest.mark.integration

#: How long another process may take to apply a message: Redis delivers it within a
#: round trip on loopback; this bound only keeps a broken build from hanging the test.
DELIVERY_S = 2.0


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> float:
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < DELIVERY_S, f"{what}: not within {DELIVERY_S} s"
        await asyncio.sleep(0.005)
    return time.monotonic() - started


async def live(client: TestClient[Any, Any]) -> None:
    near = client.app[near_cache_key]

    async def check() -> bool:
        return near.live

    await eventually(check, "near cache live")


def near_hits(client: TestClient[Any, Any], kind: str) -> float:
    registry = client.app[metrics_key].registry
    labels = {"kind": kind, "result": "near"}
    return float(registry.get_sample_value("planboard_cache_requests_total", labels) or 0.0)


@pytest_asyncio.fixture
async def other(
    settings: Settings, client: TestClient[Any, Any]
) -> AsyncIterator[TestClient[Any, Any]]:
    """A second API instance: another process as far as the near cache can tell."""
    second: TestClient[Any, Any] = TestClient(TestServer(create_app(settings)))
    await second.start_server()
    await live(second)
    await live(client)
    yield second
    await second.close()


async def body(client: TestClient[Any, Any], path: str, headers: dict[str, str]) -> Any:
    return await expect(await client.get(path, headers=headers), 200)


async def test_writes_reach_the_near_cache_of_every_process(client, other) -> None:
    owner = await new_user(client)
    ws = await new_workspace(client, owner)
    project = await new_project(client, owner, ws)
    task = await new_task(client, owner, project["id"], title="first")
    h = owner.headers
    paths = {
        "task": f"/api/v1/tasks/{task['id']}",
        "progress": f"/api/v1/projects/{project['id']}/progress",
        "task_list": f"/api/v1/projects/{project['id']}/tasks?limit=50",
    }
    for api in (client, other):  # both processes hold every value
        for kind, path in paths.items():
            await body(api, path, h)
            before = near_hits(api, kind)
            await body(api, path, h)
            assert near_hits(api, kind) == before + 1, kind

    for i in range(20):
        title = f"title {i}"
        status = "done" if i % 2 == 0 else "todo"
        patched = await client.patch(
            paths["task"], json={"title": title, "status": status}, headers=h
        )
        await expect(patched, 200)
        # the writing process: at once, never the old value
        assert (await body(client, paths["task"], h))["title"] == title
        assert (await body(client, paths["task_list"], h))["items"][0]["title"] == title
        completed = 1 if status == "done" else 0
        assert (await body(client, paths["progress"], h))["completed"] == completed

        # the other process: as soon as the message arrives
        async def seen(title: str = title, completed: int = completed) -> bool:
            got = await body(other, paths["task"], h)
            listed = await body(other, paths["task_list"], h)
            progress = await body(other, paths["progress"], h)
            return (
                got["title"] == title
                and listed["items"][0]["title"] == title
                and progress["completed"] == completed
            )

        await eventually(seen, f"write {i} seen by the other process")


async def test_membership_changes_reach_every_process(client, other, mail_url) -> None:
    owner = await new_user(client)
    member = await new_user(client)
    ws = await new_workspace(client, owner)
    project = await new_project(client, owner, ws)
    task = await new_task(client, owner, project["id"])
    path = f"/api/v1/tasks/{task['id']}"
    # Not a member yet: 404 in both processes (and that answer is cached)…
    for api in (client, other):
        for _ in range(2):
            assert (await api.get(path, headers=member.headers)).status == 404
    # …until an invitation is accepted through one of them.
    invited = await client.post(
        f"/api/v1/workspaces/{ws}/invitations",
        json={"email": member.email, "role": "member"},
        headers=owner.headers,
    )
    await expect(invited, 201)
    mail = await wait_for_mail(mail_url, member.email, "You are invited")
    token = token_in(mail["text"], "pbinv")
    accepted = await client.post(
        "/api/v1/invitations/accept", json={"token": token}, headers=member.headers
    )
    await expect(accepted, 200)
    assert (await client.get(path, headers=member.headers)).status == 200

    async def admitted() -> bool:
        return (await other.get(path, headers=member.headers)).status == 200

    await eventually(admitted, "membership seen by the other process")
    for _ in range(2):  # cached now in both
        assert (await other.get(path, headers=member.headers)).status == 200

    # A role change: the member may write, then may not.
    role_path = f"/api/v1/workspaces/{ws}/members/{member.id}"
    patch = {"title": "by the member"}
    assert (await other.patch(path, json=patch, headers=member.headers)).status == 200
    await expect(await client.patch(role_path, json={"role": "viewer"}, headers=owner.headers), 204)
    assert (await client.patch(path, json=patch, headers=member.headers)).status == 403

    async def demoted() -> bool:
        return (await other.patch(path, json=patch, headers=member.headers)).status == 403

    await eventually(demoted, "role change seen by the other process")

    # Removal: 404 everywhere.
    await expect(await client.delete(role_path, headers=owner.headers), 204)
    assert (await client.get(path, headers=member.headers)).status == 404

    async def removed() -> bool:
        return (await other.get(path, headers=member.headers)).status == 404

    await eventually(removed, "removal seen by the other process")


async def test_a_logout_ends_the_session_in_every_process(client, other) -> None:
    user = await new_user(client)
    session = await login(client, replace(user, access_token=""))  # a second session
    for api in (client, other):  # the session is known live (cached) in both
        for _ in range(2):
            assert (await api.get("/api/v1/workspaces", headers=session.headers)).status == 200
    await expect(await client.post("/api/v1/auth/logout", json={}, headers=session.headers), 204)
    assert (await client.get("/api/v1/workspaces", headers=session.headers)).status == 401

    async def ended() -> bool:
        return (await other.get("/api/v1/workspaces", headers=session.headers)).status == 401

    await eventually(ended, "logout seen by the other process")
    assert (await other.get("/api/v1/workspaces", headers=user.headers)).status == 200


async def test_the_listener_stops_serving_without_redis_and_resumes(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", free_port())
    server.start()
    redis: Redis = Redis.from_url(server.url, socket_timeout=1, socket_connect_timeout=1)
    publisher: Redis = Redis.from_url(server.url, socket_timeout=1, socket_connect_timeout=1)
    near = NearCache()
    listener = Listener(redis, near, ping_s=0.2, dead_s=1.0, retry_s=0.1, max_retry_s=0.2)
    task = asyncio.create_task(listener.run())

    async def is_live() -> bool:
        return near.live

    async def is_dark() -> bool:
        return not near.live

    try:
        await eventually(is_live, "subscribed")
        assert near.put("k", 1, ("p:x",), stamp=near.stamp(), size=1)
        await publisher.publish(near_cache.CHANNEL, "p:y\np:x")

        async def dropped() -> bool:
            return near.get("k") is None

        await eventually(dropped, "message applied")

        assert near.put("k", 2, ("p:x",), stamp=near.stamp(), size=1)
        stamp = near.stamp()  # a read in flight while Redis goes away
        await asyncio.to_thread(server.stop)
        await eventually(is_dark, "near cache off once Redis is gone")
        assert near.get("k") is None  # nothing held from before
        assert not near.put("k", 3, ("p:x",), stamp=near.stamp(), size=1)  # nor stored

        await asyncio.to_thread(server.start)
        await publisher.aclose()
        publisher = Redis.from_url(server.url, socket_timeout=1, socket_connect_timeout=1)
        started = time.monotonic()
        while not near.live:  # the listener's backoff is bounded (max_retry_s)
            assert time.monotonic() - started < 10, "not subscribed again"
            await asyncio.sleep(0.02)
        assert not near.put("k", 4, ("p:x",), stamp=stamp, size=1)  # stamped before: refused
        assert near.put("k", 5, ("p:x",), stamp=near.stamp(), size=1)
        await publisher.publish(near_cache.CHANNEL, near_cache.ALL)
        await eventually(dropped, "'*' applied")
        assert listener.subscriptions == 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await redis.aclose()
        await publisher.aclose()
        server.stop()
