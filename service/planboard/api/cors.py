"""CORS: exact allowed origins from settings (or a literal ``*``), preflights answered here.

The middleware sits right after the context middleware, outside error handling,
authentication and rate limiting: a preflight never needs a token and is never counted.
Requests without an ``Origin`` header pass through untouched.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass

from aiohttp import hdrs, web

from planboard.api.middleware import request_id_of
from planboard.api.problems import problem_response
from planboard.typedefs import settings_key

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ALLOW_METHODS = "GET, POST, PATCH, PUT, DELETE, OPTIONS"
ALLOW_HEADERS = (
    "Authorization, Content-Type, If-Match, If-None-Match, Idempotency-Key, X-Request-ID"
)
EXPOSE_HEADERS = (
    "ETag, Location, X-Request-ID, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, "
    "RateLimit-Policy, Retry-After"
)
MAX_AGE_S = 600


@dataclass(frozen=True, slots=True)
class CorsPolicy:
    """Allowed origins, normalised once (lowercase, no trailing slash)."""

    origins: frozenset[str]
    any_origin: bool

    @classmethod
    def from_origins(cls, configured: tuple[str, ...]) -> CorsPolicy:
        exact = {o.strip().rstrip("/").lower() for o in configured if o.strip() not in ("", "*")}
        return cls(frozenset(exact), any(o.strip() == "*" for o in configured))

    def allow_origin(self, origin: str) -> str | None:
        """The ``Access-Control-Allow-Origin`` value for ``origin``, or None if refused."""
        if origin.lower() in self.origins:
            return origin
        if self.any_origin:
            return "*"
        return None


cors_policy_key = web.AppKey("cors_policy", CorsPolicy)


def _policy(app: web.Application) -> CorsPolicy:
    policy = app.get(cors_policy_key)
    if policy is None:  # not set up: build it from the settings (cheap, immutable)
        policy = CorsPolicy.from_origins(app[settings_key].cors_origins)
    return policy


def _add_vary(headers: MutableMapping[str, str], name: str) -> None:
    current = headers.get(hdrs.VARY, "")
    values = [v.strip() for v in current.split(",") if v.strip()]
    if "*" in values or any(v.lower() == name.lower() for v in values):
        return
    headers[hdrs.VARY] = ", ".join([*values, name])


def _cors_headers(allowed: str) -> dict[str, str]:
    headers: dict[str, str] = {hdrs.ACCESS_CONTROL_ALLOW_ORIGIN: allowed}
    if allowed != "*":  # credentials never with the wildcard (the Fetch standard forbids it)
        headers[hdrs.ACCESS_CONTROL_ALLOW_CREDENTIALS] = "true"
    return headers


def _apply(target: MutableMapping[str, str], headers: dict[str, str]) -> None:
    for name, value in headers.items():
        target[name] = value
    _add_vary(target, hdrs.ORIGIN)


def _preflight(request: web.Request, origin: str, allowed: str | None) -> web.Response:
    if allowed is None:
        response = problem_response(
            403,
            detail=f"Origin {origin[:200]!r} is not allowed to call this API (CORS).",
            instance=request.path,
            request_id=request_id_of(request),
        )
        _add_vary(response.headers, hdrs.ORIGIN)
        return response
    headers = {
        **_cors_headers(allowed),
        hdrs.ACCESS_CONTROL_ALLOW_METHODS: ALLOW_METHODS,
        hdrs.ACCESS_CONTROL_ALLOW_HEADERS: ALLOW_HEADERS,
        hdrs.ACCESS_CONTROL_MAX_AGE: str(MAX_AGE_S),
    }
    response = web.Response(status=204)
    _apply(response.headers, headers)
    return response


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer preflights; add CORS headers to actual requests from allowed origins."""
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is None:
        return await handler(request)
    allowed = _policy(request.app).allow_origin(origin)
    if (
        request.method == hdrs.METH_OPTIONS
        and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers
    ):
        return _preflight(request, origin, allowed)
    if allowed is None:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            _add_vary(exc.headers, hdrs.ORIGIN)
            raise
        if not response.prepared:
            _add_vary(response.headers, hdrs.ORIGIN)
        return response
    headers = {**_cors_headers(allowed), hdrs.ACCESS_CONTROL_EXPOSE_HEADERS: EXPOSE_HEADERS}
    request[cors_headers_key] = CorsHeaders(tuple(headers.items()))
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # 304/3xx leave the error middleware as exceptions
        _apply(exc.headers, headers)
        raise
    if not response.prepared:
        _apply(response.headers, headers)
    return response


@dataclass(frozen=True, slots=True)
class CorsHeaders:
    """The CORS headers of an actual request (for responses streamed by the handler)."""

    headers: tuple[tuple[str, str], ...]


cors_headers_key = web.RequestKey("cors_headers", CorsHeaders)


async def _on_response_prepare(request: web.BaseRequest, response: web.StreamResponse) -> None:
    # Without an Origin the middleware set nothing (and a request's .get of a missing key
    # costs a raised KeyError: this runs for every response).
    if not isinstance(request, web.Request) or hdrs.ORIGIN not in request.headers:
        return
    applied = request.get(cors_headers_key)
    if applied is None:
        return
    for name, value in applied.headers:
        response.headers.setdefault(name, value)
    _add_vary(response.headers, hdrs.ORIGIN)


def setup_cors(app: web.Application) -> None:
    """Parse ``settings.cors_origins`` once and cover streamed responses (before startup)."""
    app[cors_policy_key] = CorsPolicy.from_origins(app[settings_key].cors_origins)
    app.on_response_prepare.append(_on_response_prepare)
