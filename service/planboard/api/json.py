"""JSON in and out: request bodies parsed with orjson; responses with RFC 3339 UTC
times ending in ``Z`` (the one encoder, domain/encoding.py)."""

from __future__ import annotations

import json
import math
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
    parameter is ignored), at most ``MAX_JSON_DEPTH`` levels deep, only finite numbers,
    and no unpaired UTF-16 surrogate escapes (``"\\ud800"``), which no UTF-8 store can hold.

    A body that is not such JSON is a 400; one whose only faults are lone surrogates or
    numbers that are not finite (``1e999``, and the ``NaN``/``Infinity`` tokens that some
    encoders write) is a 422 naming the fields that hold them: the parse stops at the first
    fault, so those are looked for with the standard library's parser, on this error path
    only."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth" in exc.msg:
            raise web.HTTPBadRequest(
                text=f"the request body nests deeper than {MAX_JSON_DEPTH} levels"
            ) from None
        problems = _field_problems(raw)
        if problems:
            raise ValidationFailed(problems, "the request has invalid fields") from None
        raise web.HTTPBadRequest(text="the request body is not valid JSON") from None


SURROGATE_MESSAGE = "must not contain unpaired UTF-16 surrogates (\\ud800-\\udfff)"
NOT_FINITE_MESSAGE = "must be a finite number"
MAX_NAMED_FIELDS = 20


def _field_problems(raw: bytes) -> list[tuple[str, str]]:
    """(dotted name, message) of the strings and keys holding a lone surrogate and of the
    numbers that are not finite, or [] when the body is not JSON even to a lenient parser."""
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):  # not JSON anyway, or too deep for this parser
        return []
    found: set[tuple[str, str]] = set()
    stack: list[tuple[str, Any]] = [("", value)]
    while stack and len(found) < MAX_NAMED_FIELDS:  # iterative: the depth is the client's
        path, item = stack.pop()
        if isinstance(item, str):
            if not _encodable(item):
                found.add((path or "body", SURROGATE_MESSAGE))
        elif isinstance(item, float):
            if not math.isfinite(item):
                found.add((path or "body", NOT_FINITE_MESSAGE))
        elif isinstance(item, dict):
            for key, child in item.items():
                name = key if _encodable(key) else key.encode("utf-8", "backslashreplace").decode()
                child_path = f"{path}.{name}" if path else name
                if not _encodable(key):
                    found.add((child_path, SURROGATE_MESSAGE))
                stack.append((child_path, child))
        elif isinstance(item, list):
            stack.extend((f"{path}.{i}" if path else str(i), c) for i, c in enumerate(item))
    return sorted(found)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
