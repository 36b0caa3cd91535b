"""The HTTP skeleton on the real stack: health, readiness, metrics, errors, headers."""

from __future__ import annotations

import logging

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from planboard.api.middleware import SECURITY_HEADERS
from planboard.app import create_app
from planboard.typedefs import metrics_key
from planboard_devstack.paths import free_port

pytestmark = pytest.mark.integration


async def test_healthz_is_ok(client: TestClient) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_readyz_reports_every_dependency_up(client: TestClient) -> None:
    response = await client.get("/readyz")
    body = await response.json()
    assert response.status == 200, body
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"mongodb", "kafka", "redis"}
    assert all(check["status"] == "up" for check in body["checks"].values())
    assert body["degraded"] == []


def dependency_up(app: web.Application, dependency: str) -> float | None:
    return app[metrics_key].registry.get_sample_value(
        "planboard_dependency_up", {"dependency": dependency}
    )


DEAD = {
    "redis": lambda port: {"redis_url": f"redis://127.0.0.1:{port}/0"},
    "kafka": lambda port: {"kafka_bootstrap": f"127.0.0.1:{port}"},
    "mongodb": lambda port: {
        "mongodb_uri": f"mongodb://127.0.0.1:{port}/?serverSelectionTimeoutMS=500"
    },
}


async def test_readyz_is_503_naming_mongodb_when_it_is_down(settings_with) -> None:
    dead_port = free_port()  # nothing listens there
    # The session's dependency timeout: a busy machine's Kafka probe is not "down".
    settings = settings_with(**DEAD["mongodb"](dead_port))
    app = create_app(settings)
    async with TestClient(TestServer(app)) as dead_client:
        response = await dead_client.get("/readyz")
        body = await response.json()
    assert response.status == 503
    assert response.content_type == "application/problem+json"
    assert response.headers["Retry-After"] == "5"
    assert body["down"] == ["mongodb"]
    assert body["degraded"] == []
    assert "mongodb" in body["detail"]
    assert body["checks"]["mongodb"]["status"] == "down"
    for other in ("kafka", "redis"):
        assert body["checks"][other]["status"] == "up"
    assert dependency_up(app, "mongodb") == 0
    assert dependency_up(app, "redis") == 1


@pytest.mark.parametrize("dependency", ["redis", "kafka"])
async def test_readyz_stays_200_reporting_a_degraded_dependency(settings_with, dependency) -> None:
    # The API serves through a Redis or Kafka outage (fail-open limits and cache, writes to
    # the outbox): readiness must not take every pod out of its Service for it.
    dead_port = free_port()
    settings = settings_with(**DEAD[dependency](dead_port))
    app = create_app(settings)
    async with TestClient(TestServer(app)) as degraded_client:
        response = await degraded_client.get("/readyz")
        body = await response.json()
    assert response.status == 200, body
    assert body["status"] == "ready"
    assert body["degraded"] == [dependency]
    assert body["checks"][dependency]["status"] == "down"
    assert body["checks"][dependency]["error"]
    for other in {"mongodb", "kafka", "redis"} - {dependency}:
        assert body["checks"][other]["status"] == "up"
    assert dependency_up(app, dependency) == 0
    assert dependency_up(app, "mongodb") == 1


@pytest.mark.parametrize("dependency", ["redis", "kafka"])
async def test_readyz_gates_on_a_dependency_listed_in_ready_checks(
    settings_with, dependency
) -> None:
    settings = settings_with(
        dependency_timeout_s=0.5,
        ready_checks=("mongodb", dependency),
        **DEAD[dependency](free_port()),
    )
    async with TestClient(TestServer(create_app(settings))) as strict:
        response = await strict.get("/readyz")
        body = await response.json()
    assert response.status == 503, body
    assert body["down"] == [dependency]
    assert dependency in body["detail"]
    assert body["degraded"] == []


async def test_unknown_route_is_problem_json_with_request_id(client: TestClient) -> None:
    response = await client.get("/api/v1/nothing-here")
    body = await response.json(content_type=None)
    assert response.status == 404
    assert response.content_type == "application/problem+json"
    assert set(body) >= {"type", "title", "status", "detail", "instance", "request_id"}
    assert body["status"] == 404
    assert body["instance"] == "/api/v1/nothing-here"
    assert body["request_id"] == response.headers["X-Request-ID"]


async def test_wrong_method_is_405_problem_with_allow(client: TestClient) -> None:
    response = await client.post("/healthz")
    body = await response.json(content_type=None)
    assert response.status == 405
    assert body["status"] == 405
    assert "GET" in response.headers["Allow"]


async def test_request_id_is_echoed_or_generated(client: TestClient) -> None:
    echoed = await client.get("/healthz", headers={"X-Request-ID": "abc-123.trace"})
    assert echoed.headers["X-Request-ID"] == "abc-123.trace"
    generated = await client.get("/healthz", headers={"X-Request-ID": "<script>alert(1)</script>"})
    assert "<" not in generated.headers["X-Request-ID"]
    assert len(generated.headers["X-Request-ID"]) == 32


async def test_security_headers_on_success_and_error(client: TestClient) -> None:
    for path in ("/healthz", "/does-not-exist"):
        response = await client.get(path)
        for name, value in SECURITY_HEADERS.items():
            assert response.headers[name] == value, (path, name)


async def test_streamed_responses_carry_the_request_id_and_security_headers(settings) -> None:
    app = create_app(settings)

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)  # headers sent before any middleware sees it again
        await response.write(b"chunk")
        await response.write_eof()
        return response

    app.router.add_get("/stream", stream)
    async with TestClient(TestServer(app)) as test_client:
        generated = await test_client.get("/stream")
        echoed = await test_client.get("/stream", headers={"X-Request-ID": "stream-1"})
        assert await generated.read() == b"chunk"
    assert len(generated.headers["X-Request-ID"]) == 32
    assert echoed.headers["X-Request-ID"] == "stream-1"
    for name, value in SECURITY_HEADERS.items():
        assert generated.headers[name] == value, name


async def test_metrics_count_requests_by_route_template(client: TestClient) -> None:
    await client.get("/healthz")
    await client.get("/no/such/path/123")
    response = await client.get("/metrics")
    text = await response.text()
    assert response.status == 200
    assert response.content_type == "text/plain"
    assert 'planboard_http_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert 'route="unmatched",status="404"' in text
    assert "/no/such/path/123" not in text  # raw paths never become labels
    assert "planboard_http_request_duration_seconds_bucket" in text
    assert 'planboard_dependency_up{dependency="mongodb"}' in text


async def test_unexpected_error_is_500_without_leaking(settings, caplog) -> None:
    app = create_app(settings)

    async def explode(request: web.Request) -> web.Response:
        raise RuntimeError("secret internal detail: password=hunter2")

    app.router.add_get("/explode", explode)
    with caplog.at_level(logging.ERROR, logger="planboard.api"):
        async with TestClient(TestServer(app)) as test_client:
            response = await test_client.get("/explode")
            text = await response.text()
    assert response.status == 500
    assert response.content_type == "application/problem+json"
    assert "hunter2" not in text and "RuntimeError" not in text
    assert "request id" in text
    records = [r for r in caplog.records if r.name == "planboard.api"]
    assert records and records[0].exc_info is not None  # logged with its traceback
