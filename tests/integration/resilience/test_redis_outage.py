"""Redis stopped and started again under a light load: the API keeps serving with the
documented degradation (docs/security.md, docs/architecture.md "Caching",
docs/operations.md) and uses Redis again once it is back, without a restart.

- Rate limits fail open: no 429 and no ``RateLimit-*`` headers while Redis is down; limits
  count again after it returns.
- The read-through cache is bypassed (reads come from MongoDB, never a 5xx); cache hits
  resume afterwards, and a write made during the outage is never hidden by a value cached
  before it.
- Session revocation falls back to MongoDB ("slower, still correct") and stays correct
  after Redis returns, whether Redis kept its data or lost it.
- ``/readyz`` stays 200 while it is down (Redis does not gate readiness: the pods stay in
  their Service) and reports redis as down and degraded; up again after.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from redis import Redis as SyncRedis
from redis.exceptions import RedisError

from planboard.app import create_app
from planboard.config import RateLimit
from planboard.typedefs import metrics_key
from planboard_devstack.paths import free_port
from planboard_devstack.redis import RedisServer
from tests.utils.api import expect, login, new_project, new_task, new_user, new_workspace

pytestmark = pytest.mark.integration

AUTH_LIMIT = 12  # per client IP in the window below: small enough to reach in a test
WAIT_S = 60.0  # every wait is bounded by this
SESSION_CHECK = "/api/v1/workspaces"  # any authenticated call outside the auth limit


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A Redis of this module's own, so stopping it disturbs no other test."""
    server = RedisServer(tmp_path_factory.mktemp("redis-outage"), free_port())
    server.start()
    yield server
    server.stop()


@pytest_asyncio.fixture(scope="module")
async def api(own_redis: RedisServer, settings, db) -> AsyncIterator[TestClient[Any, Any]]:
    tagged = settings.replace(
        redis_url=own_redis.url,
        dependency_timeout_s=0.5,
        rate_limit_auth=RateLimit(AUTH_LIMIT, 3600),
        rate_limit_api=RateLimit(100_000, 60),  # headers on every call, never a refusal
    )
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(tagged)))
    await client.start_server()
    yield client
    await client.close()


def stop_redis(server: RedisServer, *, keep_data: bool) -> None:
    """Stop the server; with ``keep_data`` it saves a snapshot first (``SHUTDOWN SAVE``), so
    it comes back with every key it had, like a persistent Redis or a network partition."""
    if keep_data:
        with contextlib.suppress(RedisError):
            SyncRedis(host=server.host, port=server.port, socket_timeout=10).shutdown(save=True)
        assert server.process is not None
        deadline = time.monotonic() + WAIT_S
        while server.process.poll() is None:
            assert time.monotonic() < deadline, "redis did not shut down"
            time.sleep(0.05)
    server.stop()


def lookups(client: TestClient[Any, Any], kind: str, result: str) -> float:
    registry = client.app[metrics_key].registry
    labels = {"kind": kind, "result": result}
    return float(registry.get_sample_value("planboard_cache_requests_total", labels) or 0.0)


async def wait_until(check, what: str, timeout: float = WAIT_S) -> float:  # type: ignore[no-untyped-def]
    """Poll the async ``check`` until it is true; the seconds it took."""
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < timeout, f"{what}: not within {timeout:.0f} s"
        await asyncio.sleep(0.1)
    return time.monotonic() - started


def dependency_up(client: TestClient[Any, Any], dependency: str) -> float | None:
    registry = client.app[metrics_key].registry
    return registry.get_sample_value("planboard_dependency_up", {"dependency": dependency})


async def readyz(client: TestClient[Any, Any]) -> tuple[int, dict[str, Any]]:
    response = await client.get("/readyz")
    return response.status, await response.json(content_type=None)


