"""The middleware chain: request context (id, metrics, headers, access log) and errors."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import re
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from pymongo.errors import ConnectionFailure

from planboard.api.problems import problem_response
from planboard.domain.errors import (
    Conflict,
    CycleDetected,
    DomainError,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    PlanSyntaxError,
    Unauthorized,
    Unavailable,
    UnsupportedContent,
    ValidationFailed,
    VersionMismatch,
)
from planboard.logs import request_id_var
from planboard.typedefs import metrics_key, settings_key

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

log = logging.getLogger("planboard.api")
access_log = logging.getLogger("planboard.access")

REQUEST_ID_HEADER = "X-Request-ID"
#: nginx's status for a request whose client went away before it was answered: counted and
#: logged as such (never sent), so a disconnect is neither a 5xx nor an error line.
CLIENT_CLOSED_REQUEST = 499
#: Seconds a client should wait before retrying when a dependency is unreachable (the
#: same hint /readyz gives).
RETRY_AFTER_S = 5
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
request_id_key = web.RequestKey("request_id", str)

# The Helmet.js defaults, tightened for a JSON API (no content may be framed or scripted).
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Origin-Agent-Cluster": "?1",
    "Referrer-Policy": "no-referrer",
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
    "X-Content-Type-Options": "nosniff",
    "X-DNS-Prefetch-Control": "off",
    "X-Download-Options": "noopen",
    "X-Frame-Options": "DENY",
    "X-Permitted-Cross-Domain-Policies": "none",
    "X-XSS-Protection": "0",
}
# The Swagger UI page (/api/docs) and its assets, served from the package, need scripts,
# styles and images from this origin and fetch the spec and "Try it out" calls from it.
DOCS_PATH = "/api/docs"
DOCS_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


def security_headers(path: str) -> dict[str, str]:
    """The security headers for a response to ``path`` (a relaxed CSP on the docs only)."""
    if path == DOCS_PATH or path.startswith(DOCS_PATH + "/"):
        return {**SECURITY_HEADERS, "Content-Security-Policy": DOCS_CSP}
    return SECURITY_HEADERS


# Generated request ids: 128 random bits as 32 hex digits (the length uuid4().hex had), from
# a generator of the module's own, seeded from os.urandom (again in a forked child), so no
# system call per request and no sharing with whoever seeds the global ``random``. Ids
# name requests in logs; they are not secrets.
_request_ids = random.Random()  # noqa: S311 - ids, not secrets
os.register_at_fork(after_in_child=_request_ids.seed)


def new_request_id() -> str:
    return _request_ids.randbytes(16).hex()


def request_id_of(request: web.Request) -> str | None:
    return request.get(request_id_key)


def route_label(request: web.Request) -> str:
    """The route template (bounded label cardinality), not the raw path."""
    info = request.match_info
    route = getattr(info, "route", None)
    resource = getattr(route, "resource", None)
    if resource is None:
        return "unmatched"
    return str(resource.canonical)


def client_gone(request: web.BaseRequest) -> bool:
    """The client closed the connection (aiohttp drops the transport when it does)."""
    return request.transport is None


@web.middleware
async def context_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id, timing, metrics and the access log line (the id and the security
    headers are put on the response when it is prepared: ``_add_context_headers``)."""
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = incoming if _REQUEST_ID_RE.match(incoming) else new_request_id()
    request[request_id_key] = request_id
    token = request_id_var.set(request_id)
    metrics = request.app[metrics_key]
    started = time.perf_counter()
    metrics.in_flight.inc()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:  # a 3xx (304, redirects) leaves as an exception
        status = exc.status
        raise
    except asyncio.CancelledError:  # the handler was cancelled: its client left, or shutdown
        status = CLIENT_CLOSED_REQUEST if client_gone(request) else 500
        raise
    finally:
        elapsed = time.perf_counter() - started
        metrics.in_flight.dec()
        route = route_label(request)
        metrics.observe_request(request.method, route, status, elapsed)
        if request.app[settings_key].access_log:
            access_log.info(
                "%s %s %s",
                request.method,
                request.path,
                status,
                extra={
                    "method": request.method,
                    "path": request.path,
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "remote": request.remote,
                },
            )
        request_id_var.reset(token)


