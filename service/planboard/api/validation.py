"""Request validation from the same marshmallow schemas that document the API.

``aiohttp-apigami`` reads the schemas attached to handlers (``@request_schema``,
``@querystring_schema``…), validates each request and generates the OpenAPI
document from them. Every validation failure becomes a 422 problem+json naming
the fields; a body that is not JSON is a 400; a JSON endpoint called with another
media type is a 415. Unknown fields are rejected (marshmallow's default).

A JSON body is read and parsed once, here (``planboard.api.json.parse_body``: orjson,
depth-bounded, no lone surrogates), and the schemas load that parsed value.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NoReturn

import marshmallow as m
from aiohttp import web
from aiohttp_apigami import setup_aiohttp_apispec
from aiohttp_apigami.constants import (
    APISPEC_PARSER,
    APISPEC_VALIDATED_DATA_NAME,
    SCHEMAS_ATTR,
    SWAGGER_DICT,
)
from webargs import core
from webargs.aiohttpparser import AIOHTTPParser

from planboard import __version__
from planboard.api.json import parse_body
from planboard.api.openapi import finalize
from planboard.domain.errors import ValidationFailed

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
DATA_KEY = "data"
JSON_TYPES = ("application/json", "application/merge-patch+json")


def _flatten(messages: Any, prefix: str = "") -> list[tuple[str, str]]:
    """``{"json": {"a": {"b": ["bad"]}}}`` → ``[("a.b", "bad")]`` (location level dropped)."""
    if isinstance(messages, list):
        if all(isinstance(item, str) for item in messages):
            return [(prefix or "body", item) for item in messages]
        out: list[tuple[str, str]] = []
        for item in messages:
            out += _flatten(item, prefix)
        return out
    if isinstance(messages, Mapping):
        pairs: list[tuple[str, str]] = []
        for key, value in messages.items():
            name = "body" if key == "_schema" else str(key)
            pairs += _flatten(value, f"{prefix}.{name}" if prefix else name)
        return pairs
    return [(prefix or "body", str(messages))]


LOCATIONS = ("json", "querystring", "query", "match_info", "headers", "form")


def error_callback(
    error: m.ValidationError,
    req: web.Request,
    schema: m.Schema,
    *args: Any,
    error_status_code: int | None = None,
    error_headers: Mapping[str, str] | None = None,
) -> NoReturn:
    messages = error.messages
    if isinstance(messages, Mapping) and set(messages) <= set(LOCATIONS):
        errors = [pair for value in messages.values() for pair in _flatten(value)]
    else:
        errors = _flatten(messages)
    raise ValidationFailed(errors, "the request has invalid fields")


#: The parsed JSON body of the request (set by the validation middleware).
json_body_key = web.RequestKey("json_body", object)


class BodyParser(AIOHTTPParser):
    """webargs' aiohttp parser, loading the body the middleware parsed (never twice)."""

    async def load_json(self, req: web.Request, schema: m.Schema) -> Any:
        if json_body_key in req:
            return req[json_body_key]
        return core.missing


#: Scalars: a parsed empty query string made only of these can be shared by requests.
_IMMUTABLE = (str, int, float, bool, type(None), tuple, frozenset)


@web.middleware
async def validation_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Validate what the handler's schemas (``@request_schema``, ``@querystring_schema``…)
    describe, as aiohttp-apigami's middleware does, in one layer with the media type check:
    a JSON endpoint needs a JSON body (415 otherwise, 400 for malformed JSON).

    An empty query string parses to the schema's defaults on every request, so that result
    is parsed once per schema and shared (only when every value is immutable): a cached
    read without parameters skips marshmallow altogether."""
    schemas = getattr(request.match_info.handler, SCHEMAS_ATTR, None)
    if not schemas:
        return await handler(request)
    if request.method in ("POST", "PUT", "PATCH") and any(s.location == "json" for s in schemas):
        if request.content_type not in JSON_TYPES:
            raise web.HTTPUnsupportedMediaType(
                text=f"send the body as application/json (got {request.content_type or 'nothing'})"
            )
        request[json_body_key] = parse_body(await request.read())
    result: Any = None
    for schema in schemas:
        data = await _parse(request, schema)
        if schema.put_into:
            request[schema.put_into] = data
        elif result is None:
            result = data
    request[request.app[APISPEC_VALIDATED_DATA_NAME]] = {} if result is None else result
    return await handler(request)


_empty_queries: dict[int, tuple[Any, dict[str, Any]]] = {}  # id(schema) -> (schema, parsed)


async def _parse(request: web.Request, schema: Any) -> Any:
    empty_query = schema.location == "querystring" and not request.query_string
    if empty_query:
        known = _empty_queries.get(id(schema))
        if known is not None and known[0] is schema:
            return dict(known[1])
    data = await request.app[APISPEC_PARSER].parse(
        argmap=schema.schema, req=request, location=schema.location, unknown=None
    )
    if (
        empty_query
        and isinstance(data, dict)
        and all(isinstance(v, _IMMUTABLE) for v in data.values())
    ):
        _empty_queries[id(schema)] = (schema, dict(data))
    return data


def validated(request: web.Request) -> dict[str, Any]:
    """The validated JSON body of the current request (``@request_schema``)."""
    data: dict[str, Any] = request.get(DATA_KEY) or {}
    return data


def query_of(request: web.Request) -> dict[str, Any]:
    """The validated query string (``@querystring_schema`` stores it under "querystring")."""
    data: dict[str, Any] = request.get("querystring") or {}
    return data


def setup_validation(app: web.Application) -> None:
    """Validation, and the OpenAPI document built from the same schemas (after every route
    is added: ``in_place``), finished by :func:`planboard.api.openapi.finalize`."""
    setup_aiohttp_apispec(
        app,
        title="Planboard API",
        version=__version__,
        url="/api/openapi.json",
        swagger_path="/api/docs",
        static_path="/api/docs/static",
        openapi_version="3.0.3",
        request_data_name=DATA_KEY,
        error_callback=error_callback,
        in_place=True,
        info={"description": "Project planning: workspaces, projects, tasks, dependencies."},
    )
    app[APISPEC_PARSER] = BodyParser(error_handler=error_callback)
    app[SWAGGER_DICT] = finalize(app[SWAGGER_DICT], app)


def openapi_document(app: web.Application) -> dict[str, Any]:
    """The app's finished OpenAPI document (what ``/api/openapi.json`` serves)."""
    spec: dict[str, Any] = app[SWAGGER_DICT]
    return spec


MIDDLEWARES = (validation_middleware,)
