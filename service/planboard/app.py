"""The aiohttp application factory: one cleanup context per resource."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator

from aiohttp import web

from planboard import errortracking, tracing
from planboard.api import (
    attachment_routes,
    auth_routes,
    comment_routes,
    job_routes,
    notification_routes,
    project_routes,
    search_routes,
    task_routes,
    webhook_routes,
    workspace_routes,
)
from planboard.api.authn import accounts_key, authentication_middleware
from planboard.api.cors import cors_middleware, setup_cors
from planboard.api.health import lifecycle_key, setup_health
from planboard.api.idempotency import idempotency_middleware
from planboard.api.middleware import context_middleware, error_middleware, setup_context
from planboard.api.ratelimit import ratelimit_middleware, setup_ratelimit
from planboard.api.server import ApiRunner
from planboard.api.validation import MIDDLEWARES as VALIDATION_MIDDLEWARES
from planboard.api.validation import setup_validation
from planboard.config import Settings
from planboard.events.kafka import KafkaProbe
from planboard.metrics import Metrics, multiprocess_metrics
from planboard.services.accounts import Accounts
from planboard.services.attachment_storage import open_storage
from planboard.services.cache import CacheMetrics, ReadThrough
from planboard.services.context import ServiceContext
from planboard.services.near_cache import Listener, NearCache
from planboard.store.mongo import create_client, database
from planboard.store.redis_client import create_redis
from planboard.typedefs import (
    db_key,
    kafka_probe_key,
    metrics_key,
    mongo_client_key,
    near_cache_key,
    redis_key,
    services_key,
    settings_key,
)

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 4 * 1024 * 1024


async def mongo_ctx(app: web.Application) -> AsyncIterator[None]:
    client = create_client(app[settings_key], appname="planboard-api")
    app[mongo_client_key] = client
    app[db_key] = database(client, app[settings_key])
    yield
    await client.close()


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[settings_key]
    client = create_redis(settings, health_check_interval=30)
    app[redis_key] = client
    yield
    await client.aclose()


async def near_cache_ctx(app: web.Application) -> AsyncIterator[None]:
    """The near cache (services/near_cache.py) and the listener that keeps it live."""
    settings = app[settings_key]
    near = NearCache(
        max_bytes=settings.near_cache_mb * 1024 * 1024 if settings.cache_enabled else 0,
        ttl_s=settings.near_cache_ttl_s,
    )
    app[near_cache_key] = near
    if not near.enabled:
        yield
        return
    # its own client: the subscription holds a connection for as long as the app runs
    client = create_redis(settings, health_check_interval=0)
    listener = Listener(client, near)
    task = asyncio.create_task(listener.run(), name="near-cache-listener")
    yield
    listener.stop()
    task.cancel()
    # bounded: it ends within its ping interval even if a cancellation went astray
    await asyncio.wait({task}, timeout=listener.ping_s + settings.dependency_timeout_s)
    with contextlib.suppress(Exception):
        await client.aclose()


async def kafka_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[settings_key]
    probe = KafkaProbe(settings.kafka_bootstrap, settings.dependency_timeout_s)
    app[kafka_probe_key] = probe
    yield
    await probe.close()


async def services_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[settings_key]
    reads = ReadThrough(
        app[redis_key],
        CacheMetrics(app[metrics_key].registry),
        enabled=settings.cache_enabled,
        near=app[near_cache_key],
    )
    app[services_key] = ServiceContext(app[mongo_client_key], app[db_key], settings, reads)
    app[accounts_key] = Accounts(
        app[settings_key], app[db_key], app[redis_key], near=app[near_cache_key]
    )
    attachment_routes.setup_attachments(app, open_storage(app[settings_key], app[db_key]))
    tasks = app[auth_routes.background_tasks_key]
    yield
    if tasks:  # let accepted background work (e.g. reset mails) finish
        await asyncio.wait(tasks, timeout=app[settings_key].shutdown_timeout_s)


def create_app(settings: Settings) -> web.Application:
    """Build the API application for ``settings`` (tests build it the same way)."""
    app = web.Application(
        middlewares=[
            context_middleware,
            cors_middleware,
            error_middleware,
            authentication_middleware,
            # settings are fixed here: with limits off, no layer that only passes requests on
            *([ratelimit_middleware] if settings.rate_limit_enabled else []),
            *VALIDATION_MIDDLEWARES,
            idempotency_middleware,
        ],
        client_max_size=MAX_BODY_BYTES,
    )
    app[settings_key] = settings
    app[metrics_key] = Metrics()
    app[auth_routes.background_tasks_key] = set()
    app.cleanup_ctx.extend([mongo_ctx, redis_ctx, near_cache_ctx, kafka_ctx, services_ctx])
    setup_context(app)
    setup_health(app)
    setup_cors(app)
    setup_ratelimit(app)
    app.add_routes(auth_routes.routes)
    app.add_routes(workspace_routes.routes)
    app.add_routes(notification_routes.routes)
    app.add_routes(project_routes.routes)
    app.add_routes(task_routes.routes)
    app.add_routes(comment_routes.routes)
    app.add_routes(attachment_routes.routes)
    app.add_routes(webhook_routes.routes)
    app.add_routes(job_routes.routes)
    app.add_routes(search_routes.routes)
    setup_validation(app)
    tracing.instrument_app(app)  # no-ops unless configured (OTEL_*, SENTRY_DSN)
    errortracking.instrument_app(app)
    return app


def _drain_on_signals(app: web.Application, stop: asyncio.Event) -> None:
    """Readiness-first shutdown. On SIGTERM (or SIGINT) /readyz answers 503 at once while
    the listener keeps serving for ``shutdown_delay_s``, so load balancers take the process
    out of rotation before it stops accepting connections; then ``stop`` is set: the
    listener closes and in-flight requests get ``shutdown_timeout_s`` to finish. A second
    signal skips the delay."""
    loop = asyncio.get_running_loop()
    settings = app[settings_key]
    lifecycle = app[lifecycle_key]

    def begin() -> None:
        if lifecycle.shutting_down:  # a second signal: stop waiting
            stop.set()
            return
        lifecycle.shutting_down = True
        log.info(
            "draining: readiness fails; the listener closes in %.1f s",
            settings.shutdown_delay_s,
            extra={"delay_s": settings.shutdown_delay_s},
        )
        loop.call_later(settings.shutdown_delay_s, stop.set)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, begin)


async def _serve(app: web.Application, settings: Settings) -> None:
    """Serve ``app`` until a signal's drain ends, then shut down gracefully. The runner is
    the API's own (api/server.py: protocol-level errors answered as problem+json)."""
    runner = ApiRunner(app, access_log=None, shutdown_timeout=settings.shutdown_timeout_s)
    await runner.setup()  # cleanup contexts and startup hooks
    try:
        stop = asyncio.Event()
        _drain_on_signals(app, stop)
        site = web.TCPSite(
            runner, settings.host, settings.port, reuse_port=multiprocess_metrics() or None
        )
        await site.start()
        await stop.wait()
    finally:
        await runner.cleanup()  # closes the listener, lets in-flight requests finish


def serve(settings: Settings) -> None:
    """Run the API until SIGINT/SIGTERM; readiness fails first, in-flight requests finish."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a hard dependency on Linux
        pass
    tracing.configure("planboard-api")  # before create_app and the MongoDB client
    errortracking.configure(settings, "api")
    app = create_app(settings)
    log.info("starting API", extra={"settings": settings.redacted()})
    try:
        asyncio.run(_serve(app, settings))
    finally:
        tracing.shutdown()  # export the buffered spans
