"""CORS in the full middleware chain: preflights, allowed and refused origins, wildcard."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from planboard.api.cors import (
    ALLOW_HEADERS,
    ALLOW_METHODS,
    EXPOSE_HEADERS,
)
from planboard.api.middleware import SECURITY_HEADERS
from planboard.api.principal import Principal, principal_key
from planboard.api.ratelimit import ratelimit_middleware
from planboard.app import create_app
from planboard.config import RateLimit, Settings
from planboard.domain.errors import Unauthorized

pytestmark = pytest.mark.integration

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

APP_ORIGIN = "https://app.example.com"
ADMIN_ORIGIN = "http://localhost:5173"
EVIL_ORIGIN = "https://evil.example.net"


@web.middleware
async def require_principal(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Stands in for a valid token: /api/v1/ needs ``X-Test-User``, else 401."""
    if request.path.startswith("/api/v1/") and not request.path.startswith("/api/v1/auth/"):
        user = request.headers.get("X-Test-User")
        if not user:
            raise Unauthorized("authentication required")
        request[principal_key] = Principal(user_id=user, kind="session", token_id="f")
    return await handler(request)


def build_app(settings: Settings) -> web.Application:
    app = create_app(settings)  # already wired: context, cors, error, authn, ratelimit, ...
    app.middlewares.insert(app.middlewares.index(ratelimit_middleware), require_principal)

    async def things(request: web.Request) -> web.StreamResponse:
        return web.json_response({"ok": True}, headers={"ETag": '"1"', "Vary": "Accept"})

    async def cached(request: web.Request) -> web.StreamResponse:
        raise web.HTTPNotModified(headers={"ETag": '"1"'})

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"data")
        await response.write_eof()
        return response

    app.router.add_get("/api/v1/things", things)
    app.router.add_get("/api/v1/cached", cached)
    app.router.add_get("/api/v1/stream", stream)
    return app


@asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(build_app(settings))) as test_client:
        yield test_client


@pytest.fixture
def cors_settings(settings_with):  # type: ignore[no-untyped-def]
    return settings_with(
        cors_origins=(APP_ORIGIN + "/", ADMIN_ORIGIN.upper()),  # normalised when compared
        rate_limit_api=RateLimit(1, 60),
    )


def preflight_headers(origin: str, method: str = "PATCH") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type, if-match",
    }


def bearer() -> dict[str, str]:
    return {"X-Test-User": secrets.token_hex(8)}


def vary(response: object) -> list[str]:
    headers = response.headers  # type: ignore[attr-defined]
    return [v.strip() for v in headers.get("Vary", "").split(",") if v.strip()]


async def test_preflight_from_allowed_origin(cors_settings: Settings) -> None:
    async with serve(cors_settings) as client:
        for origin in (APP_ORIGIN, ADMIN_ORIGIN):
            # No token, and more preflights than the API limit (1/min): neither matters.
            for _ in range(3):
                response = await client.options("/api/v1/things", headers=preflight_headers(origin))
                assert response.status == 204
                assert response.headers["Access-Control-Allow-Origin"] == origin
                assert response.headers["Access-Control-Allow-Credentials"] == "true"
                assert response.headers["Access-Control-Allow-Methods"] == ALLOW_METHODS
                assert response.headers["Access-Control-Allow-Headers"] == ALLOW_HEADERS
                assert response.headers["Access-Control-Max-Age"] == "600"
                assert "Origin" in vary(response)
                assert "RateLimit-Limit" not in response.headers
                assert "X-Request-ID" in response.headers
                assert all(name in response.headers for name in SECURITY_HEADERS)
    for method in ("GET", "POST", "PATCH", "PUT", "DELETE", "OPTIONS"):
        assert method in ALLOW_METHODS
    for name in ("Authorization", "Content-Type", "If-Match", "If-None-Match", "Idempotency-Key"):
        assert name in ALLOW_HEADERS


async def test_preflight_on_any_path(cors_settings: Settings) -> None:
    async with serve(cors_settings) as client:
        for path in ("/api/v1/no-such-route", "/healthz", "/api/v1/auth/login"):
            response = await client.options(path, headers=preflight_headers(APP_ORIGIN, "POST"))
            assert response.status == 204, path
            assert response.headers["Access-Control-Allow-Origin"] == APP_ORIGIN


async def test_preflight_from_disallowed_origin_is_403_problem(cors_settings: Settings) -> None:
    async with serve(cors_settings) as client:
        response = await client.options("/api/v1/things", headers=preflight_headers(EVIL_ORIGIN))
        body = await response.json(content_type=None)
    assert response.status == 403
    assert response.content_type == "application/problem+json"
    assert EVIL_ORIGIN in body["detail"]
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Origin" in vary(response)


