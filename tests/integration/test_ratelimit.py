"""Rate limits on the real Redis: the sliding-window limiter and the API middleware."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from planboard.api.authn import authentication_middleware
from planboard.api.principal import Principal, principal_key
from planboard.api.ratelimit import RATELIMIT_HEADERS
from planboard.app import create_app
from planboard.config import RateLimit, Settings
from planboard.domain.errors import NotFound
from planboard.services.ratelimit import KEY_PREFIX, SlidingWindowLimiter, storage_key
from planboard_devstack.paths import free_port

pytestmark = pytest.mark.integration

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def unique_key(label: str = "k") -> str:
    return f"test:{label}:{secrets.token_hex(8)}"


def unique_ipv6() -> str:
    """An address in a fresh /64 (IPv6 clients are bucketed per /64)."""
    return f"2001:db8:{secrets.randbits(16):x}:{secrets.randbits(16):x}::1"


def unique_ipv4() -> str:
    return f"10.{secrets.randbits(8)}.{secrets.randbits(8)}.{secrets.randbits(8)}"


# --- the limiter on its own -------------------------------------------------------------


async def test_exactly_limit_hits_are_allowed_then_refused(redis: Redis) -> None:
    limiter = SlidingWindowLimiter(redis)
    key, policy = unique_key(), RateLimit(5, 60)
    decisions = [await limiter.hit(key, policy) for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0, 0]
    assert all(d.limit == 5 for d in decisions)
    assert all(1 <= d.reset_s <= 60 for d in decisions)
    assert all(d.retry_after_s == 0 for d in decisions[:5])
    assert 1 <= decisions[5].retry_after_s <= 60
    ttl_ms = await redis.pttl(storage_key(key))
    assert 0 < ttl_ms <= 60_000
    assert await redis.zcard(storage_key(key)) == 5  # the refused hit was not recorded


async def test_hits_slide_out_and_refused_hits_do_not_extend_the_lockout(redis: Redis) -> None:
    limiter = SlidingWindowLimiter(redis)
    key, policy = unique_key(), RateLimit(2, 1)
    assert (await limiter.hit(key, policy)).allowed
    assert (await limiter.hit(key, policy)).allowed
    refused = await limiter.hit(key, policy)
    assert not refused.allowed
    assert refused.retry_after_s == 1
    await asyncio.sleep(0.5)
    for _ in range(10):  # hammering while locked out
        assert not (await limiter.hit(key, policy)).allowed
    await asyncio.sleep(0.6)  # the two counted hits are now older than the window
    again = await limiter.hit(key, policy)
    assert again.allowed
    assert again.remaining == 1


async def test_window_slides_rather_than_resets(redis: Redis) -> None:
    limiter = SlidingWindowLimiter(redis)
    key, policy = unique_key(), RateLimit(2, 2)
    assert (await limiter.hit(key, policy)).allowed
    await asyncio.sleep(1.1)
    assert (await limiter.hit(key, policy)).allowed
    assert not (await limiter.hit(key, policy)).allowed
    await asyncio.sleep(1.2)  # only the first hit has left the window
    assert (await limiter.hit(key, policy)).allowed
    assert not (await limiter.hit(key, policy)).allowed


async def test_concurrent_hits_are_counted_atomically(redis: Redis) -> None:
    limiter = SlidingWindowLimiter(redis)
    key, policy = unique_key(), RateLimit(20, 60)
    decisions = await asyncio.gather(*(limiter.hit(key, policy) for _ in range(50)))
    assert Counter(d.allowed for d in decisions) == {True: 20, False: 30}
    assert sorted(d.remaining for d in decisions if d.allowed) == list(range(20))
    assert await redis.zcard(storage_key(key)) == 20  # every member unique, none lost


async def test_hostile_keys_map_to_bounded_distinct_redis_keys(redis: Redis) -> None:
    limiter = SlidingWindowLimiter(redis)
    hostile = ["x" * 10_000 + secrets.token_hex(4), f"a:b\r\nDEL *\n{secrets.token_hex(4)}"]
    for key in hostile:
        name = storage_key(key)
        assert re.fullmatch(re.escape(KEY_PREFIX) + "[0-9a-f]{64}", name)
        assert (await limiter.hit(key, RateLimit(1, 60))).allowed
        assert not (await limiter.hit(key, RateLimit(1, 60))).allowed
    suffix = secrets.token_hex(4)
    assert storage_key(f"a:b{suffix}") != storage_key(f"a{suffix}:b")
    assert storage_key("auth:ip:1.2.3.4") != storage_key("api:ip:1.2.3.4")


# --- the middleware ------------------------------------------------------------------------


@web.middleware
async def principal_from_header(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Stands in for the authentication middleware: ``X-Test-Principal: user:<id>``."""
    raw = request.headers.get("X-Test-Principal")
    if raw:
        kind, ident = raw.split(":", 1)
        if kind == "pat":
            request[principal_key] = Principal(user_id="u-pat", kind="pat", token_id=ident)
        else:
            request[principal_key] = Principal(user_id=ident, kind="session", token_id="family")
    return await handler(request)


