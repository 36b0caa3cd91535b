"""Rate limits on the API: per client IP on auth endpoints, per user or token elsewhere.

The middleware runs after authentication (so it knows the principal) and before
validation. It fails open: when Redis is down or slow, requests are served without
limits (and without ``RateLimit-*`` headers), a warning is logged at most every 30 s and
``planboard_ratelimit_unavailable_total`` counts the unlimited requests.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from planboard.api.middleware import request_id_of
from planboard.api.principal import principal_key
from planboard.api.problems import problem_response
from planboard.config import RateLimit, Settings
from planboard.services.ratelimit import Decision, SlidingWindowLimiter
from planboard.typedefs import metrics_key, redis_key, settings_key

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
AUTH_PREFIX = "/api/v1/auth"
WARN_EVERY_S = 30.0
# After a Redis failure, skip Redis for this long (requests fail open at once instead of
# each waiting for the dependency timeout); the first request afterwards probes again.
BACKOFF_S = 5.0

HEADER_LIMIT = "RateLimit-Limit"
HEADER_REMAINING = "RateLimit-Remaining"
HEADER_RESET = "RateLimit-Reset"
HEADER_POLICY = "RateLimit-Policy"
RATELIMIT_HEADERS = (HEADER_LIMIT, HEADER_REMAINING, HEADER_RESET, HEADER_POLICY)


@dataclass
class RateLimitState:
    """Per-application limiter state (the app is frozen once started, this object is not)."""

    unavailable: Counter
    refused: Counter
    limiter: SlidingWindowLimiter | None = None
    limiter_redis: Redis | None = None
    last_warning: float = float("-inf")
    skip_until: float = 0.0

    def limiter_for(self, redis: Redis) -> SlidingWindowLimiter:
        """The limiter over ``redis``, built on first use (Redis opens after create_app)."""
        if self.limiter is None or self.limiter_redis is not redis:
            self.limiter = SlidingWindowLimiter(redis)
            self.limiter_redis = redis
        return self.limiter


ratelimit_state_key = web.AppKey("ratelimit_state", RateLimitState)


@dataclass(frozen=True, slots=True)
class AppliedLimit:
    """The headers of the decision that let a request through (for streamed responses)."""

    headers: tuple[tuple[str, str], ...]


applied_limit_key = web.RequestKey("ratelimit_applied", AppliedLimit)


@dataclass(frozen=True, slots=True)
class Bucket:
    """Which policy applies to a request and whose hits it counts."""

    policy: str  # "auth" or "api" (the metric label and the key prefix)
    limit: RateLimit
    key: str  # e.g. "auth:ip:203.0.113.7", "api:user:…", "api:pat:…"
    subject: str  # for the 429 detail: "client IP", "user", "token"


def client_address(request: web.BaseRequest, settings: Settings) -> str | None:
    """The caller's address: the TCP peer, or behind ``trusted_proxy_hops`` trusted
    proxies (``PLANBOARD_TRUST_FORWARDED_FOR``) the rightmost address of X-Forwarded-For
    that no trusted proxy wrote.

    Each proxy appends the address it received the request from, so with N trusted
    proxies the last N-1 entries are theirs and the N-th from the right is the client's
    (the peer is the Nth proxy). Entries left of it were sent by the client and are never
    read. A shorter header (a path through fewer proxies) gives its leftmost entry, and
    an entry that is not an IP address (``:port`` and ``[v6]:port`` are accepted) gives
    the peer address, as does a request with no X-Forwarded-For at all.
    """
    if settings.trust_forwarded_for:
        values = request.headers.getall("X-Forwarded-For", ())
        if values:
            hops = settings.trusted_proxy_hops
            # several headers count as one list, in order (RFC 9110 5.3); rsplit reads
            # only the entries it needs, however long the client made the rest
            entries = ",".join(values).rsplit(",", hops)
            parsed = _parse_ip(entries[0 if len(entries) <= hops else -hops].strip())
            if parsed is not None:
                return str(parsed)
    return request.remote


def client_ip(request: web.Request, settings: Settings) -> str:
    """The caller's rate-limit identity: :func:`client_address`, IPv6 addresses bucketed
    by their /64 (one subscriber's usual allocation), so a client cannot dodge its limit
    by rotating through its own prefix."""
    raw = client_address(request, settings)
    parsed = _parse_ip(raw or "")
    if parsed is not None:
        return _bucket_address(parsed)
    return raw or "unknown"


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not text or len(text) > 64:
        return None
    candidates = [text]
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        candidates.append(text[1 : text.index("]")])
    elif text.count(":") == 1:  # "203.0.113.7:51234"
        candidates.append(text.split(":", 1)[0])
    for candidate in candidates:
        try:
            return ipaddress.ip_address(candidate)
        except ValueError:
            continue
    return None


def _bucket_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def bucket_for(request: web.Request, settings: Settings) -> Bucket | None:
    """The bucket a request counts against, or None for unlimited paths (health, docs)."""
    path = request.path
    if _under(path, AUTH_PREFIX):
        ip = client_ip(request, settings)
        return Bucket("auth", settings.rate_limit_auth, f"auth:ip:{ip}", "client IP")
    if _under(path, API_PREFIX):
        principal = request.get(principal_key)
        if principal is not None:
            subject = "token" if principal.kind == "pat" else "user"
            return Bucket(
                "api", settings.rate_limit_api, f"api:{principal.rate_limit_key}", subject
            )
        ip = client_ip(request, settings)
        return Bucket("api", settings.rate_limit_api, f"api:ip:{ip}", "client IP")
    return None


def _window_text(seconds: int) -> str:
    for unit, size in (("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def ratelimit_headers(decision: Decision, window_s: int) -> dict[str, str]:
    return {
        HEADER_LIMIT: str(decision.limit),
        HEADER_REMAINING: str(decision.remaining),
        HEADER_RESET: str(decision.reset_s),
        HEADER_POLICY: f"{decision.limit};w={window_s}",
    }


def _state(app: web.Application) -> RateLimitState:
    state = app.get(ratelimit_state_key)
    if state is None:
        raise RuntimeError("ratelimit_middleware needs setup_ratelimit(app)")
    return state


async def _decide(
    request: web.Request, state: RateLimitState, settings: Settings, bucket: Bucket
) -> Decision | None:
    """Ask Redis; None when it is unavailable (the request then fails open)."""
    now = time.monotonic()
    redis = request.app.get(redis_key)
    if now < state.skip_until or redis is None:
        state.unavailable.inc()
        return None
    try:
        async with asyncio.timeout(settings.dependency_timeout_s):
            return await state.limiter_for(redis).hit(bucket.key, bucket.limit)
    except (RedisError, OSError, TimeoutError) as exc:
        now = time.monotonic()
        state.skip_until = now + BACKOFF_S
        state.unavailable.inc()
        if now - state.last_warning >= WARN_EVERY_S:
            state.last_warning = now
            log.warning(
                "rate limiting unavailable, serving requests without limits: %s",
                type(exc).__name__,
                extra={"error": type(exc).__name__},
            )
        return None


@web.middleware
async def ratelimit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count the request against its bucket; 429 problem+json once the bucket is full."""
    settings = request.app[settings_key]
    if not settings.rate_limit_enabled:
        return await handler(request)
    bucket = bucket_for(request, settings)
    if bucket is None:
        return await handler(request)
    state = _state(request.app)
    decision = await _decide(request, state, settings, bucket)
    if decision is None:
        return await handler(request)
    headers = ratelimit_headers(decision, bucket.limit.window_s)
    if not decision.allowed:
        state.refused.labels(bucket.policy).inc()
        window = _window_text(bucket.limit.window_s)
        return problem_response(
            429,
            detail=(
                f"Rate limit exceeded: the {bucket.policy} limit allows {bucket.limit.limit} "
                f"requests per {window} per {bucket.subject}; "
                f"retry in {decision.retry_after_s} s."
            ),
            instance=request.path,
            request_id=request_id_of(request),
            headers={**headers, "Retry-After": str(decision.retry_after_s)},
            extra={
                "policy": bucket.policy,
                "limit": bucket.limit.limit,
                "window_s": bucket.limit.window_s,
            },
        )
    request[applied_limit_key] = AppliedLimit(tuple(headers.items()))
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # e.g. 304/3xx, which the error middleware re-raises
        _apply(exc.headers, headers)
        raise
    if not response.prepared:
        _apply(response.headers, headers)
    return response


def _apply(target: MutableMapping[str, str], headers: dict[str, str]) -> None:
    for name, value in headers.items():
        target[name] = value


async def _on_response_prepare(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """Streamed responses are sent before the middleware sees them: add the headers here."""
    if not isinstance(request, web.Request):
        return
    applied = request.get(applied_limit_key)
    if applied is None:
        return
    for name, value in applied.headers:
        response.headers.setdefault(name, value)


def setup_ratelimit(app: web.Application) -> None:
    """Register the metrics and state the middleware uses (call once, before startup)."""
    registry = app[metrics_key].registry
    app[ratelimit_state_key] = RateLimitState(
        unavailable=Counter(
            "planboard_ratelimit_unavailable",
            "Requests served without rate limiting because Redis was unavailable.",
            registry=registry,
        ),
        refused=Counter(
            "planboard_ratelimit_refused",
            "Requests refused with 429 by rate limiting, by policy.",
            ("policy",),
            registry=registry,
        ),
    )
    if app[settings_key].rate_limit_enabled:  # otherwise no request carries applied limits
        app.on_response_prepare.append(_on_response_prepare)
