"""End-to-end event and webhook benchmark against a running stack (``planboard dev``).

Path measured: API write (state + outbox event(s) in one write unit) → relay → Kafka →
``webhooks`` worker (fan-out into delivery records, then the delivery loop) → an HTTP
receiver started by this script on 127.0.0.1 (``planboard dev`` allows loopback
targets). The receiver checks every signature and counts every event id, so a
duplicate or a bad signature shows. Writes and receipts are timed on one clock
(``time.perf_counter`` in this process).

Writes (``--write``), all through the public API, each producing real domain events:

- ``bulk``: ``POST /projects/{id}/tasks/bulk`` of ``--bulk-size`` tasks (one
  ``task.created`` event per task), spread round-robin over ``--projects`` projects;
- ``task``: ``POST /projects/{id}/tasks`` (one ``task.created``), round-robin likewise;
- ``rename``: ``PATCH /workspaces/{id}`` (one ``workspace.updated``).

    planboard dev &                                                  # in another terminal
    python benchmarks/webhooks_e2e.py --write bulk --events 10000 --concurrency 4   # throughput
    python benchmarks/webhooks_e2e.py --write task --events 3000 --rate 100 --concurrency 8

``benchmarks/events_bench.py`` (``make bench-events``) starts its own stack(s) and runs
both scenarios. Reports events/s (received events / time from the first write to the
last receipt, and the rate between the 10th and the 90th percentile of receipts) and the
per-event latency from sending its write to receiving its webhook (p50/p95/p99/max).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
from aiohttp import web

MAX_TASKS_PER_PROJECT = 10_000


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as info:
            mem_kb = int(info.readline().split()[1])
    except OSError:
        mem_kb = 0
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "load_avg": os.getloadavg(),
    }


@dataclass(frozen=True, slots=True)
class Scenario:
    write: str = "bulk"  # bulk | task | rename
    events: int = 10_000
    rate: float = 0.0  # events/s the writes are paced at (0: as fast as they go)
    concurrency: int = 4  # API requests in flight
    bulk_size: int = 500
    projects: int = 20
    # written while the relay is held, then drained at once: the pipeline's own rate
    backlog: bool = False

    @property
    def per_write(self) -> int:
        return self.bulk_size if self.write == "bulk" else 1

    def describe(self) -> str:
        what = {
            "bulk": f"bulk task creates ({self.bulk_size} per request)",
            "task": "single task creates",
            "rename": "workspace renames",
        }[self.write]
        pace = f"paced at {self.rate:g} events/s" if self.rate else "unpaced"
        held = ", into the outbox while the relay is held, then released" if self.backlog else ""
        return f"{self.events:,} events, {what}, {pace}, {self.concurrency} writers{held}"


class Receiver:
    """The webhook endpoint: checks signatures, counts each event id, times first receipts."""

    def __init__(self, expected: int) -> None:
        self.secret = ""
        self.expected = expected
        self.received: dict[str, float] = {}  # match key (task id / name) -> first receipt
        self.per_event: dict[str, int] = {}  # event id -> receipts
        self.bad_signatures = 0
        self.done = asyncio.Event()
        self.arrived = asyncio.Event()
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.per_event.values())

    async def handle(self, request: web.Request) -> web.Response:
        now = time.perf_counter()
        raw = await request.read()
        digest = hmac.new(self.secret.encode(), raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(f"sha256={digest}", request.headers["X-Planboard-Signature"]):
            self.bad_signatures += 1
        body = json.loads(raw)
        event_id = str(body.get("id"))
        self.per_event[event_id] = self.per_event.get(event_id, 0) + 1
        data = body.get("data") or {}
        match = str(data.get("task_id") or data.get("name") or "")
        if match and match not in self.received:
            self.received[match] = now
            self.arrived.set()
        if len(self.received) >= self.expected:
            self.done.set()
        return web.Response(text="ok")


async def call(
    http: aiohttp.ClientSession, method: str, url: str, token: str = "", **kwargs: Any
) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.request(method, url, headers=headers, **kwargs) as response:
        body = await response.json()
        if response.status >= 300:
            raise SystemExit(f"{method} {url}: {response.status} {str(body)[:500]}")
        return body


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def published_at(bootstrap: str, topics: list[str]) -> dict[str, float]:
    """Event id → the record's Kafka timestamp (the relay's send), read from the topics."""
    from aiokafka import AIOKafkaConsumer

    found: dict[str, float] = {}

    def note(batches: dict[Any, list[Any]]) -> None:
        for records in batches.values():
            for record in records:
                event_id = dict(record.headers or ()).get("event-id")
                if event_id is not None:
                    found[bytes(event_id).decode()] = record.timestamp / 1000

    # no group: every partition of the topics, from the beginning
    consumer = AIOKafkaConsumer(
        *topics, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        async with asyncio.timeout(120):
            while not consumer.assignment():
                note(await consumer.getmany(timeout_ms=200))
            ends = await consumer.end_offsets(list(consumer.assignment()))
            while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
                note(await consumer.getmany(timeout_ms=1000, max_records=5000))
    finally:
        await asyncio.sleep(0)  # aiokafka: a coordinator task cancelled before it ran raises
        await consumer.stop()
    return found


async def stages(uri: str, db_name: str, workspace_id: str, kafka: str) -> dict[str, Any]:
    """Where the time goes: the event's time (its envelope), the relay's send (the Kafka
    record's timestamp), the delivery record's creation and delivery (MongoDB)."""
    from pymongo import AsyncMongoClient

    bootstrap, _, prefix = kafka.partition("#")
    sent = await published_at(bootstrap, [f"{prefix}task", f"{prefix}workspace"])
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True)
    spans: dict[str, list[float]] = {"relay": [], "consume": [], "deliver": []}
    try:
        async for d in client[db_name].webhook_deliveries.find(
            {"workspace_id": workspace_id},
            {"event_id": 1, "body": 1, "created_at": 1, "delivered_at": 1},
        ):
            published = sent.get(d["event_id"])
            if published is None or not d.get("delivered_at"):
                continue
            occurred = datetime.fromisoformat(json.loads(d["body"])["occurred_at"]).timestamp()
            spans["relay"].append(published - occurred)
            spans["consume"].append(d["created_at"].timestamp() - published)
            spans["deliver"].append((d["delivered_at"] - d["created_at"]).total_seconds())
    finally:
        await client.close()
    return {
        name: {
            "p50_ms": round(percentile(values, 0.5) * 1000, 1),
            "p95_ms": round(percentile(values, 0.95) * 1000, 1),
        }
        for name, values in spans.items()
        if values
    }


def _task(n: int) -> dict[str, Any]:
    return {"title": f"event bench task {n}", "labels": ["bench"], "estimate_hours": 1 + n % 8}


async def run(
    api: str,
    scenario: Scenario,
    wait_s: float = 300.0,
    mongodb: str = "",
    kafka: str = "",
    hold: Callable[[bool], None] | None = None,
) -> dict[str, Any]:
    """One scenario against the API at ``api``. A ``backlog`` scenario needs ``hold``:
    ``hold(True)`` stops the relay publishing, ``hold(False)`` lets it go on; its rates
    count from the release, and its latencies are left out (they include the hold)."""
    if scenario.backlog and hold is None:
        raise ValueError("a backlog scenario needs hold()")
    units = -(-scenario.events // scenario.per_write)  # write requests
    receiver = Receiver(expected=scenario.events)
    await receiver.start()
    connector = aiohttp.TCPConnector(limit=max(8, scenario.concurrency * 2))
    async with aiohttp.ClientSession(api, connector=connector) as http:
        email = f"bench-{uuid.uuid4().hex[:10]}@example.test"
        password = uuid.uuid4().hex
        await call(
            http,
            "POST",
            "/api/v1/auth/register",
            json={"email": email, "password": password, "name": "Bench"},
        )
        login = await call(
            http, "POST", "/api/v1/auth/login", json={"email": email, "password": password}
        )
        token = login["access_token"]
        workspace = await call(http, "POST", "/api/v1/workspaces", token, json={"name": "bench"})
        base = f"/api/v1/workspaces/{workspace['id']}"
        projects = scenario.projects
        if scenario.write != "rename":  # a project holds at most 10,000 tasks
            projects = max(projects, -(-scenario.events // (MAX_TASKS_PER_PROJECT - 1)))
        project_ids = [
            (
                await call(
                    http,
                    "POST",
                    f"{base}/projects",
                    token,
                    json={"name": f"Events {n}", "key": f"EV{n}"},
                )
            )["id"]
            for n in range(projects if scenario.write != "rename" else 0)
        ]
        hook = await call(
            http,
            "POST",
            f"{base}/webhooks",
            token,
            json={
                "url": f"http://127.0.0.1:{receiver.port}/hook",
                "events": ["task.created", "workspace.updated"],
            },
        )
        receiver.secret = hook["secret"]

        # warm-up: one event through the whole path (not counted)
        await call(http, "PATCH", base, token, json={"name": "warm-up"})
        await asyncio.wait_for(receiver.arrived.wait(), 120)
        receiver.received.clear()
        receiver.per_event.clear()
        if scenario.backlog and hold is not None:
            hold(True)

        sent: dict[str, float] = {}  # match key -> time its write was sent
        queue: asyncio.Queue[int] = asyncio.Queue()
        for n in range(units):
            queue.put_nowait(n)
        failures: list[str] = []

        async def write(n: int) -> None:
            at = time.perf_counter()
            if scenario.write == "rename":
                name = f"bench-{n:06d}"
                sent[name] = at
                await call(http, "PATCH", base, token, json={"name": name})
                return
            project = project_ids[n % len(project_ids)]
            if scenario.write == "task":
                task = await call(
                    http, "POST", f"/api/v1/projects/{project}/tasks", token, json=_task(n)
                )
                sent[task["id"]] = at
                return
            size = min(scenario.bulk_size, scenario.events - n * scenario.bulk_size)
            body = {"tasks": [_task(n * scenario.bulk_size + i) for i in range(size)]}
            answer = await call(
                http, "POST", f"/api/v1/projects/{project}/tasks/bulk", token, json=body
            )
            for task in answer["items"]:
                sent[task["id"]] = at

        async def writer() -> None:
            while not queue.empty():
                n = queue.get_nowait()
                if scenario.rate > 0:  # paced: unit n is written at started + n * size / rate
                    due = started + n * scenario.per_write / scenario.rate
                    await asyncio.sleep(max(0.0, due - time.perf_counter()))
                try:
                    await write(n)
                except (aiohttp.ClientError, TimeoutError, SystemExit) as exc:
                    failures.append(str(exc)[:300])

        started = time.perf_counter()
        await asyncio.gather(*(writer() for _ in range(scenario.concurrency)))
        writes_done = time.perf_counter()
        released = None
        if scenario.backlog and hold is not None:
            released = time.perf_counter()
            hold(False)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(receiver.done.wait(), wait_s)
        await asyncio.sleep(2.0)  # let any duplicate show up
    await receiver.stop()

    times = sorted(receiver.received[key] for key in sent if key in receiver.received)
    latencies = [
        (receiver.received[key] - at) * 1000 for key, at in sent.items() if key in receiver.received
    ]
    if not latencies:
        raise SystemExit("no webhook arrived")
    low, high = times[len(times) // 10], times[(len(times) * 9) // 10]
    breakdown: dict[str, Any] = {}
    if mongodb and kafka:
        uri, _, db_name = mongodb.rpartition("#")
        breakdown = await stages(uri, db_name or "planboard", workspace["id"], kafka)
    return {
        "scenario": scenario.describe(),
        "events": scenario.events,
        "written": len(sent),
        "write_failures": failures[:5],
        "received": len(latencies),
        "bad_signatures": receiver.bad_signatures,
        "duplicates": receiver.duplicates,
        "write_rate_per_s": round(len(sent) / (writes_done - started), 1),
        "events_per_s": round(len(latencies) / (times[-1] - (released or started)), 1),
        "sustained_per_s": round((len(times) * 0.8) / (high - low), 1) if high > low else None,
        "latency_ms": (
            dict.fromkeys(("p50", "p95", "p99", "max", "mean"))
            if released is not None
            else {
                "p50": round(percentile(latencies, 0.50), 1),
                "p95": round(percentile(latencies, 0.95), 1),
                "p99": round(percentile(latencies, 0.99), 1),
                "max": round(max(latencies), 1),
                "mean": round(statistics.fmean(latencies), 1),
            }
        ),
        "stages": breakdown,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--api", default=os.environ.get("PLANBOARD_API", "http://127.0.0.1:8080"))
    parser.add_argument("--write", choices=("bulk", "task", "rename"), default="bulk")
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--bulk-size", type=int, default=500)
    parser.add_argument("--projects", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=4, help="API writes in flight")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="pace writes at this many events/s (0: no pacing)"
    )
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument(
        "--mongodb",
        default="",
        help="URI#db of the stack's MongoDB: with --kafka, adds a per-stage breakdown "
        "(relay: write to sent to Kafka; consume: sent to delivery created; deliver: "
        "created to delivered). Times within a stage are rounded to the millisecond.",
    )
    parser.add_argument(
        "--kafka",
        default=os.environ.get("PLANBOARD_KAFKA_BOOTSTRAP", ""),
        help="BOOTSTRAP#TOPIC_PREFIX of the stack's Kafka (the records' timestamps)",
    )
    args = parser.parse_args()
    scenario = Scenario(
        write=args.write,
        events=args.events,
        rate=args.rate,
        concurrency=args.concurrency,
        bulk_size=args.bulk_size,
        projects=args.projects,
    )
    result = asyncio.run(run(args.api, scenario, args.timeout, args.mongodb, args.kafka))
    print(json.dumps({"machine": machine(), "result": result}, indent=2))
    ok = result["received"] == args.events and not result["bad_signatures"]
    return 0 if ok and not result["duplicates"] else 1


if __name__ == "__main__":
    sys.exit(main())