def build_app(settings: Settings, calls: Counter[str]) -> web.Application:
    app = create_app(settings)  # already wired: context, cors, error, authn, ratelimit, ...
    # a stand-in principal (set by a header) just before the real rate-limit middleware
    # (right after authentication: with limits off, create_app leaves the rate limiter out)
    after_authn = app.middlewares.index(authentication_middleware) + 1
    app.middlewares.insert(after_authn, principal_from_header)

    def counting(name: str, status: int = 200) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            calls[name] += 1
            return web.json_response({"ok": name}, status=status)

        return handler

    async def missing(request: web.Request) -> web.StreamResponse:
        calls["missing"] += 1
        raise web.HTTPNotFound(text="no such thing")

    async def domain(request: web.Request) -> web.StreamResponse:
        calls["domain"] += 1
        raise NotFound("project not found")

    async def cached(request: web.Request) -> web.StreamResponse:
        calls["cached"] += 1
        raise web.HTTPNotModified(headers={"ETag": '"v1"'})

    async def stream(request: web.Request) -> web.StreamResponse:
        calls["stream"] += 1
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"chunk")
        await response.write_eof()
        return response

    app.router.add_get("/api/v1/auth/ping", counting("auth"))
    app.router.add_post("/api/v1/auth/test-login", counting("login"))
    app.router.add_get("/api/v1/things", counting("things"))
    app.router.add_get("/api/v1/missing", missing)
    app.router.add_get("/api/v1/domain", domain)
    app.router.add_get("/api/v1/cached", cached)
    app.router.add_get("/api/v1/stream", stream)
    return app


@asynccontextmanager
async def serve(settings: Settings, calls: Counter[str]) -> AsyncIterator[TestClient]:
    server = TestServer(build_app(settings, calls))
    # Let a 10 kB header through aiohttp's parser, so the middleware itself must cope.
    await server.start_server(max_field_size=32 * 1024)
    async with TestClient(server) as test_client:
        yield test_client


@pytest.fixture
def limited(settings_with):  # type: ignore[no-untyped-def]
    return settings_with(
        trust_forwarded_for=True,
        rate_limit_auth=RateLimit(3, 60),
        rate_limit_api=RateLimit(4, 60),
    )


async def test_headers_are_present_and_decreasing(limited: Settings) -> None:
    calls: Counter[str] = Counter()
    user = {"X-Test-Principal": f"user:{secrets.token_hex(6)}"}
    async with serve(limited, calls) as client:
        remaining = []
        for _ in range(4):
            response = await client.get("/api/v1/things", headers=user)
            assert response.status == 200
            assert response.headers["RateLimit-Limit"] == "4"
            assert response.headers["RateLimit-Policy"] == "4;w=60"
            assert 1 <= int(response.headers["RateLimit-Reset"]) <= 60
            remaining.append(int(response.headers["RateLimit-Remaining"]))
    assert remaining == [3, 2, 1, 0]
    assert calls["things"] == 4