class Load:
    """A few clients reading and writing one project's tasks until stopped; every status
    is counted (a 5xx or a transport error fails the test)."""

    def __init__(self, client: TestClient[Any, Any], user, project: dict[str, Any], tasks) -> None:  # type: ignore[no-untyped-def]
        self.client, self.user, self.project, self.tasks = client, user, project, tasks
        self.statuses: Counter[int] = Counter()
        self.errors: list[str] = []
        self._stop = asyncio.Event()
        self._runners: list[asyncio.Task[None]] = []

    async def _one(self, n: int) -> None:
        h = self.user.headers
        task = self.tasks[n % len(self.tasks)]
        calls = [
            lambda: self.client.get(f"/api/v1/tasks/{task['id']}", headers=h),
            lambda: self.client.get(f"/api/v1/projects/{self.project['id']}/progress", headers=h),
            lambda: self.client.patch(
                f"/api/v1/tasks/{task['id']}", json={"title": f"load {n}"}, headers=h
            ),
            lambda: self.client.get(f"/api/v1/projects/{self.project['id']}", headers=h),
        ]
        i = 0
        while not self._stop.is_set():
            try:
                async with asyncio.timeout(30):
                    response = await calls[i % len(calls)]()
                    await response.read()
                self.statuses[response.status] += 1
            except (TimeoutError, OSError) as exc:
                self.errors.append(repr(exc))
            i += 1
            await asyncio.sleep(0.05)

    def start(self, clients: int = 3) -> None:
        self._runners = [asyncio.create_task(self._one(n)) for n in range(clients)]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._runners)


async def test_sessions_ended_before_a_restart_that_lost_redis_data_stay_ended(
    own_redis: RedisServer, api: TestClient[Any, Any]
) -> None:
    owner = await new_user(api)
    ended = await login(api, replace(owner, access_token=""))
    await expect(await api.post("/api/v1/auth/logout", json={}, headers=ended.headers), 204)
    assert (await api.get(SESSION_CHECK, headers=ended.headers)).status == 401

    await asyncio.to_thread(stop_redis, own_redis, keep_data=False)  # every key is lost
    await asyncio.to_thread(own_redis.start)

    async def ready() -> bool:
        status, body = await readyz(api)
        return status == 200 and body["degraded"] == []

    await wait_until(ready, "readyz without degradation after redis returned")
    for _ in range(3):
        assert (await api.get(SESSION_CHECK, headers=ended.headers)).status == 401
        assert (await api.get(SESSION_CHECK, headers=owner.headers)).status == 200


