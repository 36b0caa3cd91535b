"""``GET /api/v1/search``: tasks, projects and comments of the caller's workspaces."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import marshmallow as m
from aiohttp import web
from aiohttp_apigami import docs, querystring_schema, response_schema
from marshmallow import fields, validate

from planboard.api.authn import caller_of
from planboard.api.http import cache_of, pager_of
from planboard.api.json import json_response
from planboard.api.pagination import Pager
from planboard.api.planning_schemas import MAX_LABEL, TASK_STATUSES, CommaList
from planboard.api.schemas import Strict, Trimmed
from planboard.api.validation import query_of
from planboard.domain.errors import ValidationFailed
from planboard.services import search as service
from planboard.services import search_cache
from planboard.services.projects import PROJECT_STATUSES
from planboard.typedefs import db_key, redis_key, settings_key

routes = web.RouteTableDef()
BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
ID = validate.Length(min=1, max=64)


class SearchQuery(Strict):
    q = Trimmed(required=True, validate=validate.Length(min=1, max=200))
    workspace_id = fields.String(validate=ID, metadata={"description": "only this workspace"})
    project_id = fields.String(validate=ID)
    status = CommaList(
        fields.String(validate=validate.OneOf(sorted({*TASK_STATUSES, *PROJECT_STATUSES})))
    )
    assignee = fields.String(validate=ID, metadata={"description": "a user id, or `me`"})
    label = CommaList(Trimmed(validate=validate.Length(min=1, max=MAX_LABEL)))
    type = CommaList(fields.String(validate=validate.OneOf(service.TYPES)))
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
    cursor = fields.String(validate=validate.Length(min=1, max=500))


class SearchHitOut(m.Schema):
    type = fields.String(required=True, metadata={"description": "task, project or comment"})
    id = fields.String(required=True)
    workspace_id = fields.String()
    project_id = fields.String()
    task_id = fields.String(allow_none=True)
    key = fields.String(allow_none=True, metadata={"description": "PB-12 / PB; a comment's task"})
    title = fields.String()
    snippet = fields.String()
    status = fields.String(allow_none=True)
    score = fields.Integer()
    updated_at = fields.String(allow_none=True)


class SearchOut(m.Schema):
    items = fields.List(fields.Nested(SearchHitOut))
    next_cursor = fields.String(allow_none=True)


def hit_out(hit: service.Hit) -> dict[str, Any]:
    e = hit.entry
    updated = int(str(e.get("updated_ms") or 0))
    return {
        "type": e["type"],
        "id": e["entity_id"],
        "workspace_id": e["workspace_id"],
        "project_id": e.get("project_id"),
        "task_id": e.get("task_id"),
        "key": e.get("key") or e.get("task_key"),
        "title": e.get("title") or "",
        "snippet": e.get("snippet") or "",
        "status": e.get("status"),
        "score": hit.score,
        "updated_at": (
            datetime.fromtimestamp(updated / 1000, UTC).isoformat().replace("+00:00", "Z")
            if updated
            else None
        ),
    }


def _after(pager: Pager, cursor: str | None) -> tuple[int, int, str] | None:
    """A hit's position: (rank, sort value) in ``v``, the hit's id in ``id``."""
    position = pager.after(cursor)
    if position is None:
        return None
    value, last_id = position
    if not isinstance(value, list) or len(value) != 2 or not all(isinstance(v, int) for v in value):
        raise ValidationFailed([("cursor", "invalid cursor")], "invalid cursor")
    return (value[0], value[1], last_id)


@docs(
    tags=["search"],
    summary="Search tasks, projects and comments of your workspaces (relevance order)",
    description=(
        "Every word of `q` must start a word of the title, key, description or comment "
        "body. Needs `tasks:read` / `projects:read` / `comments:read` per result type."
    ),
    security=BEARER,
)
@querystring_schema(SearchQuery)
@response_schema(SearchOut, 200)
@routes.get("/api/v1/search")
async def search(request: web.Request) -> web.Response:
    query = query_of(request)
    caller = caller_of(request)
    pager = pager_of(request, "search", caller.user_id, query)
    assignee = query.get("assignee")
    spec = service.SearchQuery(
        q=query["q"],
        workspace_id=query.get("workspace_id"),
        project_id=query.get("project_id"),
        statuses=tuple(query.get("status") or ()),
        assignee=caller.user_id if assignee == "me" else assignee,
        labels=tuple(query.get("label") or ()),
        types=tuple(dict.fromkeys(query.get("type") or ())),
    )
    db = request.app[db_key]
    after = _after(pager, query.get("cursor"))
    workspace_ids = await service.workspaces_of(db, caller, spec.workspace_id, spec.project_id)

    async def compute() -> dict[str, Any]:
        hits, more = await service.search(
            db, caller, spec, after=after, limit=query["limit"], workspace_ids=workspace_ids
        )
        last = hits[-1].position if more and hits else None
        next_cursor = pager.at(list(last[:2]), last[2]) if last else None
        return {"items": [hit_out(h) for h in hits], "next_cursor": next_cursor}

    # Answers are per caller (cursors are bound to the caller) and scopes (result types),
    # and keyed by the searched workspaces' index generations (services/search_cache.py).
    question = {
        "user": caller.user_id,
        "scopes": None if caller.scopes is None else sorted(caller.scopes),
        "spec": dataclasses.asdict(spec),
        "after": after,
        "limit": query["limit"],
    }
    if request.app[settings_key].cache_enabled:
        body = await search_cache.answer(
            request.app[redis_key], workspace_ids, question, compute, cache_of(request).metrics
        )
    else:  # PLANBOARD_CACHE_ENABLED=false: every cache off
        cache_of(request).metrics.requests.labels("search", "off").inc()
        body = await compute()
    return json_response(body)