async def test_refused_request_is_429_problem_and_handler_not_called(limited: Settings) -> None:
    calls: Counter[str] = Counter()
    ip = {"X-Forwarded-For": unique_ipv6()}
    async with serve(limited, calls) as client:
        for _ in range(3):
            assert (await client.post("/api/v1/auth/test-login", headers=ip)).status == 200
        response = await client.post("/api/v1/auth/test-login", headers=ip)
        body = await response.json(content_type=None)
        metrics = await (await client.get("/metrics")).text()
    assert response.status == 429
    assert response.content_type == "application/problem+json"
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert response.headers["RateLimit-Remaining"] == "0"
    assert response.headers["RateLimit-Policy"] == "3;w=60"
    assert body["status"] == 429
    assert body["policy"] == "auth"
    assert "auth limit allows 3 requests per 1 minute per client IP" in body["detail"]
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert calls["login"] == 3
    assert 'planboard_ratelimit_refused_total{policy="auth"} 1.0' in metrics


async def test_headers_on_error_and_streamed_responses(settings_with) -> None:
    calls: Counter[str] = Counter()
    user = {"X-Test-Principal": f"user:{secrets.token_hex(6)}"}
    settings = settings_with(rate_limit_api=RateLimit(50, 60))
    async with serve(settings, calls) as client:
        seen = []
        for path, status in [
            ("/api/v1/missing", 404),
            ("/api/v1/domain", 404),
            ("/api/v1/cached", 304),
            ("/api/v1/stream", 200),
            ("/api/v1/no-such-route", 404),
        ]:
            response = await client.get(path, headers=user)
            await response.read()
            assert response.status == status, path
            for name in RATELIMIT_HEADERS:
                assert name in response.headers, (path, name)
            seen.append(int(response.headers["RateLimit-Remaining"]))
    assert seen == [49, 48, 47, 46, 45]


async def test_auth_is_per_ip_and_api_is_per_principal(limited: Settings) -> None:
    calls: Counter[str] = Counter()
    ip = unique_ipv6()
    alice = {"X-Forwarded-For": ip, "X-Test-Principal": f"user:{secrets.token_hex(6)}"}
    bob = {"X-Forwarded-For": ip, "X-Test-Principal": f"user:{secrets.token_hex(6)}"}
    token = {"X-Forwarded-For": ip, "X-Test-Principal": f"pat:{secrets.token_hex(6)}"}
    anonymous = {"X-Forwarded-For": ip}
    async with serve(limited, calls) as client:

        async def remaining(path: str, headers: dict[str, str]) -> int:
            response = await client.get(path, headers=headers)
            return int(response.headers["RateLimit-Remaining"])

        # The auth bucket is the IP's, whoever is logged in.
        assert [await remaining("/api/v1/auth/ping", h) for h in (alice, bob, anonymous)] == [
            2,
            1,
            0,
        ]
        assert (await client.get("/api/v1/auth/ping", headers=bob)).status == 429
        # API buckets are per user, per token, and per IP for anonymous callers, and are
        # separate from the (now exhausted) auth bucket of the same IP.
        assert [await remaining("/api/v1/things", alice) for _ in range(2)] == [3, 2]
        assert await remaining("/api/v1/things", bob) == 3
        assert await remaining("/api/v1/things", token) == 3
        assert await remaining("/api/v1/things", anonymous) == 3
        other_ip = {"X-Forwarded-For": unique_ipv6()}
        assert await remaining("/api/v1/auth/ping", other_ip) == 2


