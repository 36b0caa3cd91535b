"""What every route module shares: who acts, a list's cursors, the read-through cache.

Handlers parse, authorize, call a service and serialize; the pieces of that they all need
live here, not in one of them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from planboard.api.authn import caller_of
from planboard.api.middleware import request_id_of
from planboard.api.pagination import CursorCodec, Pager, purpose_of
from planboard.domain.errors import NotFound
from planboard.services import cache
from planboard.services.access import Access, authorize
from planboard.services.activity import Actor
from planboard.services.context import ServiceContext
from planboard.services.projects import check_id
from planboard.typedefs import db_key, services_key, settings_key

__all__ = [
    "BEARER",
    "actor_of",
    "cache_of",
    "cached_read",
    "codec_of",
    "context_of",
    "pager_of",
    "purpose_of",
]

BEARER: list[dict[str, list[str]]] = [{"bearer": []}]


def actor_of(request: web.Request, access: Access) -> Actor:
    """Who acts, for events and the activity log."""
    return Actor(access.user_id, request_id_of(request))


def codec_of(request: web.Request) -> CursorCodec:
    return CursorCodec(request.app[settings_key].secret_key)


def pager_of(
    request: web.Request, kind: str, owner: str, query: Mapping[str, object] | None = None
) -> Pager:
    """The cursors of one list (``kind`` of ``owner``, bound to the filters in ``query``)."""
    return Pager(codec_of(request), purpose_of(kind, owner, query or {}))


# --------------------------------------------------------------------------- services


def context_of(request: web.Request) -> ServiceContext:
    """The app's service context (client, db, settings, read cache), built once per app."""
    return request.app[services_key]


def cache_of(request: web.Request) -> cache.ReadThrough:
    """The app's read-through cache (services/cache.py)."""
    reads = request.app[services_key].cache
    assert reads is not None  # the API's context always has one (app.services_ctx)
    return reads


async def cached_read(
    request: web.Request,
    read: Callable[..., Awaitable[dict[str, object] | None]],
    *,
    scope: str = "projects:read",
) -> dict[str, object]:
    """A project-keyed cached read (services/hot_reads.py) with the checks of
    ``project_for``: scope, id, 404, then membership (near cache or MongoDB, never the
    value's own cache: services/access.py)."""
    caller = caller_of(request)
    caller.require_scope(scope)
    project_id = check_id(request.match_info["project_id"], "project_id")
    db = request.app[db_key]
    value = await read(cache_of(request), db, project_id)
    if value is None:
        raise NotFound("project not found")
    await authorize(db, caller, str(value["ws"]), scope=scope, what="project")
    return value
