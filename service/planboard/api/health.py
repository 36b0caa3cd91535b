"""Liveness, readiness and metrics endpoints."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import marshmallow as m
from aiohttp import web
from aiohttp_apigami import docs, response_schema
from marshmallow import fields, validate
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

from planboard.api.middleware import request_id_of
from planboard.api.problems import problem_response
from planboard.metrics import multiprocess_metrics
from planboard.typedefs import db_key, kafka_probe_key, metrics_key, redis_key, settings_key


class Lifecycle:
    """Mutable process state the handlers read (the app itself is frozen once started)."""

    def __init__(self) -> None:
        self.shutting_down = False


lifecycle_key = web.AppKey("lifecycle", Lifecycle)


class HealthOut(m.Schema):
    status = fields.String(required=True, validate=validate.OneOf(["ok"]))


class CheckOut(m.Schema):
    status = fields.String(required=True, validate=validate.OneOf(["up", "down"]))
    latency_ms = fields.Float()
    error = fields.String()


class ReadyOut(m.Schema):
    status = fields.String(required=True, validate=validate.OneOf(["ready"]))
    checks = fields.Dict(keys=fields.String(), values=fields.Nested(CheckOut), required=True)
    degraded = fields.List(
        fields.String(),
        required=True,
        metadata={
            "description": "dependencies that are down but do not gate readiness "
            "(PLANBOARD_READY_CHECKS): the API serves without them, degraded"
        },
    )


@docs(tags=["ops"], summary="Liveness: the process serves requests", security=[])
@response_schema(HealthOut, 200)
async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process serves requests (dependencies are not checked here)."""
    return web.json_response({"status": "ok"})


async def _timed(check: Callable[[], Awaitable[object]], limit_s: float) -> dict[str, object]:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(limit_s):
            await check()
    except Exception as exc:  # any failure means "down"; the class name says why
        return {"status": "down", "error": type(exc).__name__ or "error"}
    return {"status": "up", "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


@docs(
    tags=["ops"],
    summary="Readiness: MongoDB, Kafka and Redis checked; 503 only for what gates it (MongoDB)",
    security=[],
)
@response_schema(ReadyOut, 200)
async def readyz(request: web.Request) -> web.Response:
    """Readiness: every dependency is checked and reported; the status is 503 only when one
    of ``PLANBOARD_READY_CHECKS`` (by default MongoDB alone) is down, so a Kafka or Redis
    outage, which the API serves through, never takes the pods out of their Service."""
    app = request.app
    settings = app[settings_key]
    timeout = settings.dependency_timeout_s
    db = app[db_key]
    redis = app[redis_key]
    probe = app[kafka_probe_key]
    checks: dict[str, Callable[[], Awaitable[object]]] = {
        "mongodb": lambda: db.command("ping"),
        "redis": lambda: redis.ping(),
        "kafka": probe.check,
    }
    names = list(checks)
    results = await asyncio.gather(*(_timed(checks[name], timeout) for name in names))
    report = dict(zip(names, results, strict=True))
    metrics = app[metrics_key]
    for name, result in report.items():
        metrics.dependency_up.labels(name).set(1 if result["status"] == "up" else 0)
    unavailable = [name for name in names if report[name]["status"] != "up"]
    down = [name for name in unavailable if name in settings.ready_checks]
    degraded = [name for name in unavailable if name not in settings.ready_checks]
    if app[lifecycle_key].shutting_down:
        down.append("shutting-down")
    if down:
        return problem_response(
            503,
            title="Service Unavailable",
            detail=f"not ready: {', '.join(down)} down",
            instance=request.path,
            request_id=request_id_of(request),
            extra={"checks": report, "down": down, "degraded": degraded},
            headers={"Retry-After": "5"},
        )
    return web.json_response({"status": "ready", "checks": report, "degraded": degraded})


@docs(tags=["ops"], summary="Prometheus metrics", security=[])
async def metrics(request: web.Request) -> web.Response:
    if multiprocess_metrics():  # one of several processes: answer for all
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        body = generate_latest(registry)
    else:
        body = generate_latest(request.app[metrics_key].registry)
    response = web.Response(body=body)
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    response.charset = "utf-8"
    return response


async def mark_shutting_down(app: web.Application) -> None:
    """On SIGTERM, fail readiness first so load balancers stop sending traffic."""
    app[lifecycle_key].shutting_down = True


def setup_health(app: web.Application) -> None:
    app[lifecycle_key] = Lifecycle()
    app.router.add_get("/healthz", healthz, name="healthz")
    app.router.add_get("/readyz", readyz, name="readyz")
    app.router.add_get("/metrics", metrics, name="metrics")
    app.on_shutdown.append(mark_shutting_down)