async def test_forwarded_for_is_ignored_unless_trusted(settings_with) -> None:
    settings = settings_with(trust_forwarded_for=False, rate_limit_auth=RateLimit(100_000, 60))
    calls: Counter[str] = Counter()
    async with serve(settings, calls) as client:
        seen = []
        for _ in range(3):  # a spoofed header must not give a fresh bucket
            response = await client.get(
                "/api/v1/auth/ping", headers={"X-Forwarded-For": unique_ipv4()}
            )
            seen.append(int(response.headers["RateLimit-Remaining"]))
    assert seen[1] == seen[0] - 1
    assert seen[2] == seen[1] - 1


async def test_forwarded_for_rightmost_address_and_ipv6_prefix(limited: Settings) -> None:
    calls: Counter[str] = Counter()
    client_v4 = unique_ipv4()
    prefix = f"2001:db8:{secrets.randbits(16):x}:{secrets.randbits(16):x}"
    async with serve(limited, calls) as client:

        async def remaining(xff: str) -> int:
            response = await client.get("/api/v1/auth/ping", headers={"X-Forwarded-For": xff})
            return int(response.headers["RateLimit-Remaining"])

        # One trusted proxy appends the address it saw: the rightmost entry is the client.
        assert await remaining(f"{unique_ipv4()}, {client_v4}") == 2
        assert await remaining(f"{client_v4}:51234") == 1  # same client, with port
        assert await remaining(f"{prefix}::1") == 2
        assert await remaining(f"[{prefix}::2]:443") == 1  # same /64
        assert await remaining(f"{prefix}:ffff:1:2:3") == 0


async def test_forwarded_for_entries_a_client_wrote_are_ignored(limited: Settings) -> None:
    """Behind an appending proxy (nginx's $proxy_add_x_forwarded_for, ALBs) the client
    controls everything left of what the proxy appended: a fresh spoofed first entry on
    every request must not give it a fresh bucket."""
    calls: Counter[str] = Counter()
    client_v4 = unique_ipv4()
    async with serve(limited, calls) as client:
        seen = []
        for _ in range(4):
            spoofed = f"{unique_ipv4()}, {unique_ipv6()}"
            response = await client.post(
                "/api/v1/auth/test-login", headers={"X-Forwarded-For": f"{spoofed}, {client_v4}"}
            )
            seen.append(response.status)
        # a second header line is part of the same list: its last entry is what counts
        response = await client.post(
            "/api/v1/auth/test-login",
            headers=[("X-Forwarded-For", client_v4), ("X-Forwarded-For", unique_ipv4())],
        )
    assert seen == [200, 200, 200, 429]
    assert response.status == 200  # the appended entry is another client
    assert calls["login"] == 4


async def test_forwarded_for_with_several_trusted_proxies(settings_with) -> None:
    settings = settings_with(
        trust_forwarded_for=True, trusted_proxy_hops=2, rate_limit_auth=RateLimit(3, 60)
    )
    calls: Counter[str] = Counter()
    client_v4 = unique_ipv4()
    async with serve(settings, calls) as client:

        async def remaining(xff: str) -> int:
            response = await client.get("/api/v1/auth/ping", headers={"X-Forwarded-For": xff})
            return int(response.headers["RateLimit-Remaining"])

        # CDN -> load balancer -> API: the load balancer appended the CDN's address, the
        # CDN the client's; whatever the client sent is further left.
        assert await remaining(f"{unique_ipv4()}, {client_v4}, 10.0.0.7") == 2
        assert await remaining(f"{client_v4}, 10.0.0.8") == 1
        # a path through one proxy only: its single entry is the client
        assert await remaining(client_v4) == 0
        assert await remaining(f"{client_v4}, {unique_ipv4()}, 10.0.0.7") == 2


