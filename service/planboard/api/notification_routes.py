"""``/api/v1/notifications`` (in-app) and the caller's notification preferences."""

from __future__ import annotations

import marshmallow as m
from aiohttp import web
from aiohttp_apigami import docs, querystring_schema, request_schema, response_schema
from marshmallow import fields, validate

from planboard.api.authn import caller_of
from planboard.api.http import pager_of
from planboard.api.json import json_response
from planboard.api.planning_schemas import StrictBool
from planboard.api.schemas import Strict
from planboard.api.validation import query_of, validated
from planboard.services import notifications as service
from planboard.services.notifications import KINDS
from planboard.store.document import Document
from planboard.typedefs import db_key

routes = web.RouteTableDef()
BEARER: list[dict[str, list[str]]] = [{"bearer": []}]


class NotificationQuery(Strict):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.String(validate=validate.Length(max=500))
    unread = fields.Boolean(load_default=False)


class NotificationOut(m.Schema):
    id = fields.String(required=True)
    kind = fields.String(validate=validate.OneOf(KINDS))
    title = fields.String()
    body = fields.String()
    workspace_id = fields.String(allow_none=True)
    project_id = fields.String(allow_none=True)
    task_id = fields.String(allow_none=True)
    actor_id = fields.String(allow_none=True)
    read = fields.Boolean()
    created_at = fields.DateTime()


class NotificationPageOut(m.Schema):
    items = fields.List(fields.Nested(NotificationOut))
    next_cursor = fields.String(allow_none=True)
    unread_count = fields.Integer()


class ChannelPrefs(Strict):
    in_app = StrictBool()  # only true / false (0.0 is not a boolean)
    email = StrictBool()


class PreferencesBody(Strict):
    assignment = fields.Nested(ChannelPrefs)
    mention = fields.Nested(ChannelPrefs)
    status_change = fields.Nested(ChannelPrefs)
    due_soon = fields.Nested(ChannelPrefs)
    task_ready = fields.Nested(ChannelPrefs)
    slack_zero = fields.Nested(ChannelPrefs)


def _out(doc: Document) -> dict[str, object]:
    return {
        "id": doc["_id"],
        "kind": doc["kind"],
        "title": doc["title"],
        "body": doc["body"],
        "workspace_id": doc.get("workspace_id"),
        "project_id": doc.get("project_id"),
        "task_id": doc.get("task_id"),
        "actor_id": doc.get("actor_id"),
        "read": bool(doc.get("read")),
        "created_at": doc.get("created_at"),
    }


@docs(tags=["notifications"], summary="Your notifications, newest first", security=BEARER)
@querystring_schema(NotificationQuery)
@response_schema(NotificationPageOut, 200)
@routes.get("/api/v1/notifications")
async def list_notifications(request: web.Request) -> web.Response:
    caller = caller_of(request)
    caller.require_scope("notifications:read")
    query = query_of(request)
    pager = pager_of(request, "notifications", caller.user_id, query)
    found, more, unread = await service.inbox_page(
        request.app[db_key],
        caller.user_id,
        unread_only=query["unread"],
        after=pager.after(query.get("cursor")),
        limit=query["limit"],
    )
    return json_response(
        {
            "items": [_out(d) for d in found],
            "next_cursor": pager.next(found[-1] if found else None, "seq", more),
            "unread_count": unread,
        }
    )


@docs(tags=["notifications"], summary="Mark one notification read", security=BEARER)
@routes.post("/api/v1/notifications/{notification_id}/read")
async def mark_read(request: web.Request) -> web.Response:
    caller = caller_of(request)
    caller.require_scope("notifications:write")
    await service.mark_read(
        request.app[db_key], caller.user_id, request.match_info["notification_id"]
    )
    return web.Response(status=204)


@docs(tags=["notifications"], summary="Mark all your notifications read", security=BEARER)
@routes.post("/api/v1/notifications/read-all")
async def mark_all_read(request: web.Request) -> web.Response:
    caller = caller_of(request)
    caller.require_scope("notifications:write")
    count = await service.mark_all_read(request.app[db_key], caller.user_id)
    return json_response({"marked": count})


@docs(
    tags=["notifications"],
    summary="Your notification preferences (in-app and mail per kind)",
    security=BEARER,
)
@response_schema(PreferencesBody, 200)
@routes.get("/api/v1/me/notification-preferences")
async def get_preferences(request: web.Request) -> web.Response:
    caller = caller_of(request)
    caller.require_scope("notifications:read")
    return json_response(await service.preferences(request.app[db_key], caller.user_id))


@docs(tags=["notifications"], summary="Change notification preferences (partial)", security=BEARER)
@request_schema(PreferencesBody)
@response_schema(PreferencesBody, 200)
@routes.patch("/api/v1/me/notification-preferences")
async def patch_preferences(request: web.Request) -> web.Response:
    caller = caller_of(request)
    caller.require_scope("notifications:write")
    changed = await service.change_preferences(
        request.app[db_key], caller.user_id, validated(request)
    )
    return json_response(changed)
