"""``/api/v1/workspaces`` with members and invitations."""

from __future__ import annotations

from aiohttp import web
from aiohttp_apigami import docs, querystring_schema, request_schema, response_schema

from planboard.api import planning_schemas as ps
from planboard.api import schemas as s
from planboard.api.authn import caller_of, principal_of
from planboard.api.http import context_of, pager_of
from planboard.api.json import json_response
from planboard.api.middleware import request_id_of
from planboard.api.serializers import invitation_out, workspace_out
from planboard.api.validation import query_of, validated
from planboard.domain.access import Role
from planboard.services import near_cache
from planboard.services import workspaces as service
from planboard.services.access import authorize
from planboard.typedefs import (
    db_key,
    near_cache_key,
    redis_key,
    settings_key,
)

routes = web.RouteTableDef()


async def members_changed(request: web.Request, workspace_id: str) -> None:
    """After a membership write: every process's near cache forgets the workspace's
    memberships (services/near_cache.py), this one before the response leaves."""
    await near_cache.announce(
        request.app[redis_key], request.app[near_cache_key], (near_cache.members_tag(workspace_id),)
    )


BEARER: list[dict[str, list[str]]] = [{"bearer": []}]


def _workspace_id(request: web.Request) -> str:
    return request.match_info["workspace_id"]


@docs(tags=["workspaces"], summary="Create a workspace; you become its owner", security=BEARER)
@request_schema(s.WorkspaceBody)
@response_schema(s.WorkspaceOut, 201)
@routes.post("/api/v1/workspaces")
async def create_workspace(request: web.Request) -> web.Response:
    caller = caller_of(request)
    caller.require_scope("workspaces:write")
    workspace = await service.create_workspace(
        request.app[db_key],
        name=validated(request)["name"],
        owner_id=caller.user_id,
        request_id=request_id_of(request),
    )
    return json_response(
        workspace_out(workspace, Role.OWNER.value),
        status=201,
        headers={"Location": f"/api/v1/workspaces/{workspace['_id']}"},
    )


@docs(tags=["workspaces"], summary="Your workspaces", security=BEARER)
@querystring_schema(s.PageQuery)
@response_schema(s.WorkspaceListOut, 200)
@routes.get("/api/v1/workspaces")
async def list_workspaces(request: web.Request) -> web.Response:
    caller = caller_of(request)
    caller.require_scope("workspaces:read")
    query = query_of(request)
    pager = pager_of(request, "workspaces", caller.user_id)
    position = pager.after(query.get("cursor"))
    after = None if position is None else position[1]
    found, last, more = await service.page_of_user(
        request.app[db_key], caller.user_id, after=after, limit=query["limit"]
    )
    items = [workspace_out(workspace, role) for workspace, role in found]
    return json_response({"items": items, "next_cursor": pager.next(last, "_id", more)})


@docs(tags=["workspaces"], summary="A workspace", security=BEARER)
@response_schema(s.WorkspaceOut, 200)
@routes.get("/api/v1/workspaces/{workspace_id}")
async def get_workspace(request: web.Request) -> web.Response:
    db = request.app[db_key]
    access = await authorize(
        db, caller_of(request), _workspace_id(request), scope="workspaces:read"
    )
    workspace = await service.workspace_of(db, access)
    return json_response(workspace_out(workspace, access.role.value))


@docs(
    tags=["workspaces"],
    summary="Rename a workspace or set its working calendar (admin)",
    security=BEARER,
)
@request_schema(ps.WorkspacePatch)
@response_schema(s.WorkspaceOut, 200)
@routes.patch("/api/v1/workspaces/{workspace_id}")
async def rename_workspace(request: web.Request) -> web.Response:
    db = request.app[db_key]
    access = await authorize(
        db, caller_of(request), _workspace_id(request), scope="workspaces:write", role=Role.ADMIN
    )
    workspace = await service.update_workspace(
        db, access, validated(request), request_id_of(request)
    )
    return json_response(workspace_out(workspace, access.role.value))


@docs(
    tags=["workspaces"], summary="Delete a workspace and everything in it (owner)", security=BEARER
)
@routes.delete("/api/v1/workspaces/{workspace_id}")
async def delete_workspace(request: web.Request) -> web.Response:
    db = request.app[db_key]
    access = await authorize(
        db, caller_of(request), _workspace_id(request), scope="workspaces:write", role=Role.OWNER
    )
    try:
        await service.delete_workspace(db, access, request_id_of(request))
    finally:
        await members_changed(request, access.workspace_id)
    return web.Response(status=204)


