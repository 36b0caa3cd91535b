"""End-to-end webhook benchmark against a running dev stack (``planboard dev``).

Path measured: API write (a workspace rename: state + outbox event) → relay →
Kafka → ``webhooks`` worker (fan-out + delivery loop) → an HTTP receiver started by
this script on 127.0.0.1 (``planboard dev`` allows loopback targets). The receiver
checks every signature. Writes and receipts are timed on the same clock
(``time.perf_counter`` in this process).

    planboard dev &                         # in another terminal
    python benchmarks/webhooks_e2e.py --events 500 --concurrency 16           # throughput
    python benchmarks/webhooks_e2e.py --events 500 --concurrency 4 --rate 25  # latency

Reports: events/s (events / time from the first write to the last receipt) and the
per-event latency from sending the write to receiving the webhook (p50/p95/p99/max).
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
from typing import Any

import aiohttp
from aiohttp import web


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


class Receiver:
    def __init__(self, expected: int) -> None:
        self.secret = ""
        self.expected = expected
        self.received: dict[str, float] = {}  # workspace name -> receipt time
        self.bad_signatures = 0
        self.duplicates = 0
        self.done = asyncio.Event()
        self.arrived = asyncio.Event()
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def handle(self, request: web.Request) -> web.Response:
        now = time.perf_counter()
        raw = await request.read()
        digest = hmac.new(self.secret.encode(), raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(f"sha256={digest}", request.headers["X-Planboard-Signature"]):
            self.bad_signatures += 1
        body = json.loads(raw)
        name = str(body.get("data", {}).get("name", ""))
        if name in self.received:
            self.duplicates += 1
        else:
            self.received[name] = now
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
            raise SystemExit(f"{method} {url}: {response.status} {body}")
        return body


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def stages(uri: str, db_name: str, workspace_id: str) -> dict[str, Any]:
    """Where the time goes, from the timestamps MongoDB keeps (outbox and deliveries)."""
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True)
    try:
        db = client[db_name]
        events = {
            e["_id"]: e
            async for e in db.outbox.find(
                {"workspace_id": workspace_id, "type": "workspace.updated"}
            )
        }
        spans: dict[str, list[float]] = {"relay": [], "consume": [], "deliver": []}
        async for d in db.webhook_deliveries.find({"workspace_id": workspace_id}):
            event = events.get(d["event_id"])
            if not event or not event.get("published_at") or not d.get("delivered_at"):
                continue
            spans["relay"].append((event["published_at"] - event["occurred_at"]).total_seconds())
            spans["consume"].append((d["created_at"] - event["published_at"]).total_seconds())
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


async def run(
    api: str, events: int, concurrency: int, rate: float, wait_s: float, mongodb: str
) -> dict[str, Any]:
    receiver = Receiver(expected=events + 1)
    await receiver.start()
    async with aiohttp.ClientSession(api) as http:
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
        hook = await call(
            http,
            "POST",
            f"{base}/webhooks",
            token,
            json={
                "url": f"http://127.0.0.1:{receiver.port}/hook",
                "events": ["workspace.updated"],
            },
        )
        receiver.secret = hook["secret"]

        # warm-up: one event through the whole path
        await call(http, "PATCH", base, token, json={"name": "warm-up"})
        await asyncio.wait_for(receiver.arrived.wait(), 60)

        sent: dict[str, float] = {}
        queue: asyncio.Queue[str] = asyncio.Queue()
        for n in range(events):
            queue.put_nowait(f"bench-{n:05d}")

        async def writer() -> None:
            while not queue.empty():
                name = queue.get_nowait()
                if rate > 0:  # paced: event n is written at started + n / rate
                    due = started + int(name.rsplit("-", 1)[1]) / rate
                    await asyncio.sleep(max(0.0, due - time.perf_counter()))
                sent[name] = time.perf_counter()
                await call(http, "PATCH", base, token, json={"name": name})

        started = time.perf_counter()
        await asyncio.gather(*(writer() for _ in range(concurrency)))
        writes_done = time.perf_counter()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(receiver.done.wait(), wait_s)
        await asyncio.sleep(1.0)  # let any duplicate show up
    await receiver.stop()

    latencies = [
        (receiver.received[name] - at) * 1000
        for name, at in sent.items()
        if name in receiver.received
    ]
    last = max(receiver.received[name] for name in sent if name in receiver.received)
    breakdown: dict[str, Any] = {}
    if mongodb:
        uri, _, db_name = mongodb.rpartition("#")
        breakdown = await stages(uri, db_name or "planboard", workspace["id"])
    return {
        "events": events,
        "concurrency": concurrency,
        "target_rate_per_s": rate or None,
        "received": len(latencies),
        "bad_signatures": receiver.bad_signatures,
        "duplicates": receiver.duplicates,
        "write_rate_per_s": round(events / (writes_done - started), 1),
        "events_per_s": round(len(latencies) / (last - started), 1),
        "latency_ms": {
            "p50": round(percentile(latencies, 0.50), 1),
            "p95": round(percentile(latencies, 0.95), 1),
            "p99": round(percentile(latencies, 0.99), 1),
            "max": round(max(latencies), 1),
            "mean": round(statistics.fmean(latencies), 1),
        },
        "stages": breakdown,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--api", default=os.environ.get("PLANBOARD_API", "http://127.0.0.1:8080"))
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=1, help="API writes in flight")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="pace writes at this many per second (0: no pacing)"
    )
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument(
        "--mongodb",
        default="",
        help="URI#db of the stack's MongoDB: adds a per-stage breakdown "
        "(relay: write to published; consume: published to delivery created; deliver: "
        "created to delivered). Times within a stage are rounded to the millisecond.",
    )
    args = parser.parse_args()
    result = asyncio.run(
        run(args.api, args.events, args.concurrency, args.rate, args.timeout, args.mongodb)
    )
    print(json.dumps({"machine": machine(), "result": result}, indent=2))
    ok = result["received"] == args.events and not result["bad_signatures"]
    return 0 if ok and not result["duplicates"] else 1


if __name__ == "__main__":
    sys.exit(main())
