"""Soak: several minutes of mixed load against a ``planboard serve`` process, with the
relay and the notifications, jobs and search workers running, while the API process's
resident memory is sampled. Memory must be flat after the warm-up and no request may fail.

``PLANBOARD_SOAK_SECONDS`` sets the length (default 180). Run with ``-s`` to see the
figures::

    .venv/bin/pytest tests/integration/resilience/test_soak.py -s
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections import Counter, deque
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from planboard.config import Settings
from tests.integration.resilience.processes import ApiProcess, planboard_env
from tests.utils.api import User, new_project, new_user, new_workspace

SOAK_S = float(os.environ.get("PLANBOARD_SOAK_SECONDS") or 180)
CLIENTS = 6
SAMPLE_EVERY_S = 2.0
KEEP_TASKS = 40  # per client: older tasks are deleted, so the data set stays the same size
# Flat: the median RSS of the last third within MAX_STEP_MB of the second third's, and the
# least-squares slope over both below MAX_SLOPE_MB_PER_MIN (the first third is warm-up).
MAX_STEP_MB = 4.0
MAX_SLOPE_MB_PER_MIN = 1.0

pytestmark = [
    pytest.mark.integration,
    pytest.mark.soak,
    pytest.mark.timeout(int(SOAK_S) + 300),
]

MB = 1024 * 1024


def slope_per_minute(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) points, per minute."""
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    num = sum((t - mean_t) * (v - mean_v) for t, v in points)
    den = sum((t - mean_t) ** 2 for t, _ in points)
    return num / den * 60.0


class Mix:
    """One client's loop over the main paths on a project of its own."""

    EXPECTED = {
        "create": 201,
        "get": 200,
        "patch status": 200,
        "list filtered": 200,
        "progress": 200,
        "comment": 201,
        "comments": 200,
        "search": 200,
        "delete": 204,
    }

    def __init__(self, http: aiohttp.ClientSession, user: User, project: dict[str, Any]) -> None:
        self.http, self.user, self.project = http, user, project
        self.tasks: deque[str] = deque()
        self.done: Counter[str] = Counter()
        self.failures: list[str] = []

    async def _call(self, name: str, method: str, path: str, **kwargs: Any) -> Any:
        try:
            async with asyncio.timeout(60):
                response = await self.http.request(
                    method, path, headers=self.user.headers, **kwargs
                )
                body = await response.read()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            self.failures.append(f"{name}: {type(exc).__name__}")
            return None
        if response.status != self.EXPECTED[name]:
            self.failures.append(f"{name}: {response.status} {body[:200]!r}")
            return None
        self.done[name] += 1
        return await response.json(content_type=None) if body else None

    async def run(self, until: float, n: int) -> None:
        pid = self.project["id"]
        statuses = ("in_progress", "done", "todo")
        i = 0
        while time.monotonic() < until:
            created = await self._call(
                "create",
                "POST",
                f"/api/v1/projects/{pid}/tasks",
                json={"title": f"soak{n} item {i}", "estimate_hours": 1.5},
            )
            if created is not None:
                self.tasks.append(created["id"])
            if self.tasks:
                task = self.tasks[i % len(self.tasks)]
                await self._call("get", "GET", f"/api/v1/tasks/{task}")
                await self._call(
                    "patch status",
                    "PATCH",
                    f"/api/v1/tasks/{task}",
                    json={"status": statuses[i % 3]},
                )
                await self._call(
                    "comment", "POST", f"/api/v1/tasks/{task}/comments", json={"body": f"c{i}"}
                )
                await self._call("comments", "GET", f"/api/v1/tasks/{task}/comments")
            await self._call(
                "list filtered",
                "GET",
                f"/api/v1/projects/{pid}/tasks",
                params={"status": "todo", "limit": "50"},
            )
            await self._call("progress", "GET", f"/api/v1/projects/{pid}/progress")
            await self._call(
                "search", "GET", "/api/v1/search", params={"q": f"soak{n}", "limit": "20"}
            )
            while len(self.tasks) > KEEP_TASKS:
                await self._call("delete", "DELETE", f"/api/v1/tasks/{self.tasks.popleft()}")
            i += 1


async def test_mixed_load_soak_keeps_memory_flat(
    settings: Settings, db, pipeline: None, tmp_path: Path
) -> None:
    api = ApiProcess(planboard_env(settings), tmp_path / "api.log")
    api.start()
    samples: list[tuple[float, float]] = []
    try:
        await asyncio.to_thread(api.wait_ready)
        connector = aiohttp.TCPConnector(limit=CLIENTS * 2)
        async with aiohttp.ClientSession(base_url=api.base, connector=connector) as http:
            owner = await new_user(http)
            ws = await new_workspace(http, owner)
            mixes = [Mix(http, owner, await new_project(http, owner, ws)) for _ in range(CLIENTS)]
            started = time.monotonic()
            until = started + SOAK_S
            load = [asyncio.create_task(m.run(until, n)) for n, m in enumerate(mixes)]
            try:
                while time.monotonic() < until:
                    assert api.alive(), api.log_tail()
                    samples.append((time.monotonic() - started, api.rss_bytes() / MB))
                    await asyncio.sleep(SAMPLE_EVERY_S)
                async with asyncio.timeout(120):
                    await asyncio.gather(*load)
            finally:
                for task in load:
                    task.cancel()
                await asyncio.gather(*load, return_exceptions=True)
            elapsed = time.monotonic() - started
        code = await asyncio.to_thread(api.stop)
    finally:
        api.stop()
    assert code == 0, api.log_tail()

    done: Counter[str] = sum((m.done for m in mixes), Counter())
    failures = [f for m in mixes for f in m.failures]
    requests = sum(done.values())
    third = len(samples) // 3
    assert third >= 3, f"too few samples ({len(samples)}): PLANBOARD_SOAK_SECONDS too small"
    second = [v for _, v in samples[third : 2 * third]]
    last = [v for _, v in samples[2 * third :]]
    step = statistics.median(last) - statistics.median(second)
    slope = slope_per_minute(samples[third:])
    print(
        f"\nsoak {elapsed:.0f} s, {CLIENTS} clients: {requests} requests "
        f"({requests / elapsed:.1f} req/s), {len(failures)} failed; by path {dict(done)}\n"
        f"API RSS (MB): start {samples[0][1]:.1f}, after warm-up {samples[third][1]:.1f}, "
        f"end {samples[-1][1]:.1f}, max {max(v for _, v in samples):.1f}; median of the 2nd "
        f"third {statistics.median(second):.1f}, of the last third {statistics.median(last):.1f} "
        f"(step {step:+.2f}); slope after warm-up {slope:+.2f} MB/min; {len(samples)} samples"
    )
    assert not failures, failures[:10]
    assert all(done[name] > 0 for name in Mix.EXPECTED), done
    assert step < MAX_STEP_MB, f"RSS grew {step:.2f} MB between the 2nd and last third"
    assert slope < MAX_SLOPE_MB_PER_MIN, f"RSS grows {slope:.2f} MB/min after warm-up"
