"""``Idempotency-Key`` on POST: a retried request returns the first result, creates nothing twice.

- Scope: the key belongs to the caller (user id) + method + path; other callers' keys
  never collide with yours. Anonymous requests (``/auth/*``) are not covered.
- The first request claims the key (a ``running`` record, unique ``_id``) before its
  handler runs; a concurrent duplicate meanwhile gets 409 with ``Retry-After``.
- A successful (2xx) response is stored with its status, the headers that matter and
  its body for 24 h; a retry with the same body gets it back with
  ``Idempotent-Replayed: true``. The same key with a different body (or query) is a 422.
- A failed request (4xx, 5xx, exception) releases the key: fix the request and retry.
- Streamed uploads (``multipart/form-data``) are not covered: hashing the body would mean
  reading it whole; the header is ignored there.
- Responses that carry a credential shown only once (``token``, ``secret``...) are
  stored without their body; a retry is answered 409 instead of printing it again.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from aiohttp import web

from planboard.api.principal import principal_key
from planboard.domain.errors import Conflict, ValidationFailed
from planboard.services import idempotency as records
from planboard.typedefs import db_key

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

HEADER = records.HEADER
REPLAYED = "Idempotent-Replayed"
KEY_RE = re.compile(r"^[\x20-\x7e]{1,200}$")
KEPT_HEADERS = ("Content-Type", "Location", "ETag", "Content-Disposition")
SECRET_FIELDS = frozenset({"token", "secret", "access_token", "refresh_token", "password"})


def _applies(request: web.Request) -> bool:
    path = request.path
    return (
        request.method == "POST"
        and path.startswith("/api/v1/")
        and not path.startswith("/api/v1/auth/")
        and HEADER in request.headers
        and request.get(principal_key) is not None
        and not request.content_type.startswith("multipart/")
    )


async def _request_hash(request: web.Request) -> str:
    raw = await request.read()
    body = raw
    if request.content_type in ("application/json", "application/merge-patch+json"):
        try:
            body = orjson.dumps(orjson.loads(raw), option=orjson.OPT_SORT_KEYS)
        except orjson.JSONDecodeError:
            body = raw
    query = orjson.dumps(sorted(request.query.items()))
    digest = hashlib.sha256()
    for part in (request.content_type.encode(), query, body):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def _text_of(response: web.StreamResponse) -> str | None:
    """The body of a buffered response as text (stored as a string: the dev server cannot
    ``$set`` binary values); None for streamed or non-UTF-8 bodies, which are not stored."""
    body = response.body if isinstance(response, web.Response) else None
    if not isinstance(body, bytes):
        return None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _holds_secret(body: str, content_type: str) -> bool:
    if content_type != "application/json":
        return False
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(parsed, dict) and bool(SECRET_FIELDS & set(parsed))


def _replay(record: Mapping[str, Any]) -> web.Response:
    response: Mapping[str, Any] = record["response"]
    if response.get("withheld"):
        raise Conflict(
            "this request was already processed; its response held a credential that is "
            "shown only once, so it is not repeated"
        )
    headers = {str(k): str(v) for k, v in dict(response["headers"]).items()}
    headers[REPLAYED] = "true"
    content_type = headers.pop("Content-Type", "application/json")
    body = response["body"]
    return web.Response(
        status=int(response["status"]),
        body=str(body).encode("utf-8"),
        headers={**headers, "Content-Type": content_type},
    )


@web.middleware
async def idempotency_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not _applies(request):
        return await handler(request)
    key = request.headers[HEADER]
    if not KEY_RE.match(key) or not key.strip():
        raise ValidationFailed([(HEADER, "1 to 200 printable ASCII characters")])
    principal = request[principal_key]
    scope = f"{principal.user_id}\x00{request.method}\x00{request.path}\x00{key}"
    record_id = hashlib.sha256(scope.encode()).hexdigest()
    request_hash = await _request_hash(request)
    db = request.app[db_key]
    claimed = await records.claim(
        db,
        record_id,
        request_hash=request_hash,
        user_id=principal.user_id,
        method=request.method,
        path=request.path,
    )
    if claimed.running:
        raise web.HTTPConflict(
            text="a request with this Idempotency-Key is still in progress; retry shortly",
            headers={"Retry-After": "1"},
        )
    if claimed.replay is not None:
        return _replay(claimed.replay)
    try:
        response = await handler(request)
    except BaseException:
        await records.release(db, claimed)
        raise
    text = _text_of(response)
    if not 200 <= response.status < 300 or text is None:
        await records.release(db, claimed)
        return response
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip()
    withheld = _holds_secret(text, content_type)
    await records.complete(
        db,
        claimed,
        {
            "status": response.status,
            "headers": {h: response.headers[h] for h in KEPT_HEADERS if h in response.headers},
            "body": "" if withheld else text,
            "withheld": withheld,
        },
    )
    return response
