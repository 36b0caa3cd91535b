"""Process entry points for the relay and the worker groups (signals, clients, shutdown)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from planboard import errortracking, tracing
from planboard.config import Settings
from planboard.events.consumer import ConsumerMetrics, ConsumerRunner
from planboard.events.relay import Relay
from planboard.services.webhooks import WebhookOptions
from planboard.store.mongo import create_client, database
from planboard.store.redis_client import create_redis
from planboard.workers.registry import GROUPS, SCHEDULER, WorkerDeps
from planboard.workers.webhooks import WebhookMetrics, WebhookWorker

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


def _observability(settings: Settings, component: str) -> None:
    """Tracing and error tracking, when the environment turns them on (before any client)."""
    tracing.configure(f"planboard-{component}")
    errortracking.configure(settings, component)


async def run_relay(settings: Settings) -> None:
    _observability(settings, "relay")
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
        tracing.shutdown()
    log.info("relay stopped", extra={"published": relay.published})


async def run_scheduler(settings: Settings) -> None:
    from planboard.services.attachment_storage import open_storage
    from planboard.workers.scheduler import Scheduler, default_jobs

    client = create_client(settings, appname="planboard-scheduler")
    db = database(client, settings)
    scheduler = Scheduler(db, default_jobs(db, open_storage(settings, db)))
    _on_signals(scheduler.stop)
    log.info("scheduler started", extra={"jobs": [j.name for j in scheduler.jobs]})
    try:
        await scheduler.run()
    finally:
        await client.close()


async def run_worker(settings: Settings, group_name: str) -> None:
    _observability(settings, f"worker-{group_name}")
    if group_name == SCHEDULER:
        try:
            await run_scheduler(settings)
        finally:
            tracing.shutdown()
        return
    factory = GROUPS[group_name]
    client = create_client(settings, appname=f"planboard-worker-{group_name}")
    redis = create_redis(settings)  # the API's factory: connect and socket timeouts
    db = database(client, settings)
    registry = CollectorRegistry(auto_describe=True)  # one per process, served below
    delivery: WebhookWorker | None = None
    if group_name == "webhooks":
        # The webhooks group also runs its delivery loop; both stop together.
        delivery = WebhookWorker(
            settings,
            db,
            options=WebhookOptions.from_settings(settings),
            metrics=WebhookMetrics(registry),
            redis=redis,
        )
        group = delivery.group()
    else:
        group = factory(WorkerDeps(settings, db, redis))
    runner = ConsumerRunner(settings, db, group, metrics=ConsumerMetrics(registry))
    background = asyncio.create_task(delivery.run()) if delivery else None

    def stop() -> None:
        runner.stop()
        if delivery is not None:
            delivery.stop()

    _on_signals(stop)
    metrics = await _serve_metrics(settings, registry)
    log.info("worker started", extra={"group": group_name})
    try:
        await runner.run()
        if background is not None:
            await background
    finally:
        if metrics is not None:
            await metrics.cleanup()
        await redis.aclose()
        await client.close()
        tracing.shutdown()
    log.info("worker stopped", extra={"group": group_name, "processed": runner.processed})
