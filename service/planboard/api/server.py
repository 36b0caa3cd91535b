"""The HTTP server under the app: aiohttp's protocol-level answers as problem+json.

A request aiohttp cannot parse (a request line or header too long, bytes that are not
HTTP, an unknown method, broken chunked framing) never reaches the application: no
middleware or response hook sees it, and aiohttp answers it from
``RequestHandler.handle_error`` as ``text/plain`` quoting the offending bytes, logging a
traceback at ERROR. aiohttp has no hook for that answer (aio-libs/aiohttp#3287), so the
API's runner builds its connections with a ``RequestHandler`` whose ``handle_error``
answers like the rest of the API: problem+json from the one mapper, a request id, the
security headers, and a detail naming the fault without quoting the input. Such requests
are logged at INFO without a traceback (anyone can send them) and counted in the request
metrics under the route ``unparsed``.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import http_exceptions, web

from planboard.api.middleware import (
    REQUEST_ID_HEADER,
    new_request_id,
    request_id_key,
    security_headers,
)
from planboard.api.problems import problem_response
from planboard.logs import request_id_var
from planboard.typedefs import metrics_key

log = logging.getLogger("planboard.api")

#: The route label of requests refused before they had a route.
UNPARSED_ROUTE = "unparsed"

# Most specific first: BadHttpMethod is a BadStatusLine, every one a BadHttpMessage.
_DETAILS: tuple[tuple[type[Exception], str], ...] = (
    (http_exceptions.LineTooLong, "the request line or a header is too long"),
    (http_exceptions.BadHttpMethod, "the request method is not a valid HTTP method"),
    (http_exceptions.BadStatusLine, "the request line is not valid HTTP"),
    (http_exceptions.InvalidURLError, "the request target is not a valid URL"),
    (http_exceptions.InvalidHeader, "a request header is not valid HTTP"),
    (http_exceptions.PayloadEncodingError, "the request body's framing or encoding is invalid"),
)


def _detail(status: int, exc: BaseException | None) -> str:
    for kind, detail in _DETAILS:
        if isinstance(exc, kind):
            return detail
    if status == 504:
        return "the request took too long to handle"
    if status >= 500:
        return "An unexpected error occurred; quote the request id when reporting it."
    return "the request is not valid HTTP"


class ProblemRequestHandler(web.RequestHandler):
    """aiohttp's connection handler, answering its own errors as the API does."""

    __slots__ = ("_app",)

    def __init__(self, manager: web.Server, *, app: web.Application, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._app = app

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        unparsed = isinstance(exc, http_exceptions.HttpProcessingError)
        request_id = request.get(request_id_key) or new_request_id()
        token = request_id_var.set(request_id)
        try:
            if status >= 500:  # an exception that escaped the app: a bug, with its traceback
                log.error("unhandled error in %s %s", request.method, request.path, exc_info=exc)
            else:
                log.info(
                    "refused a request that is not valid HTTP from %s: %s",
                    request.remote,
                    type(exc).__name__,
                    extra={"status": status, "error": type(exc).__name__},
                )
        finally:
            request_id_var.reset(token)
        if request.writer.output_size > 0:  # as aiohttp: a response has begun, cannot answer
            raise ConnectionError("the response has started; no error can be sent")
        if unparsed:
            self._app[metrics_key].observe_request(request.method, UNPARSED_ROUTE, status, 0.0)
        path = "" if unparsed else request.path  # the request line was not understood
        response = problem_response(
            status,
            detail=_detail(status, exc),
            instance=path,
            request_id=request_id,
            headers={REQUEST_ID_HEADER: request_id, **security_headers(path)},
        )
        response.force_close()
        return response


class ProblemServer(web.Server):
    """aiohttp's server, making :class:`ProblemRequestHandler` connections."""

    def __init__(self, handler: Any, *, app: web.Application, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.app = app

    def __call__(self) -> web.RequestHandler:
        return ProblemRequestHandler(self, app=self.app, loop=self._loop, **self._kwargs)


class ApiRunner(web.AppRunner):
    """The app's runner (``planboard serve`` and the tests): its server's connections
    answer protocol-level errors as problem+json."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        return ProblemServer(
            server.request_handler,
            app=self.app,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            loop=server._loop,
            **server._kwargs,
        )
