"""Search latency at 100k indexed tasks, on the dev MongoDB server or a real MongoDB.

Bulk-inserts index entries straight into ``search_index`` (built with the same code the
worker uses: ``services.search.task_entry``), then times the API's search path
(``services.search.search``: membership lookup, the ``$text`` query on the tokens index with
the workspace ``$in``, bounded candidates, ranking in Python) for a mix of typical
queries, 200 timed queries per run (after 10 warm-up ones).

    .venv/bin/python benchmarks/search_100k.py                       # starts nx-27017
    .venv/bin/python benchmarks/search_100k.py --mongodb 'mongodb://127.0.0.1:27017/'
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from planboard.services.access import Caller
from planboard.services.search import SearchQuery, search, task_entry
from planboard.store import migrations
from planboard_devstack.mongo import mongo_server
from planboard_devstack.paths import free_port

VOCABULARY = (
    "deploy database backup restore schema migration index query cache redis kafka "
    "consumer producer relay outbox webhook signature retry backoff timeout latency "
    "throughput dashboard report export import markdown parser token session login "
    "password reset invite member role project phase task comment label status "
    "progress critical path estimate review release staging production rollback "
    "monitoring alert metric trace span log error fix bug feature refactor test"
)
WORDS = VOCABULARY.split()


def machine() -> str:
    cpu = "unknown"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as info:
        mem_gib = int(info.readline().split()[1]) / 1024 / 1024
    load = os.getloadavg()[0]
    return (
        f"nproc {os.cpu_count()}, CPU {cpu!r}, {mem_gib:.1f} GiB RAM, "
        f"Python {platform.python_version()}, load avg (1 min) {load:.1f}"
    )


def fake_task(i: int, rng: random.Random, workspace_id: str, projects: list[str]) -> dict[str, Any]:
    title = " ".join(rng.choices(WORDS, k=rng.randint(3, 7)))
    body = " ".join(rng.choices(WORDS, k=rng.randint(10, 40)))
    when = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=i * 37)
    return {
        "_id": uuid.uuid4().hex[:24],
        "workspace_id": workspace_id,
        "project_id": rng.choice(projects),
        "key": f"BN-{i + 1}",
        "title": f"{title} {i}",
        "description": body,
        "status": rng.choice(["todo", "in_progress", "done", "blocked"]),
        "assignee_id": None,
        "labels": rng.sample(["ops", "api", "ui", "db"], k=rng.randint(0, 2)),
        "updated_at": when,
    }


QUERIES: list[tuple[str, dict[str, Any]]] = [
    ("one common word", {"q": "deploy"}),
    ("one common prefix", {"q": "dep"}),
    ("two words", {"q": "database backup"}),
    ("three words", {"q": "kafka consumer retry"}),
    ("a task key", {"q": "BN-4711"}),
    ("a rare number", {"q": "99999"}),
    ("word + status filter", {"q": "cache", "statuses": ("done",)}),
    ("no match", {"q": "zzzqqq"}),
]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mongodb", help="a MongoDB URI (default: start nx-27017)")
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()

    server = None
    uri = args.mongodb
    if uri is None:
        run_dir = Path(tempfile.mkdtemp(prefix="pb-search-bench-"))
        server = mongo_server("nx", run_dir, free_port())
        server.start()
        uri = server.url
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True)
    name = f"search_bench_{uuid.uuid4().hex[:8]}"
    db = client[name]
    try:
        await migrations.migrate(db)
        rng = random.Random(42)  # noqa: S311 (fake data, reproducible)
        user, ws = "u" * 24, "w" * 24
        other = "x" * 24  # a workspace the caller is not in: isolation costs included
        await db.memberships.insert_one({"_id": "m1", "workspace_id": ws, "user_id": user})
        projects = [f"p{n:023d}" for n in range(20)]
        started = time.perf_counter()
        batch: list[dict[str, Any]] = []
        for i in range(args.tasks):
            batch.append(task_entry(fake_task(i, rng, ws if i % 10 else other, projects)))
            if len(batch) == 2000:
                await db.search_index.insert_many(batch, ordered=False)
                batch = []
        if batch:
            await db.search_index.insert_many(batch, ordered=False)
        load_s = time.perf_counter() - started
        print(f"inserted {args.tasks} index entries in {load_s:.1f} s ({machine()})")
        caller = Caller(user_id=user, scopes=None)
        print(f"{'query':<24} {'hits':>5} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
        overall: list[float] = []
        for label, spec in QUERIES:
            query = SearchQuery(**spec)
            for _ in range(3):
                await search(db, caller, query, after=None, limit=20)
            timings: list[float] = []
            hits = 0
            for _ in range(max(1, args.queries // len(QUERIES))):
                t0 = time.perf_counter()
                found, _more = await search(db, caller, query, after=None, limit=20)
                timings.append((time.perf_counter() - t0) * 1000)
                hits = len(found)
            overall += timings
            timings.sort()
            p95 = timings[int(0.95 * (len(timings) - 1))]
            print(
                f"{label:<24} {hits:>5} {statistics.median(timings):>8.1f} "
                f"{p95:>8.1f} {timings[-1]:>8.1f}"
            )
        overall.sort()
        print(
            f"{'all ' + str(len(overall)) + ' queries':<24} {'':>5} "
            f"{statistics.median(overall):>8.1f} {overall[int(0.95 * (len(overall) - 1))]:>8.1f} "
            f"{overall[-1]:>8.1f}"
        )
    finally:
        await client.drop_database(name)
        await client.close()
        if server is not None:
            server.stop()


if __name__ == "__main__":
    asyncio.run(main())
