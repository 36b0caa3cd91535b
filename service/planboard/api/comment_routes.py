"""Comments: ``/api/v1/tasks/{task}/comments`` and ``/api/v1/comments/{comment_id}``."""

from __future__ import annotations

from aiohttp import web
from aiohttp_apigami import docs, querystring_schema, request_schema, response_schema

from planboard.api import planning_schemas as ps
from planboard.api.authn import caller_of
from planboard.api.conditional import expected_version
from planboard.api.http import BEARER, actor_of, context_of, pager_of
from planboard.api.json import json_response
from planboard.api.planning_serializers import comment_out
from planboard.api.validation import query_of, validated
from planboard.domain.access import Role
from planboard.services import comments as service
from planboard.services import tasks as task_service
from planboard.typedefs import db_key

routes = web.RouteTableDef()


@docs(
    tags=["comments"],
    summary="Comment on a task (members and above); @mentions of members are resolved",
    security=BEARER,
)
@request_schema(ps.CommentBody)
@response_schema(ps.CommentOut, 201)
@querystring_schema(ps.NoQuery)
@routes.post("/api/v1/tasks/{task}/comments")
async def create_comment(request: web.Request) -> web.Response:
    task, project, access = await task_service.task_for(
        request.app[db_key],
        caller_of(request),
        request.match_info["task"],
        scope="comments:write",
        role=Role.MEMBER,
    )
    comment = await service.create_comment(
        context_of(request),
        task,
        project,
        actor_of(request, access),
        validated(request)["body"],
    )
    return json_response(
        comment_out(comment),
        status=201,
        headers={"Location": f"/api/v1/comments/{comment['_id']}"},
    )


@docs(tags=["comments"], summary="Comments of a task, oldest first", security=BEARER)
@querystring_schema(ps.PageParams)
@response_schema(ps.CommentListOut, 200)
@routes.get("/api/v1/tasks/{task}/comments")
async def list_comments(request: web.Request) -> web.Response:
    task, _, _ = await task_service.task_for(
        request.app[db_key], caller_of(request), request.match_info["task"], scope="comments:read"
    )
    query = query_of(request)
    pager = pager_of(request, "comments", task["_id"])
    found, more = await service.list_comments(
        request.app[db_key],
        task,
        after=pager.after(query.get("cursor")),
        limit=query["limit"],
    )
    return json_response(
        {
            "items": [comment_out(c) for c in found],
            "next_cursor": pager.next(found[-1] if found else None, "_id", more),
        }
    )


@docs(
    tags=["comments"],
    summary="Edit a comment (its author or an admin); If-Match or version → 412 when stale",
    security=BEARER,
)
@request_schema(ps.CommentPatch)
@response_schema(ps.CommentOut, 200)
@querystring_schema(ps.NoQuery)
@routes.patch("/api/v1/comments/{comment_id}")
async def update_comment(request: web.Request) -> web.Response:
    comment, task, project, access = await service.comment_for(
        request.app[db_key],
        caller_of(request),
        request.match_info["comment_id"],
        scope="comments:write",
        role=Role.MEMBER,
    )
    service.require_author_or_admin(comment, access)
    body = dict(validated(request))
    expected = expected_version(request, str(comment["_id"]), body.pop("version", None))
    updated = await service.update_comment(
        context_of(request),
        comment,
        task,
        project,
        actor_of(request, access),
        body["body"],
        expected,
    )
    return json_response(comment_out(updated))


@docs(tags=["comments"], summary="Delete a comment (its author or an admin)", security=BEARER)
@querystring_schema(ps.NoQuery)
@routes.delete("/api/v1/comments/{comment_id}")
async def delete_comment(request: web.Request) -> web.Response:
    comment, task, project, access = await service.comment_for(
        request.app[db_key],
        caller_of(request),
        request.match_info["comment_id"],
        scope="comments:write",
        role=Role.MEMBER,
    )
    service.require_author_or_admin(comment, access)
    await service.delete_comment(
        context_of(request),
        comment,
        task,
        project,
        actor_of(request, access),
    )
    return web.Response(status=204)
