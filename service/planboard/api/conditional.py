"""Conditional requests: weak ETags from a resource's id and version, ``If-None-Match``
(304) on reads, ``If-Match`` (412 when stale) on writes.

An ETag looks like ``W/"<version>-<id digest>-<state digest>"``. The state digest
covers what a representation derives from other resources (a task's ``ready`` flag
changes when a blocker is done), so a 304 is never served for a changed body, while
``If-Match`` compares only the id and version: a blocker's progress never makes a
write to this task fail.
"""

from __future__ import annotations

import re

from aiohttp import web

from planboard.domain.errors import ValidationFailed, VersionMismatch
from planboard.services.representations import digest

_TAG = re.compile(r'(?:W/)?"(?P<version>\d{1,10})-(?P<ident>[0-9a-f]{8})-[0-9a-f]{8}"')


def _tags(header: str) -> list[str]:
    return [part.strip() for part in header.split(",") if part.strip()]


def _opaque(tag: str) -> str:
    return tag.removeprefix("W/")


def not_modified(request: web.Request, etag: str) -> web.Response | None:
    """A 304 when ``If-None-Match`` names ``etag`` (weak comparison) or is ``*``."""
    header = request.headers.get("If-None-Match")
    if header is None:
        return None
    tags = _tags(header)
    if "*" in tags or _opaque(etag) in {_opaque(tag) for tag in tags}:
        return web.Response(status=304, headers={"ETag": etag})
    return None


def expected_version(
    request: web.Request, resource_id: str, body_version: int | None = None
) -> int | None:
    """The version a write is conditional on: ``If-Match`` and/or the body's ``version``.

    ``If-Match: *`` only asks that the resource exists. A tag of another resource, or a
    header and a body that disagree, can never match: 412 at once.
    """
    header = request.headers.get("If-Match")
    expected = body_version
    if header is not None:
        tags = _tags(header)
        if len(header) > 1000 or not tags:
            raise ValidationFailed([("If-Match", "an ETag from a previous response, or *")])
        if "*" not in tags:
            ident = digest(resource_id.encode())
            versions = [
                int(match["version"])
                for tag in tags
                if (match := _TAG.fullmatch(tag)) is not None and match["ident"] == ident
            ]
            if not versions:
                raise VersionMismatch("If-Match names no current version of this resource")
            if expected is not None and expected not in versions:
                raise VersionMismatch("If-Match and the body's version disagree")
            expected = expected if expected is not None else versions[0]
    return expected