async def test_hostile_forwarded_for_is_handled(settings_with) -> None:
    settings = settings_with(trust_forwarded_for=True, rate_limit_auth=RateLimit(100_000, 60))
    calls: Counter[str] = Counter()
    async with serve(settings, calls) as client:

        async def remaining(xff: str) -> int:
            response = await client.get("/api/v1/auth/ping", headers={"X-Forwarded-For": xff})
            assert response.status == 200
            return int(response.headers["RateLimit-Remaining"])

        # 10 kB of colons and junk is not an address: both fall back to the peer's bucket.
        first = await remaining("a:b:" * 10 + "x" * 10_000 + secrets.token_hex(4))
        second = await remaining("10.0.0.1, ::" + "f" * 10_000)
        assert second == first - 1
        long_list = ", ".join(unique_ipv4() for _ in range(600))  # ~9 kB, the last one counts
        assert await remaining(long_list) == 100_000 - 1


async def test_ops_and_docs_paths_are_not_limited(settings_with) -> None:
    settings = settings_with(
        trust_forwarded_for=True, rate_limit_api=RateLimit(1, 60), rate_limit_auth=RateLimit(1, 60)
    )
    calls: Counter[str] = Counter()
    ip = {"X-Forwarded-For": unique_ipv6()}
    async with serve(settings, calls) as client:
        for _ in range(3):
            for path in ("/healthz", "/metrics", "/api/docs", "/api/openapi.json"):
                response = await client.get(path, headers=ip)
                assert response.status == 200, path
                assert not any(name in response.headers for name in RATELIMIT_HEADERS), path


async def test_disabled_switch_turns_limits_off(settings_with) -> None:
    settings = settings_with(
        rate_limit_enabled=False, trust_forwarded_for=True, rate_limit_auth=RateLimit(1, 60)
    )
    calls: Counter[str] = Counter()
    ip = {"X-Forwarded-For": unique_ipv6()}
    async with serve(settings, calls) as client:
        for _ in range(5):
            response = await client.get("/api/v1/auth/ping", headers=ip)
            assert response.status == 200
            assert "RateLimit-Limit" not in response.headers
    assert calls["auth"] == 5


async def _unavailable_count(client: TestClient) -> float:
    text = await (await client.get("/metrics")).text()
    match = re.search(r"^planboard_ratelimit_unavailable_total ([0-9.e+]+)$", text, re.M)
    assert match, text
    return float(match.group(1))


async def test_fails_open_when_redis_is_down(settings_with, caplog) -> None:
    settings = settings_with(
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        dependency_timeout_s=0.5,
        rate_limit_auth=RateLimit(1, 60),
    )
    calls: Counter[str] = Counter()
    caplog.set_level(logging.WARNING, logger="planboard.api.ratelimit")
    async with serve(settings, calls) as client:
        for _ in range(3):
            response = await client.get("/api/v1/auth/ping")
            assert response.status == 200
            assert not any(name in response.headers for name in RATELIMIT_HEADERS)
        assert await _unavailable_count(client) == 3
    assert calls["auth"] == 3
    warnings = [r for r in caplog.records if r.name == "planboard.api.ratelimit"]
    assert len(warnings) == 1  # at most one warning per 30 s


@asynccontextmanager
async def silent_server() -> AsyncIterator[int]:
    """A TCP server that accepts connections and never answers (a hung Redis)."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_fails_open_quickly_when_redis_hangs(settings_with) -> None:
    calls: Counter[str] = Counter()
    async with silent_server() as port:
        settings = settings_with(redis_url=f"redis://127.0.0.1:{port}/0", dependency_timeout_s=0.3)
        async with serve(settings, calls) as client:
            started = time.perf_counter()
            first = await client.get("/api/v1/things")
            first_s = time.perf_counter() - started
            started = time.perf_counter()
            second = await client.get("/api/v1/things")  # within the back-off: no wait
            second_s = time.perf_counter() - started
            assert await _unavailable_count(client) == 2
    assert first.status == second.status == 200
    assert "RateLimit-Limit" not in first.headers
    assert first_s < 2.0
    assert second_s < 0.25
