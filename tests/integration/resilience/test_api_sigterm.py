"""``planboard serve`` receives SIGTERM under a steady concurrent load: readiness fails
first while the listener keeps serving, every request accepted before the signal completes
normally, the process exits 0 within its grace period, and MongoDB holds exactly the tasks
that were answered 201 (nothing half-done)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from planboard.config import Settings
from tests.integration.resilience.processes import ApiProcess, planboard_env
from tests.utils.api import new_project, new_user, new_workspace

pytestmark = pytest.mark.integration

CREATORS = 12
READERS = 4
DELAY_S = 3.0  # PLANBOARD_SHUTDOWN_DELAY_S: readiness fails, the listener still serves
TIMEOUT_S = 25.0  # PLANBOARD_SHUTDOWN_TIMEOUT_S: how long in-flight requests may finish
CONNECTION_ERRORS = (aiohttp.ClientConnectionError, OSError)


@dataclass
class Call:
    kind: str  # "create" or "read"
    started: float
    ended: float = 0.0
    status: int | None = None
    error: str | None = None


async def test_sigterm_under_load_drains_and_loses_nothing(
    settings: Settings, db, tmp_path: Path
) -> None:
    env = planboard_env(
        settings,
        PLANBOARD_SHUTDOWN_DELAY_S=str(DELAY_S),
        PLANBOARD_SHUTDOWN_TIMEOUT_S=str(TIMEOUT_S),
    )
    api = ApiProcess(env, tmp_path / "api.log")
    api.start()
    try:
        await asyncio.to_thread(api.wait_ready)
        connector = aiohttp.TCPConnector(limit=CREATORS + READERS + 4)
        async with aiohttp.ClientSession(base_url=api.base, connector=connector) as http:
            owner = await new_user(http)
            ws = await new_workspace(http, owner)
            project = await new_project(http, owner, ws)
            calls: list[Call] = []
            signalled = asyncio.Event()
            refused = asyncio.Event()  # the listener has closed
            h = owner.headers

            async def one(kind: str, n: int) -> None:
                i = 0
                while not refused.is_set():
                    call = Call(kind, time.monotonic())
                    calls.append(call)
                    try:
                        async with asyncio.timeout(TIMEOUT_S + 30):
                            if kind == "create":
                                response = await http.post(
                                    f"/api/v1/projects/{project['id']}/tasks",
                                    json={"title": f"c{n}-{i}"},
                                    headers=h,
                                )
                            elif i % 2:
                                response = await http.get(
                                    f"/api/v1/projects/{project['id']}/progress", headers=h
                                )
                            else:
                                response = await http.get(
                                    f"/api/v1/projects/{project['id']}/tasks",
                                    params={"limit": "20"},
                                    headers=h,
                                )
                            await response.read()
                        call.status = response.status
                    except CONNECTION_ERRORS as exc:
                        call.error = type(exc).__name__
                        if signalled.is_set():
                            refused.set()  # expected once the listener has closed
                    call.ended = time.monotonic()
                    i += 1

            load = [asyncio.create_task(one("create", n)) for n in range(CREATORS)]
            load += [asyncio.create_task(one("read", n)) for n in range(READERS)]
            try:
                deadline = time.monotonic() + 120
                while sum(c.status == 201 for c in calls) < 3 * CREATORS:
                    assert time.monotonic() < deadline, "the load made too little progress"
                    assert not any(c.error for c in calls), [c.error for c in calls]
                    await asyncio.sleep(0.05)
                in_flight = sum(1 for c in calls if c.ended == 0.0)
                sigterm_at = time.monotonic()
                api.terminate()
                signalled.set()

                # Readiness turns 503 at once, while the API still answers.
                first_503: float | None = None
                readyz_503: dict[str, Any] = {}
                async with aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(force_close=True)
                ) as probe:
                    while time.monotonic() - sigterm_at < DELAY_S + TIMEOUT_S:
                        try:
                            async with probe.get(api.base + "/readyz") as response:
                                if response.status == 503 and first_503 is None:
                                    first_503 = time.monotonic()
                                    readyz_503 = await response.json(content_type=None)
                        except CONNECTION_ERRORS:
                            break  # the listener has closed
                        await asyncio.sleep(0.05)
                listener_closed = time.monotonic()
                code = await asyncio.to_thread(api.wait, DELAY_S + TIMEOUT_S + 15)
                exited_at = time.monotonic()
                refused.set()
                async with asyncio.timeout(TIMEOUT_S + 60):
                    await asyncio.gather(*load)
            finally:
                refused.set()
                for task in load:
                    task.cancel()
                await asyncio.gather(*load, return_exceptions=True)
    finally:
        api.stop()

    assert code == 0, api.log_tail()
    assert exited_at - sigterm_at < DELAY_S + TIMEOUT_S, "not within the grace period"
    assert in_flight > 0, "nothing was in flight at SIGTERM: the test proved nothing"
    assert first_503 is not None and first_503 - sigterm_at < DELAY_S, "readyz never 503"
    assert "shutting-down" in readyz_503["down"], readyz_503
    before = [c for c in calls if c.started < sigterm_at]
    after = [c for c in calls if c.started >= sigterm_at]
    # Every request accepted before SIGTERM completed with its normal answer.
    bad = [c for c in before if c.error or c.status not in (200, 201)]
    assert not bad, bad[:5]
    # After it: a normal answer while the listener was open, a refused connection after;
    # never a 5xx or a reset mid-answer.
    assert not [c for c in after if c.status is not None and c.status not in (200, 201)]
    served_while_draining = [c for c in after if c.status in (200, 201)]
    assert served_while_draining, "nothing was served during the drain delay"
    created = sum(1 for c in calls if c.status == 201)
    stored = await db.tasks.count_documents({"project_id": project["id"]})
    assert stored == created, (stored, created)
    print(
        f"\nSIGTERM under load ({CREATORS} creating, {READERS} reading): {len(before)} "
        f"requests before the signal ({in_flight} in flight at it), all 2xx; "
        f"{len(served_while_draining)} served during the {DELAY_S:.0f} s drain, readyz 503 "
        f"after {first_503 - sigterm_at:.2f} s, listener closed after "
        f"{listener_closed - sigterm_at:.2f} s, exit 0 after {exited_at - sigterm_at:.2f} s; "
        f"{created} tasks answered 201 = {stored} in MongoDB"
    )