async def test_no_origins_configured_refuses_every_preflight(settings_with) -> None:
    async with serve(settings_with(cors_origins=())) as client:
        response = await client.options("/api/v1/things", headers=preflight_headers(APP_ORIGIN))
        assert response.status == 403
        plain = await client.get("/healthz", headers={"Origin": APP_ORIGIN})
        assert plain.status == 200
        assert "Access-Control-Allow-Origin" not in plain.headers


async def test_actual_request_from_allowed_origin(cors_settings: Settings) -> None:
    async with serve(cors_settings) as client:
        response = await client.get("/api/v1/things", headers={"Origin": APP_ORIGIN, **bearer()})
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    assert response.headers["Access-Control-Expose-Headers"] == EXPOSE_HEADERS
    for name in ("ETag", "Location", "X-Request-ID", "RateLimit-Remaining", "Retry-After"):
        assert name in EXPOSE_HEADERS
    assert vary(response) == ["Accept", "Origin"]  # appended, not overwritten
    assert "Access-Control-Allow-Methods" not in response.headers


async def test_error_429_304_and_streamed_responses_carry_cors(cors_settings: Settings) -> None:
    origin = {"Origin": APP_ORIGIN}
    async with serve(cors_settings) as client:
        unauthorized = await client.get("/api/v1/things", headers=origin)
        user = bearer()
        first = await client.get("/api/v1/things", headers={**origin, **user})
        limited = await client.get("/api/v1/things", headers={**origin, **user})
        cached = await client.get("/api/v1/cached", headers={**origin, **bearer()})
        stream = await client.get("/api/v1/stream", headers={**origin, **bearer()})
        await stream.read()
        missing = await client.get("/api/v1/nowhere", headers={**origin, **bearer()})
    assert [r.status for r in (unauthorized, first, limited, cached, stream, missing)] == [
        401,
        200,
        429,
        304,
        200,
        404,
    ]
    for response in (unauthorized, first, limited, cached, stream, missing):
        assert response.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
        assert response.headers["Access-Control-Expose-Headers"] == EXPOSE_HEADERS
        assert "Origin" in vary(response)
    assert "Retry-After" in limited.headers  # readable by the browser via Expose-Headers


async def test_actual_request_from_disallowed_origin_gets_no_cors(cors_settings: Settings) -> None:
    async with serve(cors_settings) as client:
        response = await client.get("/api/v1/things", headers={"Origin": EVIL_ORIGIN, **bearer()})
    assert response.status == 200  # served; the browser withholds it from the page
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Expose-Headers" not in response.headers
    assert "Origin" in vary(response)


async def test_requests_without_origin_are_untouched(cors_settings: Settings) -> None:
    async with serve(cors_settings) as client:
        response = await client.get("/api/v1/things", headers=bearer())
        options = await client.options("/healthz", headers={"Access-Control-Request-Method": "GET"})
    assert response.status == 200
    assert not any(name.startswith("Access-Control-") for name in response.headers)
    assert vary(response) == ["Accept"]
    assert options.status == 405  # not a preflight: the router answers
    assert "Access-Control-Allow-Origin" not in options.headers


async def test_wildcard_answers_star_without_credentials(settings_with) -> None:
    settings = settings_with(cors_origins=("*", APP_ORIGIN))
    async with serve(settings) as client:
        anyone = await client.options("/api/v1/things", headers=preflight_headers(EVIL_ORIGIN))
        actual = await client.get("/api/v1/things", headers={"Origin": EVIL_ORIGIN, **bearer()})
        listed = await client.get("/api/v1/things", headers={"Origin": APP_ORIGIN, **bearer()})
    assert anyone.status == 204
    assert anyone.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in anyone.headers
    assert actual.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in actual.headers
    assert actual.headers["Access-Control-Expose-Headers"] == EXPOSE_HEADERS
    # An exactly listed origin is still echoed, with credentials.
    assert listed.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert listed.headers["Access-Control-Allow-Credentials"] == "true"


async def test_origin_match_is_exact(cors_settings: Settings) -> None:
    async with serve(cors_settings) as client:
        for origin in (
            APP_ORIGIN + ".evil.net",
            "http://app.example.com",  # other scheme
            "https://app.example.com:8443",  # other port
            "https://sub.app.example.com",
            "null",
        ):
            response = await client.options("/api/v1/things", headers=preflight_headers(origin))
            assert response.status == 403, origin