async def _add_context_headers(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """Every response carries its request id and the security headers: those a handler
    returns, those it streams (prepared before any middleware sees them again) and the
    HTTP exceptions it raises. A header the handler set itself wins (a file's own CSP)."""
    request_id = request.get(request_id_key)
    if request_id is not None:
        response.headers[REQUEST_ID_HEADER] = request_id
    headers = response.headers
    for name, value in security_headers(request.path).items():
        if name not in headers:
            headers[name] = value


def setup_context(app: web.Application) -> None:
    """Register the response hook of the request context (before startup)."""
    app.on_response_prepare.append(_add_context_headers)


def _domain_status(error: DomainError) -> int:
    if isinstance(error, Unauthorized):
        return 401
    if isinstance(error, Forbidden):
        return 403
    if isinstance(error, NotFound):
        return 404
    if isinstance(error, VersionMismatch):
        return 412
    if isinstance(error, Conflict):
        return 409
    if isinstance(error, PayloadTooLarge):
        return 413
    if isinstance(error, UnsupportedContent):
        return 415
    if isinstance(error, Unavailable):
        return 503
    if isinstance(error, ValidationFailed | PlanSyntaxError):
        return 422
    return 400


def domain_problem(request: web.Request, error: DomainError) -> web.Response:
    """Map a domain error to problem+json (the one place that does it)."""
    status = _domain_status(error)
    errors: list[dict[str, str]] | None = None
    extra: dict[str, object] = {}
    if isinstance(error, ValidationFailed):
        errors = [{"field": field, "message": message} for field, message in error.errors]
    if isinstance(error, CycleDetected):
        extra["cycle"] = list(error.cycle)
    if isinstance(error, PlanSyntaxError):
        extra["line"] = error.line
        errors = [{"field": f"line {error.line}", "message": error.detail}]
    headers = {"WWW-Authenticate": 'Bearer realm="planboard"'} if status == 401 else None
    if status == 503:
        headers = {"Retry-After": str(RETRY_AFTER_S)}
    return problem_response(
        status,
        detail=error.detail,
        instance=request.path,
        request_id=request_id_of(request),
        errors=errors,
        extra=extra or None,
        headers=headers,
    )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as problem+json; unexpected ones are logged, never leaked."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() != "content-type"}
        detail = exc.text if exc.text and exc.text != f"{exc.status}: {exc.reason}" else exc.reason
        return problem_response(
            exc.status,
            detail=detail,
            instance=request.path,
            request_id=request_id_of(request),
            headers=headers,
        )
    except DomainError as exc:
        return domain_problem(request, exc)
    except (ConnectionResetError, web.RequestPayloadError) as exc:
        if client_gone(request):
            # The client hung up mid-request (often mid-body): nothing to answer, not a
            # server fault, and a client could flood the log with tracebacks of it.
            log.info(
                "client disconnected during %s %s",
                request.method,
                request.path,
                extra={"error": type(exc).__name__},
            )
            return problem_response(
                CLIENT_CLOSED_REQUEST,
                title="Client Closed Request",
                detail="the client closed the connection before the response",
                instance=request.path,
                request_id=request_id_of(request),
            )
        if isinstance(exc, web.RequestPayloadError):  # e.g. a body that fails to decompress
            return problem_response(
                400,
                detail="the request body could not be read: it is malformed or truncated",
                instance=request.path,
                request_id=request_id_of(request),
            )
        return _unexpected(request)
    except ConnectionFailure as exc:
        # MongoDB unreachable (no server selected within the client's timeout, a connection
        # lost mid-request, a primary stepping down): the request may succeed on a retry.
        log.warning(
            "MongoDB unavailable in %s %s: %s",
            request.method,
            request.path,
            type(exc).__name__,
            extra={"error": type(exc).__name__},
        )
        return problem_response(
            503,
            title="Service Unavailable",
            detail="The database is unavailable; retry shortly.",
            instance=request.path,
            request_id=request_id_of(request),
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    except Exception:
        return _unexpected(request)


def _unexpected(request: web.Request) -> web.Response:
    """The 500 of an unexpected exception (call while handling it): logged with its
    traceback, answered with only the request id."""
    log.exception("unhandled error in %s %s", request.method, request.path)
    return problem_response(
        500,
        detail="An unexpected error occurred; quote the request id when reporting it.",
        instance=request.path,
        request_id=request_id_of(request),
    )
