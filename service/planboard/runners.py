"""Process entry points for the relay and the worker groups (signals, clients, shutdown)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from redis.asyncio import Redis

from planboard.config import Settings
from planboard.events.consumer import ConsumerRunner
from planboard.events.relay import Relay
from planboard.store.mongo import create_client, database
from planboard.workers.registry import GROUPS, SCHEDULER, WorkerDeps

log = logging.getLogger(__name__)


async def _serve_metrics(settings: Settings, registry: CollectorRegistry) -> web.AppRunner | None:
    """A tiny /metrics (and /healthz) endpoint for relay and worker processes."""
    if not settings.metrics_port:
        return None

    async def metrics(request: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(registry))
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return response

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.host, settings.metrics_port).start()
    return runner


def _on_signals(stop: Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)


async def run_relay(settings: Settings) -> None:
    client = create_client(settings, appname="planboard-relay")
    relay = Relay(settings, database(client, settings))
    _on_signals(relay.stop)
    metrics = await _serve_metrics(settings, relay.registry)
    log.info("relay started", extra={"owner": relay.owner})
    try:
        await relay.run()
    finally:
        if metrics is not None:
            await metrics.cleanup()
        await client.close()
    log.info("relay stopped", extra={"published": relay.published})


async def run_scheduler(settings: Settings) -> None:
    from planboard.workers.scheduler import Scheduler, default_jobs

    client = create_client(settings, appname="planboard-scheduler")
    db = database(client, settings)
    scheduler = Scheduler(db, default_jobs(db))
    _on_signals(scheduler.stop)
    log.info("scheduler started", extra={"jobs": [j.name for j in scheduler.jobs]})
    try:
        await scheduler.run()
    finally:
        await client.close()


async def run_worker(settings: Settings, group_name: str) -> None:
    if group_name == SCHEDULER:
        await run_scheduler(settings)
        return
    factory = GROUPS[group_name]
    client = create_client(settings, appname=f"planboard-worker-{group_name}")
    redis: Redis = Redis.from_url(settings.redis_url, socket_timeout=settings.dependency_timeout_s)
    db = database(client, settings)
    runner = ConsumerRunner(settings, db, factory(WorkerDeps(settings, db, redis)))
    _on_signals(runner.stop)
    metrics = await _serve_metrics(settings, runner.metrics.registry)
    log.info("worker started", extra={"group": group_name})
    try:
        await runner.run()
    finally:
        if metrics is not None:
            await metrics.cleanup()
        await redis.aclose()
        await client.close()
    log.info("worker stopped", extra={"group": group_name, "processed": runner.processed})
