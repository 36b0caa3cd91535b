"""MongoDB commands per API request, by path: the profile behind the tuning log.

Starts its own dev servers, builds the API in-process (``create_app``) with a PyMongo
command listener, seeds a project of ``--tasks`` tasks through the API, then sends
``--requests`` sequential requests per path and prints, per path, every MongoDB command
the requests caused (count per request, mean server time, time per request). Counts are
exact; times are the dev server's and vary with the machine's load.

    .venv/bin/python benchmarks/mongo_ops.py                 # 2,000 tasks, 100 requests
    .venv/bin/python benchmarks/mongo_ops.py --tasks 500 --paths create,patch
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from pymongo import AsyncMongoClient, monitoring

from planboard.app import create_app
from planboard.config import RateLimit, Settings
from planboard.store import migrations
from planboard_devstack.stack import Endpoints, InfraStack

PATHS = ("get", "list", "progress", "create", "patch")


class Recorder(monitoring.CommandListener):
    """Server time of every command by ``command collection``."""

    def __init__(self) -> None:
        self.names: dict[int, str] = {}
        self.times: dict[str, list[float]] = collections.defaultdict(list)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        target = event.command.get(event.command_name)
        self.names[event.request_id] = target if isinstance(target, str) else ""

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        name = f"{event.command_name} {self.names.pop(event.request_id, '')}".strip()
        self.times[name].append(event.duration_micros / 1000)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self.times[f"FAILED {event.command_name}"].append(event.duration_micros / 1000)


async def measure(endpoints: Endpoints, args: argparse.Namespace, recorder: Recorder) -> None:
    settings = Settings(
        env="test",
        mongodb_uri=endpoints.mongodb_uri,
        mongodb_db=f"mongo_ops_{uuid.uuid4().hex[:6]}",
        kafka_bootstrap=endpoints.kafka_bootstrap,
        redis_url=endpoints.redis_url,
        smtp_host=endpoints.smtp_host,
        smtp_port=endpoints.smtp_port,
        access_log=False,
        rate_limit_auth=RateLimit(10**6, 60),
        rate_limit_api=RateLimit(10**6, 60),
    )
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_uri)
    await migrations.migrate(mongo[settings.mongodb_db])
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    try:
        email, password = f"ops-{uuid.uuid4().hex[:6]}@example.com", "mongo-Ops-Pa55-x9"
        body = {"email": email, "password": password, "name": "Ops"}
        await (await client.post("/api/v1/auth/register", json=body)).read()
        login = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
        headers = {"Authorization": f"Bearer {(await login.json())['access_token']}"}
        ws = await (
            await client.post("/api/v1/workspaces", json={"name": "W"}, headers=headers)
        ).json()
        project = await (
            await client.post(
                f"/api/v1/workspaces/{ws['id']}/projects",
                json={"name": "P", "key": "OPS"},
                headers=headers,
            )
        ).json()
        ids: list[str] = []
        for start in range(0, args.tasks, 500):
            batch = [{"title": f"t{i}"} for i in range(start, min(start + 500, args.tasks))]
            answer = await client.post(
                f"/api/v1/projects/{project['id']}/tasks/bulk",
                json={"tasks": batch},
                headers=headers,
            )
            ids += [t["id"] for t in (await answer.json())["items"]]
        base = f"/api/v1/projects/{project['id']}"
        for path in args.paths:
            recorder.times.clear()
            began = time.perf_counter()
            for i in range(args.requests):
                if path == "get":
                    r = await client.get(f"/api/v1/tasks/{ids[i % 20]}", headers=headers)
                elif path == "list":
                    r = await client.get(f"{base}/tasks?status=todo&limit=50", headers=headers)
                elif path == "progress":
                    r = await client.get(f"{base}/progress", headers=headers)
                elif path == "create":
                    r = await client.post(f"{base}/tasks", json={"title": f"x{i}"}, headers=headers)
                else:
                    status = "in_progress" if i % 2 == 0 else "todo"
                    r = await client.patch(
                        f"/api/v1/tasks/{ids[i % 50]}", json={"status": status}, headers=headers
                    )
                await r.read()
                if r.status >= 300:
                    raise SystemExit(f"{path}: HTTP {r.status}: {await r.text()}")
            wall = time.perf_counter() - began
            n = args.requests
            total = sum(sum(v) for v in recorder.times.values())
            print(f"\n{path}: {n} sequential requests, {n / wall:.0f} req/s in-process")
            print(f"  {'command':32} {'per request':>11} {'mean ms':>8} {'ms/request':>10}")
            for name, times in sorted(recorder.times.items(), key=lambda kv: -sum(kv[1])):
                print(
                    f"  {name:32} {len(times) / n:11.2f} {sum(times) / len(times):8.2f} "
                    f"{sum(times) / n:10.2f}"
                )
            print(f"  {'MongoDB time per request':32} {'':11} {'':8} {total / n:10.2f}")
    finally:
        await client.close()
        await mongo.drop_database(settings.mongodb_db)
        await mongo.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--paths", default=",".join(PATHS), help=f"from {','.join(PATHS)}")
    args = parser.parse_args()
    args.paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    unknown = set(args.paths) - set(PATHS)
    if unknown:
        parser.error(f"unknown paths {sorted(unknown)}")
    recorder = Recorder()
    monitoring.register(recorder)  # before create_app builds its client
    with tempfile.TemporaryDirectory(prefix="pb-mongo-ops-") as tmp:
        stack = InfraStack(Path(tmp) / "servers")
        endpoints = stack.start()
        try:
            asyncio.run(measure(endpoints, args, recorder))
        finally:
            stack.stop()


if __name__ == "__main__":
    sys.exit(main())
