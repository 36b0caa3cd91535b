"""Tasks (``/api/v1/projects/{id}/tasks``, ``/api/v1/tasks/{task}``), bulk operations,
dependencies and the task's activity log. ``{task}`` is a task id or its key (PB-12)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp_apigami import docs, querystring_schema, request_schema, response_schema

from planboard.api import planning_schemas as ps
from planboard.api.authn import caller_of
from planboard.api.conditional import expected_version, not_modified
from planboard.api.http import (
    BEARER,
    actor_of,
    cache_of,
    cached_read,
    context_of,
    pager_of,
)
from planboard.api.json import json_response
from planboard.api.planning_serializers import activity_out
from planboard.api.validation import query_of, validated
from planboard.domain.access import Role
from planboard.domain.errors import NotFound
from planboard.services import activity as activity_service
from planboard.services import cache, hot_reads, representations, scheduling
from planboard.services import dependencies as dependency_service
from planboard.services import projects as project_service
from planboard.services import tasks as service
from planboard.services.access import Access, authorize
from planboard.services.representations import task_out
from planboard.store.documents import ProjectDoc, TaskDoc
from planboard.typedefs import db_key

routes = web.RouteTableDef()


async def _task(
    request: web.Request, scope: str, role: Role = Role.VIEWER
) -> tuple[TaskDoc, ProjectDoc, Access]:
    return await service.task_for(
        request.app[db_key], caller_of(request), request.match_info["task"], scope=scope, role=role
    )


async def _project(request: web.Request, scope: str, role: Role) -> tuple[ProjectDoc, Access]:
    return await project_service.project_for(
        request.app[db_key],
        caller_of(request),
        request.match_info["project_id"],
        scope=scope,
        role=role,
    )


def _task_answer(
    request: web.Request,
    value: dict[str, Any],
    *,
    status: int = 200,
    fields: list[str] | None = None,
) -> web.Response:
    """A task's representation (services/hot_reads.task_representation) as the answer:
    304 for a GET whose If-None-Match matches, sparse ``fields``, Location on 201."""
    etag = str(value["etag"])
    if status == 200 and request.method == "GET":
        cached = not_modified(request, etag)
        if cached is not None:
            return cached
    body: dict[str, Any] = value["body"]
    if fields:
        body = {name: v for name, v in body.items() if name in {"id", *fields}}
    headers = {"ETag": etag}
    if status == 201:
        headers["Location"] = f"/api/v1/tasks/{body['id']}"
    return json_response(body, status=status, headers=headers)


async def _task_response(
    request: web.Request, project: ProjectDoc, doc: TaskDoc, *, status: int = 200
) -> web.Response:
    value = await hot_reads.task_representation(request.app[db_key], project, doc)
    return _task_answer(request, value, status=status)


# --------------------------------------------------------------------------- create, list


@docs(tags=["tasks"], summary="Create a task (members and above)", security=BEARER)
@request_schema(ps.TaskBody)
@response_schema(ps.TaskOut, 201)
@querystring_schema(ps.NoQuery)
@routes.post("/api/v1/projects/{project_id}/tasks")
async def create_task(request: web.Request) -> web.Response:
    project, access = await _project(request, "tasks:write", Role.MEMBER)
    (doc,) = await service.create_tasks(
        context_of(request),
        project,
        actor_of(request, access),
        [validated(request)],
    )
    return await _task_response(request, project, doc, status=201)


@docs(
    tags=["tasks"],
    summary="Create up to 500 tasks at once (all or nothing: one bad item creates none)",
    security=BEARER,
)
@request_schema(ps.BulkCreateBody)
@response_schema(ps.TaskItemsOut, 201)
@querystring_schema(ps.NoQuery)
@routes.post("/api/v1/projects/{project_id}/tasks/bulk")
async def bulk_create(request: web.Request) -> web.Response:
    project, access = await _project(request, "tasks:write", Role.MEMBER)
    db = request.app[db_key]
    created = await service.create_tasks(
        context_of(request),
        project,
        actor_of(request, access),
        validated(request)["tasks"],
        prefix="tasks.",
    )
    views = await service.views(db, project, created)
    return json_response({"items": [task_out(v) for v in views]}, status=201)


@docs(
    tags=["tasks"],
    summary="Set one status on up to 500 tasks of the project (by task_ids and/or keys)",
    security=BEARER,
)
@request_schema(ps.BulkStatusBody)
@response_schema(ps.TaskItemsOut, 200)
@querystring_schema(ps.NoQuery)
@routes.post("/api/v1/projects/{project_id}/tasks/bulk-status")
async def bulk_status(request: web.Request) -> web.Response:
    project, access = await _project(request, "tasks:write", Role.MEMBER)
    db = request.app[db_key]
    body = validated(request)
    targets = await service.find_in_project(db, project, body.get("task_ids") or [], "task_ids")
    targets += await service.find_in_project(db, project, body.get("keys") or [], "keys")
    updated = await service.bulk_status(
        context_of(request),
        project,
        actor_of(request, access),
        targets,
        body["status"],
    )
    views = await service.views(db, project, updated)
    return json_response({"items": [task_out(v) for v in views]})


@docs(
    tags=["tasks"],
    summary="Tasks of a project: filters, sorting, cursor pagination, sparse fields",
    security=BEARER,
)
@querystring_schema(ps.TaskListQuery)
@response_schema(ps.TaskListOut, 200)
@routes.get("/api/v1/projects/{project_id}/tasks")
async def list_tasks(request: web.Request) -> web.Response:
    # the project's cached value is enough to check access; the page loads the document
    project_id = str((await cached_read(request, hot_reads.read_project, scope="tasks:read"))["p"])
    query = query_of(request)
    db = request.app[db_key]
    pager = pager_of(request, "tasks", project_id, query)
    caller = caller_of(request)
    filters = service.TaskFilters(
        statuses=tuple(query.get("status") or ()),
        phase=query.get("phase"),
        assignee=caller.user_id if query.get("assignee") == "me" else query.get("assignee"),
        labels=tuple(query.get("label") or ()),
        due_before=query.get("due_before"),
        due_after=query.get("due_after"),
        ready=query.get("ready"),
    )
    sort, after = query["sort"], pager.after(query.get("cursor"))

    async def load() -> dict[str, Any]:
        project = await project_service.project_by_id(db, project_id)
        found, more = await service.list_tasks(
            db, project, filters, sort=sort, after=after, limit=query["limit"]
        )
        views = await service.views(db, project, found)
        field = service.TASK_SORTS[sort.lstrip("-")]
        cursor = pager.next(found[-1] if found else None, field, more)
        return {
            "body": {
                "items": [task_out(v, query.get("fields_")) for v in views],
                "next_cursor": cursor,
            }
        }

    # A page depends on the project's tasks only (read access was checked above), so it
    # is cached under the project's generation like GET /tasks/{id}.
    shape = {
        "filters": filters,
        "sort": sort,
        "after": after,
        "limit": query["limit"],
        "fields": query.get("fields_"),
    }
    key = cache.task_list_key(project_id, shape)
    value = await cache_of(request).get("task_list", key, project_id, load)
    assert value is not None  # load always returns a page
    return json_response(value["body"])


# --------------------------------------------------------------------------- one task


@docs(
    tags=["tasks"], summary="A task by id or key (ETag; If-None-Match gives 304)", security=BEARER
)
@querystring_schema(ps.FieldsQuery)
@response_schema(ps.TaskOut, 200)
@routes.get("/api/v1/tasks/{task}")
async def get_task(request: web.Request) -> web.Response:
    caller = caller_of(request)
    caller.require_scope("tasks:read")
    db = request.app[db_key]
    # a key (PB-12) is resolved to its task's id; then a task is read one way: cached
    task_id = await service.task_id_of(db, caller, request.match_info["task"])
    value = await hot_reads.read_task(cache_of(request), db, task_id)
    if value is None:
        raise NotFound("task not found")
    await authorize(db, caller, str(value["ws"]), scope="tasks:read", what="task")
    return _task_answer(request, value, fields=query_of(request).get("fields_"))


@docs(
    tags=["tasks"],
    summary="Change a task; If-Match or version → 412 when stale (never a lost update)",
    security=BEARER,
)
@request_schema(ps.TaskPatch)
@response_schema(ps.TaskOut, 200)
@querystring_schema(ps.NoQuery)
@routes.patch("/api/v1/tasks/{task}")
async def update_task(request: web.Request) -> web.Response:
    task, project, access = await _task(request, "tasks:write", Role.MEMBER)
    body: dict[str, Any] = dict(validated(request))
    expected = expected_version(request, task["_id"], body.pop("version", None))
    updated = await service.update_task(
        context_of(request),
        task["_id"],
        project,
        actor_of(request, access),
        body,
        expected,
        loaded=task,
    )
    return await _task_response(request, project, updated)


@docs(
    tags=["tasks"], summary="Delete a task (its dependencies on both sides go too)", security=BEARER
)
@querystring_schema(ps.NoQuery)
@routes.delete("/api/v1/tasks/{task}")
async def delete_task(request: web.Request) -> web.Response:
    task, project, access = await _task(request, "tasks:write", Role.MEMBER)
    await service.delete_task(
        context_of(request),
        task,
        project,
        actor_of(request, access),
        expected_version(request, task["_id"]),
    )
    return web.Response(status=204)


# --------------------------------------------------------------------------- dependencies


async def _dependencies_body(
    request: web.Request, project: ProjectDoc, task: TaskDoc
) -> dict[str, Any]:
    db = request.app[db_key]
    listed = await dependency_service.dependencies_of(db, task)
    (view,) = await service.views(db, project, [task])
    return {**listed, "blocked_by_open": view.blocked_by_open, "ready": view.ready}


@docs(
    tags=["dependencies"],
    summary="Make the task blocked by another task of the project (409 naming a cycle)",
    security=BEARER,
)
@request_schema(ps.DependencyBody)
@response_schema(ps.DependenciesOut, 201)
@querystring_schema(ps.NoQuery)
@routes.post("/api/v1/tasks/{task}/dependencies")
async def add_dependency(request: web.Request) -> web.Response:
    task, project, access = await _task(request, "tasks:write", Role.MEMBER)
    body = validated(request)
    link = dependency_service.link_doc(
        body.get("type", "FS"), body.get("lag", 0.0), body.get("lag_unit", "h")
    )
    updated = await dependency_service.add_dependency(
        context_of(request),
        task,
        project,
        actor_of(request, access),
        body["blocked_by"],
        link,
    )
    return json_response(await _dependencies_body(request, project, updated), status=201)


@docs(
    tags=["dependencies"],
    summary="Change a dependency's type or lag (blocker: id or key); If-Match or version",
    security=BEARER,
)
@request_schema(ps.DependencyPatch)
@response_schema(ps.DependenciesOut, 200)
@querystring_schema(ps.NoQuery)
@routes.patch("/api/v1/tasks/{task}/dependencies/{blocker}")
async def update_dependency(request: web.Request) -> web.Response:
    task, project, access = await _task(request, "tasks:write", Role.MEMBER)
    body: dict[str, Any] = dict(validated(request))
    expected = expected_version(request, task["_id"], body.pop("version", None))
    blocker = await dependency_service.resolve_blocker(
        request.app[db_key], project, request.match_info["blocker"], field="blocker"
    )
    current = representations.link_of(task, blocker["_id"])
    link = dependency_service.link_doc(
        body.get("type", current["type"]),
        body.get("lag", current["lag"]),
        body.get("lag_unit", current["lag_unit"]),
    )
    updated = await dependency_service.update_dependency(
        context_of(request),
        task,
        project,
        actor_of(request, access),
        blocker["_id"],
        link,
        expected,
    )
    return json_response(await _dependencies_body(request, project, updated))


@docs(
    tags=["dependencies"], summary="What the task waits for and what waits for it", security=BEARER
)
@response_schema(ps.DependenciesOut, 200)
@querystring_schema(ps.NoQuery)
@routes.get("/api/v1/tasks/{task}/dependencies")
async def list_dependencies(request: web.Request) -> web.Response:
    task, project, _ = await _task(request, "tasks:read")
    return json_response(await _dependencies_body(request, project, task))


@docs(
    tags=["scheduling"],
    summary="The task's schedule: CPM dates, slack, critical flag, its violations (issue 19)",
    description=(
        "The task's line of `GET /projects/{id}/schedule`, computed on each call over the "
        "project's stored tasks, typed dependencies and working calendar; docs/scheduling.md."
    ),
    security=BEARER,
)
@response_schema(ps.TaskScheduleOut, 200)
@querystring_schema(ps.NoQuery)
@routes.get("/api/v1/tasks/{task}/schedule")
async def task_schedule(request: web.Request) -> web.Response:
    task, project, _ = await _task(request, "tasks:read")
    return json_response(
        await scheduling.task_schedule_out(request.app[db_key], project, task["_id"])
    )


@docs(tags=["dependencies"], summary="Remove a dependency (blocker: id or key)", security=BEARER)
@querystring_schema(ps.NoQuery)
@routes.delete("/api/v1/tasks/{task}/dependencies/{blocker}")
async def remove_dependency(request: web.Request) -> web.Response:
    task, project, access = await _task(request, "tasks:write", Role.MEMBER)
    await dependency_service.remove_dependency(
        context_of(request),
        task,
        project,
        actor_of(request, access),
        request.match_info["blocker"],
    )
    return web.Response(status=204)


@docs(tags=["activity"], summary="The task's activity log, newest first", security=BEARER)
@querystring_schema(ps.PageParams)
@response_schema(ps.ActivityListOut, 200)
@routes.get("/api/v1/tasks/{task}/activity")
async def task_activity(request: web.Request) -> web.Response:
    task, _, _ = await _task(request, "tasks:read")
    query = query_of(request)
    pager = pager_of(request, "task-activity", task["_id"])
    items, more = await activity_service.page_of_task(
        request.app[db_key],
        task["_id"],
        after=pager.after(query.get("cursor")),
        limit=query["limit"],
    )
    return json_response(
        {
            "items": [activity_out(i) for i in items],
            "next_cursor": pager.next(items[-1] if items else None, "_id", more),
        }
    )