@docs(tags=["members"], summary="Members of a workspace", security=BEARER)
@response_schema(s.MemberListOut, 200)
@routes.get("/api/v1/workspaces/{workspace_id}/members")
async def list_members(request: web.Request) -> web.Response:
    db = request.app[db_key]
    access = await authorize(db, caller_of(request), _workspace_id(request), scope="members:read")
    return json_response({"items": await service.members_of(db, access)})


@docs(
    tags=["members"],
    summary="Change a member's role (admin; owners for admins and owners)",
    security=BEARER,
)
@request_schema(s.RoleBody)
@routes.patch("/api/v1/workspaces/{workspace_id}/members/{user_id}")
async def change_role(request: web.Request) -> web.Response:
    db = request.app[db_key]
    access = await authorize(
        db, caller_of(request), _workspace_id(request), scope="members:write", role=Role.ADMIN
    )
    try:
        await service.change_role(
            context_of(request),
            access,
            request.match_info["user_id"],
            Role(validated(request)["role"]),
            request_id_of(request),
        )
    finally:
        await members_changed(request, access.workspace_id)
    return web.Response(status=204)


@docs(tags=["members"], summary="Remove a member (admin), or leave (yourself)", security=BEARER)
@routes.delete("/api/v1/workspaces/{workspace_id}/members/{user_id}")
async def remove_member(request: web.Request) -> web.Response:
    db = request.app[db_key]
    user_id = request.match_info["user_id"]
    caller = caller_of(request)
    leaving = user_id == caller.user_id
    access = await authorize(
        db,
        caller,
        _workspace_id(request),
        scope="members:write",
        role=Role.VIEWER if leaving else Role.ADMIN,
    )
    try:
        await service.remove_member(context_of(request), access, user_id, request_id_of(request))
    finally:
        await members_changed(request, access.workspace_id)
    return web.Response(status=204)


@docs(tags=["members"], summary="Invite someone by email (admin)", security=BEARER)
@request_schema(s.InvitationBody)
@response_schema(s.InvitationOut, 201)
@routes.post("/api/v1/workspaces/{workspace_id}/invitations")
async def invite(request: web.Request) -> web.Response:
    db = request.app[db_key]
    access = await authorize(
        db, caller_of(request), _workspace_id(request), scope="members:write", role=Role.ADMIN
    )
    body = validated(request)
    invitation = await service.invite(
        db,
        request.app[settings_key],
        access,
        email=body["email"],
        role=Role(body["role"]),
        request_id=request_id_of(request),
    )
    return json_response(invitation_out(invitation), status=201)


@docs(tags=["members"], summary="Invitations of a workspace (admin)", security=BEARER)
@response_schema(s.InvitationListOut, 200)
@routes.get("/api/v1/workspaces/{workspace_id}/invitations")
async def list_invitations(request: web.Request) -> web.Response:
    db = request.app[db_key]
    access = await authorize(
        db, caller_of(request), _workspace_id(request), scope="members:read", role=Role.ADMIN
    )
    found = await service.invitations_of(db, access)
    return json_response({"items": [invitation_out(i) for i in found]})


@docs(tags=["members"], summary="Revoke a pending invitation (admin)", security=BEARER)
@routes.delete("/api/v1/workspaces/{workspace_id}/invitations/{invitation_id}")
async def revoke_invitation(request: web.Request) -> web.Response:
    db = request.app[db_key]
    access = await authorize(
        db, caller_of(request), _workspace_id(request), scope="members:write", role=Role.ADMIN
    )
    await service.revoke_invitation(db, access, request.match_info["invitation_id"])
    return web.Response(status=204)


@docs(tags=["members"], summary="Accept an invitation sent to your email address", security=BEARER)
@request_schema(s.TokenBody)
@response_schema(s.AcceptedInvitationOut, 200)
@routes.post("/api/v1/invitations/accept")
async def accept_invitation(request: web.Request) -> web.Response:
    principal = principal_of(request)
    result = await service.accept_invitation(
        request.app[db_key],
        token=validated(request)["token"],
        user_id=principal.user_id,
        request_id=request_id_of(request),
    )
    await members_changed(request, str(result["workspace_id"]))  # "not a member" is cached too
    return json_response(result)
