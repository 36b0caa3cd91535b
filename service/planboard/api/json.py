"""JSON in and out: request bodies parsed with orjson; responses with RFC 3339 UTC
times ending in ``Z`` (the one encoder, domain/encoding.py)."""

from __future__ import annotations

import json
from typing import Any

import orjson
from aiohttp import web

from planboard.domain.encoding import dumps
from planboard.domain.errors import ValidationFailed


def json_response(
    data: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=dumps(data), status=status, content_type="application/json", headers=headers
    )


#: How deep a request body may nest (orjson's own bound, enforced while it parses).
MAX_JSON_DEPTH = 1024


def parse_body(raw: bytes) -> Any:
    """A JSON request body, parsed once with orjson: strict UTF-8 (RFC 8259; a ``charset``
    parameter is ignored), at most ``MAX_JSON_DEPTH`` levels deep, no NaN or infinities,
    and no unpaired UTF-16 surrogate escapes (``"\\ud800"``), which no UTF-8 store can hold.

    A body that is not such JSON is a 400; one whose only fault is a lone surrogate is a
    422 naming the fields that hold one (the parse stops at the first fault, so those
    are looked for with the standard library's parser, on this error path only)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "surrogate" in exc.msg:
            fields = _surrogate_fields(raw)
            if fields:
                raise ValidationFailed(
                    [(name, SURROGATE_MESSAGE) for name in fields],
                    "the request has invalid fields",
                ) from None
        if "depth" in exc.msg:
            detail = f"the request body nests deeper than {MAX_JSON_DEPTH} levels"
        else:
            detail = "the request body is not valid JSON"
        raise web.HTTPBadRequest(text=detail) from None


SURROGATE_MESSAGE = "must not contain unpaired UTF-16 surrogates (\\ud800-\\udfff)"


def _surrogate_fields(raw: bytes) -> list[str]:
    """Dotted names (``tasks.3.title``) of the strings and keys holding a lone surrogate."""
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):  # not JSON anyway, or too deep for this parser
        return []
    found: list[str] = []
    stack: list[tuple[str, Any]] = [("", value)]
    while stack and len(found) < 20:  # iterative: the depth is the client's
        path, item = stack.pop()
        if isinstance(item, str):
            if not _encodable(item):
                found.append(path or "body")
        elif isinstance(item, dict):
            for key, child in item.items():
                name = key if _encodable(key) else key.encode("utf-8", "backslashreplace").decode()
                child_path = f"{path}.{name}" if path else name
                if not _encodable(key):
                    found.append(child_path)
                stack.append((child_path, child))
        elif isinstance(item, list):
            stack.extend((f"{path}.{i}" if path else str(i), c) for i, c in enumerate(item))
    return sorted(set(found))


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
