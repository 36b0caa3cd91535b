"""Error tracking with Sentry: on only when ``SENTRY_DSN`` is set (docs/observability.md).

Unset, ``sentry_sdk`` is not even imported. Set, every process reports errors: the API
through sentry-sdk's aiohttp integration (one isolation scope per request) and its
logging integration (``error_middleware`` logs each unexpected exception at ERROR before
answering 500, and that record becomes the event), the relay and workers through the
logging integration.

Events carry the request id (tag ``request_id``), the authenticated user's id (``user.id``
only), the component and, with tracing on, the trace id; never secrets: no default PII,
no local variables, no request bodies, no cookies, no query strings, and the
Authorization/Cookie (and similar) headers are removed, not just masked.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Awaitable, Callable, Mapping
from importlib import metadata
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web

from planboard import tracing
from planboard.api.principal import Principal, principal_key
from planboard.config import Settings, SettingsError
from planboard.logs import request_id_var

if TYPE_CHECKING:
    from sentry_sdk._types import Breadcrumb, BreadcrumbHint, Event, Hint

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Removed from every event's request headers, whatever send_default_pii says.
SENSITIVE_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "x-auth-token",
        "x-csrf-token",
        "x-xsrf-token",
        "x-forwarded-for",
        "x-real-ip",
    }
)

_enabled = False


def requested(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return bool(env.get("SENTRY_DSN", "").strip())


def is_enabled() -> bool:
    return _enabled


def _release() -> str:
    try:
        return f"planboard@{metadata.version('planboard')}"
    except metadata.PackageNotFoundError:  # pragma: no cover - always installed
        return "planboard@unknown"


def configure(
    settings: Settings, component: str, *, environ: Mapping[str, str] | None = None
) -> bool:
    """Initialise Sentry for this process when ``SENTRY_DSN`` is set; True when on."""
    global _enabled
    env = os.environ if environ is None else environ
    dsn = env.get("SENTRY_DSN", "").strip()
    if not dsn:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.aiohttp import AioHttpIntegration
    from sentry_sdk.integrations.logging import LoggingIntegration
    from sentry_sdk.utils import BadDsn

    try:
        with warnings.catch_warnings():
            # send_default_pii=False is deprecated for data_collection in newer SDKs; it is
            # still honoured (data_collection unset), and it is the explicit promise we make.
            warnings.filterwarnings("ignore", "The send_default_pii option", DeprecationWarning)
            sentry_sdk.init(
                dsn=dsn,
                environment=env.get("SENTRY_ENVIRONMENT") or settings.env,
                release=env.get("SENTRY_RELEASE") or _release(),
                send_default_pii=False,
                include_local_variables=False,  # frames' locals hold tokens and bodies
                max_request_body_size="never",
                # Errors only: tracing is OpenTelemetry's job, and no sentry-trace/baggage
                # headers may leave with webhook deliveries.
                traces_sample_rate=None,
                trace_propagation_targets=[],
                auto_enabling_integrations=False,  # only what is listed here (+ defaults)
                integrations=[
                    AioHttpIntegration(),
                    LoggingIntegration(level=logging.INFO, event_level=logging.ERROR),
                ],
                before_send=scrub_event,
                before_breadcrumb=scrub_breadcrumb,
            )
    except BadDsn as exc:
        raise SettingsError(f"SENTRY_DSN is not a valid Sentry DSN: {exc}") from None
    sentry_sdk.set_tag("component", component)
    _enabled = True
    log.info("error tracking on", extra={"component": component})
    return True


def shutdown(timeout_s: float = 2.0) -> None:
    """Send what is queued and detach the client (tests; processes exit via atexit)."""
    global _enabled
    if not _enabled:
        return
    import sentry_sdk

    _enabled = False
    client = sentry_sdk.get_client()
    client.close(timeout=timeout_s)
    sentry_sdk.get_global_scope().set_client(None)


@web.middleware
async def sentry_context_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The authenticated user's id on the request's scope (set by authentication before)."""
    principal = request.get(principal_key)
    if isinstance(principal, Principal):
        import sentry_sdk

        sentry_sdk.set_user({"id": principal.user_id})
    return await handler(request)


def instrument_app(app: web.Application) -> None:
    """Add the user middleware last (after authentication), when Sentry is on."""
    if _enabled:
        app.middlewares.append(sentry_context_middleware)


def _strip_query(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def scrub_event(event: Event, hint: Hint) -> Event | None:
    """``before_send``: drop bodies, cookies, queries and credentials; add request/trace ids."""
    request: Any = event.get("request")
    if isinstance(request, dict):
        for key in ("data", "cookies", "query_string", "env"):
            request.pop(key, None)
        if isinstance(request.get("url"), str):
            request["url"] = _strip_query(request["url"])
        headers = request.get("headers")
        if isinstance(headers, dict):
            request["headers"] = {
                k: v for k, v in headers.items() if str(k).lower() not in SENSITIVE_HEADERS
            }
    user: Any = event.get("user")
    if isinstance(user, dict):
        event["user"] = {"id": user["id"]} if user.get("id") else {}
    tags: Any = event.setdefault("tags", {})
    if isinstance(tags, dict):
        request_id = request_id_var.get()
        if request_id:
            tags["request_id"] = request_id
        trace_id = tracing.current_trace_id()
        if trace_id:
            tags["trace_id"] = trace_id
    return event


def scrub_breadcrumb(crumb: Breadcrumb, hint: BreadcrumbHint) -> Breadcrumb | None:
    """``before_breadcrumb``: no query strings or fragments, no client addresses."""
    data: Any = crumb.get("data")
    if isinstance(data, dict):
        for key in ("http.query", "http.fragment", "remote"):  # remote: the access log's IP
            data.pop(key, None)
        if isinstance(data.get("url"), str):
            data["url"] = _strip_query(data["url"])
    return crumb