async def test_redis_outage_degrades_as_documented_and_recovers(
    own_redis: RedisServer, api: TestClient[Any, Any]
) -> None:
    owner = await new_user(api)
    ws = await new_workspace(api, owner)
    project = await new_project(api, owner, ws)
    # The load works on a project of its own: its writes must not invalidate the watched one.
    loaded = await new_project(api, owner, ws)
    tasks = [await new_task(api, owner, loaded["id"], title=f"t{i}") for i in range(3)]
    watched = await new_task(api, owner, project["id"], title="before the outage")
    watched_path = f"/api/v1/tasks/{watched['id']}"
    progress_path = f"/api/v1/projects/{project['id']}/progress"
    # Sessions: one ended before the outage, one ended during it, one that stays valid.
    ended_before = await login(api, replace(owner, access_token=""))
    ended_during = await login(api, replace(owner, access_token=""))
    await expect(await api.post("/api/v1/auth/logout", json={}, headers=ended_before.headers), 204)
    assert (await api.get(SESSION_CHECK, headers=ended_before.headers)).status == 401

    # The cache serves the watched task and the progress before the outage.
    for path in (watched_path, progress_path, watched_path, progress_path):
        await expect(await api.get(path, headers=owner.headers), 200)
    assert lookups(api, "task", "hit") + lookups(api, "task", "near") >= 1
    first = await api.get(watched_path, headers=owner.headers)
    assert "RateLimit-Remaining" in first.headers

    load = Load(api, owner, loaded, tasks)
    load.start()
    try:
        await asyncio.to_thread(stop_redis, own_redis, keep_data=True)
        down_at = time.monotonic()

        # /readyz reports redis (and only redis) as degraded within a bounded time, and
        # stays 200 throughout: a Redis outage keeps the pods in their Service.
        async def redis_reported_down() -> bool:
            status, body = await readyz(api)
            assert status == 200, body
            return bool(body["degraded"] == ["redis"])

        await wait_until(redis_reported_down, "readyz naming redis degraded")
        status, body = await readyz(api)
        assert status == 200, body
        assert body["checks"]["redis"]["status"] == "down"
        assert body["checks"]["mongodb"]["status"] == "up"
        assert dependency_up(api, "redis") == 0

        # Writes and reads during the outage: served from MongoDB, read back at once.
        errors_before = lookups(api, "task", "error")
        patched = await api.patch(
            watched_path,
            json={"title": "during the outage", "status": "done"},
            headers=owner.headers,
        )
        assert (await expect(patched, 200))["title"] == "during the outage"
        got = await api.get(watched_path, headers=owner.headers)
        assert (await expect(got, 200))["title"] == "during the outage"
        assert "RateLimit-Remaining" not in got.headers  # limits fail open, no headers
        assert lookups(api, "task", "error") > errors_before  # the cache was bypassed
        progress = await expect(await api.get(progress_path, headers=owner.headers), 200)
        assert progress["completed"] == 1

        # Rate limits fail open: more auth calls than the limit, none refused.
        wrong = {"email": owner.email, "password": "not the password at all"}
        for _ in range(AUTH_LIMIT + 1):
            assert (await api.post("/api/v1/auth/login", json=wrong)).status == 401

        # Revocation falls back to MongoDB: a logout now ends the session at once.
        await expect(
            await api.post("/api/v1/auth/logout", json={}, headers=ended_during.headers), 204
        )
        assert (await api.get(SESSION_CHECK, headers=ended_during.headers)).status == 401
        assert (await api.get(SESSION_CHECK, headers=ended_before.headers)).status == 401
        assert (await api.get(SESSION_CHECK, headers=owner.headers)).status == 200
        down_for = time.monotonic() - down_at

        up_at = time.monotonic()
        await asyncio.to_thread(own_redis.start)  # same port, same data

        async def ready() -> bool:
            status, body = await readyz(api)
            return status == 200 and body["degraded"] == []

        await wait_until(ready, "readyz without degradation after redis returned")
        ready_after = time.monotonic() - up_at
        assert dependency_up(api, "redis") == 1

        async def limited_again() -> bool:
            response = await api.get(progress_path, headers=owner.headers)
            await response.read()
            return "RateLimit-Remaining" in response.headers

        await wait_until(limited_again, "rate-limit headers back")
        limits_after = time.monotonic() - up_at

        # The write made during the outage is what the cache serves now, not the value
        # it held from before the outage.
        for _ in range(3):
            body = await expect(await api.get(watched_path, headers=owner.headers), 200)
            assert body["title"] == "during the outage"
            assert body["status"] == "done"
        hits = lookups(api, "task", "hit") + lookups(api, "task", "near")

        async def hit_again() -> bool:
            await expect(await api.get(watched_path, headers=owner.headers), 200)
            return lookups(api, "task", "hit") + lookups(api, "task", "near") > hits

        await wait_until(hit_again, "cache hits resumed")
        hits_after = time.monotonic() - up_at
        assert (await expect(await api.get(watched_path, headers=owner.headers), 200))[
            "title"
        ] == "during the outage"
        progress = await expect(await api.get(progress_path, headers=owner.headers), 200)
        assert progress["completed"] == 1

        # Both ended sessions stay ended; the live one still works.
        assert (await api.get(SESSION_CHECK, headers=ended_during.headers)).status == 401
        assert (await api.get(SESSION_CHECK, headers=ended_before.headers)).status == 401
        assert (await api.get(SESSION_CHECK, headers=owner.headers)).status == 200

        # Rate limiting counts again: the auth limit is reached within its size.
        refused = 0
        for _ in range(AUTH_LIMIT + 1):
            if (await api.post("/api/v1/auth/login", json=wrong)).status == 429:
                refused += 1
                break
        assert refused, "the auth limit was never enforced after redis returned"
    finally:
        await load.stop()
    assert not load.errors, load.errors[:5]
    assert not [s for s in load.statuses if s >= 500], load.statuses
    assert sum(load.statuses.values()) > 0
    print(
        f"\nredis outage (data kept): down {down_for:.1f} s; load {dict(load.statuses)}; "
        f"from the restart command: readyz reports redis up after {ready_after:.2f} s, "
        f"rate limits after {limits_after:.2f} s, cache hits after {hits_after:.2f} s"
    )
