"""``/api/v1/workspaces/{id}/projects``, ``/api/v1/projects/{id}`` with phases, progress,
plan import/export and the project's activity log."""

from __future__ import annotations

from aiohttp import web
from aiohttp_apigami import docs, querystring_schema, request_schema, response_schema

from planboard.api import planning_schemas as ps
from planboard.api.authn import caller_of
from planboard.api.conditional import expected_version, not_modified
from planboard.api.http import BEARER, actor_of, cached_read, context_of, pager_of
from planboard.api.job_routes import JobQueuedOut
from planboard.api.json import json_response, parse_body
from planboard.api.middleware import request_id_of
from planboard.api.planning_serializers import activity_out
from planboard.api.validation import query_of, validated
from planboard.domain.access import Role
from planboard.domain.errors import ValidationFailed
from planboard.domain.plan import MAX_PLAN_BYTES, parse_plan
from planboard.domain.plan_json import plan_from_json
from planboard.services import activity as activity_service
from planboard.services import exports, hot_reads, scheduling
from planboard.services import projects as service
from planboard.services.access import Access, authorize
from planboard.services.jobs import queue_job
from planboard.services.plans import import_plan
from planboard.services.representations import phase_out, phases_etag, project_etag, project_out
from planboard.store.documents import ProjectDoc
from planboard.typedefs import (
    db_key,
)

routes = web.RouteTableDef()
ASYNC_IMPORT_TASKS = 500  # larger plans are imported as a job (202)
MARKDOWN_TYPES = ("text/markdown", "text/x-markdown")
JSON_TYPE = "application/json"
MAX_JSON_PLAN_BYTES = 4 * 1024 * 1024  # a JSON export; the app's body limit


async def _project(
    request: web.Request, scope: str, role: Role = Role.VIEWER
) -> tuple[ProjectDoc, Access]:
    return await service.project_for(
        request.app[db_key],
        caller_of(request),
        request.match_info["project_id"],
        scope=scope,
        role=role,
    )


async def _workspace(request: web.Request, scope: str, role: Role) -> Access:
    caller = caller_of(request)
    caller.require_scope(scope)
    workspace_id = service.check_id(request.match_info["workspace_id"], "workspace_id")
    return await authorize(
        request.app[db_key], caller, workspace_id, scope=scope, role=role, what="workspace"
    )


def _project_response(project: ProjectDoc, status: int = 200) -> web.Response:
    headers = {"ETag": project_etag(project)}
    if status == 201:
        headers["Location"] = f"/api/v1/projects/{project['_id']}"
    return json_response(project_out(project), status=status, headers=headers)


# --------------------------------------------------------------------------- projects


@docs(
    tags=["projects"],
    summary="Create a project (members and above); the key is derived from the name if absent",
    security=BEARER,
)
@request_schema(ps.ProjectBody)
@response_schema(ps.ProjectOut, 201)
@querystring_schema(ps.NoQuery)
@routes.post("/api/v1/workspaces/{workspace_id}/projects")
async def create_project(request: web.Request) -> web.Response:
    access = await _workspace(request, "projects:write", Role.MEMBER)
    project = await service.create_project(
        context_of(request),
        access,
        actor_of(request, access),
        validated(request),
    )
    return _project_response(project, 201)


@docs(tags=["projects"], summary="Projects of a workspace", security=BEARER)
@querystring_schema(ps.ProjectListQuery)
@response_schema(ps.ProjectListOut, 200)
@routes.get("/api/v1/workspaces/{workspace_id}/projects")
async def list_projects(request: web.Request) -> web.Response:
    access = await _workspace(request, "projects:read", Role.VIEWER)
    query = query_of(request)
    pager = pager_of(request, "projects", access.workspace_id, query)
    sort = query["sort"]
    found, more = await service.list_projects(
        request.app[db_key],
        access.workspace_id,
        statuses=query.get("status") or [],
        sort=sort,
        after=pager.after(query.get("cursor")),
        limit=query["limit"],
    )
    field = service.PROJECT_SORTS[sort.lstrip("-")]
    return json_response(
        {
            "items": [project_out(p) for p in found],
            "next_cursor": pager.next(found[-1] if found else None, field, more),
        }
    )


@docs(
    tags=["projects"],
    summary=(
        "Import a plan as a new project: Markdown (Content-Type: text/markdown) or a JSON "
        "export (application/json)"
    ),
    description=(
        "The body is a plan in the format of plan-template.md (at most 2 MiB), or the "
        "document GET /projects/{id}/export?format=json answers (format "
        "planboard.project.v1, at most 4 MiB; docs/scheduling.md). "
        "A plan of up to 500 tasks is imported in the request (201 with the project); a "
        "larger one by the jobs worker (202 with the job to poll at Location)."
    ),
    security=BEARER,
)
@querystring_schema(ps.ImportQuery)
@response_schema(ps.ProjectOut, 201)
@response_schema(JobQueuedOut, 202)
@routes.post("/api/v1/workspaces/{workspace_id}/projects/import")
async def import_project(request: web.Request) -> web.Response:
    is_json = request.content_type == JSON_TYPE
    if request.content_type not in MARKDOWN_TYPES and not is_json:
        raise web.HTTPUnsupportedMediaType(
            text="send the plan as text/markdown or a JSON export as application/json "
            f"(got {request.content_type or 'nothing'})"
        )
    limit = MAX_JSON_PLAN_BYTES if is_json else MAX_PLAN_BYTES
    too_big = web.HTTPRequestEntityTooLarge(
        max_size=limit,
        actual_size=request.content_length or 0,
        text=f"a plan is at most {limit // (1024 * 1024)} MiB",
    )
    if (request.content_length or 0) > limit:
        raise too_big
    access = await _workspace(request, "projects:write", Role.MEMBER)
    raw = await request.read()
    if len(raw) > limit:
        raise too_big
    if is_json:
        text = raw.decode("utf-8", errors="replace")  # parse_body refused what is not UTF-8
        plan = plan_from_json(parse_body(raw))
        params = {"json": text}
    else:
        try:
            text = raw.decode(request.charset or "utf-8")
        except (UnicodeDecodeError, LookupError):
            raise ValidationFailed([("body", "the plan must be UTF-8 text")]) from None
        plan = parse_plan(text)
        params = {"markdown": text}
    if len(plan.tasks()) > ASYNC_IMPORT_TASKS:
        # Very large plans are imported by the jobs worker: 202 and a job to poll.
        job = await queue_job(
            request.app[db_key],
            kind="import",
            workspace_id=access.workspace_id,
            created_by=access.user_id,
            params={**params, "key": query_of(request).get("key")},
            request_id=request_id_of(request),
        )
        return json_response(
            {"job_id": job["_id"], "status": "queued"},
            status=202,
            headers={"Location": f"/api/v1/jobs/{job['_id']}"},
        )
    project = await import_plan(
        context_of(request),
        workspace_id=access.workspace_id,
        plan=plan,
        key=query_of(request).get("key"),
        actor_id=access.user_id,
        request_id=request_id_of(request),
    )
    return _project_response(project, 201)


@docs(tags=["projects"], summary="A project (ETag; If-None-Match gives 304)", security=BEARER)
@response_schema(ps.ProjectOut, 200)
@querystring_schema(ps.NoQuery)
@routes.get("/api/v1/projects/{project_id}")
async def get_project(request: web.Request) -> web.Response:
    value = await cached_read(request, hot_reads.read_project)
    etag = str(value["etag"])
    return not_modified(request, etag) or json_response(value["body"], headers={"ETag": etag})


@docs(
    tags=["projects"],
    summary="Change a project (admins or its creator); If-Match or version → 412 when stale",
    security=BEARER,
)
@request_schema(ps.ProjectPatch)
@response_schema(ps.ProjectOut, 200)
@querystring_schema(ps.NoQuery)
@routes.patch("/api/v1/projects/{project_id}")
async def update_project(request: web.Request) -> web.Response:
    project, access = await _project(request, "projects:write", Role.MEMBER)
    service.require_manager(project, access)
    body = dict(validated(request))
    expected = expected_version(request, project["_id"], body.pop("version", None))
    updated = await service.update_project(
        context_of(request),
        project,
        actor_of(request, access),
        body,
        expected,
    )
    return _project_response(updated)


@docs(
    tags=["projects"],
    summary="Delete a project with its tasks, comments and activity (admins or its creator)",
    security=BEARER,
)
@querystring_schema(ps.NoQuery)
@routes.delete("/api/v1/projects/{project_id}")
async def delete_project(request: web.Request) -> web.Response:
    project, access = await _project(request, "projects:write", Role.MEMBER)
    service.require_manager(project, access)
    await service.delete_project(
        context_of(request),
        project,
        actor_of(request, access),
        expected_version(request, project["_id"]),
    )
    return web.Response(status=204)


# --------------------------------------------------------------------------- phases


@docs(tags=["phases"], summary="Phases of a project, in order (ETag)", security=BEARER)
@response_schema(ps.PhaseListOut, 200)
@querystring_schema(ps.NoQuery)
@routes.get("/api/v1/projects/{project_id}/phases")
async def list_phases(request: web.Request) -> web.Response:
    project, _ = await _project(request, "projects:read")
    phases = await service.phases_with_counts(request.app[db_key], project)
    items = [phase_out(p, int(str(p["task_count"]))) for p in phases]
    etag = phases_etag(project, items)
    return not_modified(request, etag) or json_response({"items": items}, headers={"ETag": etag})


@docs(
    tags=["phases"],
    summary="Add a phase (admins or the project's creator); position inserts it there",
    security=BEARER,
)
@request_schema(ps.PhaseBody)
@response_schema(ps.PhaseOut, 201)
@querystring_schema(ps.NoQuery)
@routes.post("/api/v1/projects/{project_id}/phases")
async def create_phase(request: web.Request) -> web.Response:
    project, access = await _project(request, "projects:write", Role.MEMBER)
    service.require_manager(project, access)
    _, phase = await service.add_phase(
        context_of(request),
        project,
        actor_of(request, access),
        validated(request),
    )
    return json_response(phase_out(phase, 0), status=201)


@docs(tags=["phases"], summary="Rename, re-estimate or move a phase", security=BEARER)
@request_schema(ps.PhasePatch)
@response_schema(ps.PhaseOut, 200)
@querystring_schema(ps.NoQuery)
@routes.patch("/api/v1/projects/{project_id}/phases/{phase_id}")
async def update_phase(request: web.Request) -> web.Response:
    project, access = await _project(request, "projects:write", Role.MEMBER)
    service.require_manager(project, access)
    phase_id = service.check_id(request.match_info["phase_id"], "phase_id")
    _, phase = await service.update_phase(
        context_of(request),
        project,
        actor_of(request, access),
        phase_id,
        validated(request),
    )
    return json_response(phase_out(phase))


@docs(
    tags=["phases"],
    summary="Delete a phase; one with tasks needs ?move_to=<phase id> (else 409)",
    security=BEARER,
)
@querystring_schema(ps.PhaseDeleteQuery)
@routes.delete("/api/v1/projects/{project_id}/phases/{phase_id}")
async def delete_phase(request: web.Request) -> web.Response:
    project, access = await _project(request, "projects:write", Role.MEMBER)
    service.require_manager(project, access)
    phase_id = service.check_id(request.match_info["phase_id"], "phase_id")
    await service.delete_phase(
        context_of(request),
        project,
        actor_of(request, access),
        phase_id,
        query_of(request).get("move_to"),
    )
    return web.Response(status=204)


# --------------------------------------------------------------------------- progress, io


@docs(tags=["projects"], summary="Progress roll-up (SPEC §7)", security=BEARER)
@response_schema(ps.ProgressOut, 200)
@querystring_schema(ps.NoQuery)
@routes.get("/api/v1/projects/{project_id}/progress")
async def progress(request: web.Request) -> web.Response:
    value = await cached_read(request, hot_reads.read_progress)
    return json_response(value["body"])


@docs(
    tags=["scheduling"],
    summary="The project's schedule: CPM dates, slack, critical path, violations (issue 19)",
    description=(
        "Computed on each call over the stored tasks, typed dependencies and the working "
        "calendar (the project's, else the workspace's, else Mon-Fri 8 h UTC); "
        "docs/scheduling.md."
    ),
    security=BEARER,
)
@response_schema(ps.ScheduleOut, 200)
@querystring_schema(ps.NoQuery)
@routes.get("/api/v1/projects/{project_id}/schedule")
async def schedule(request: web.Request) -> web.Response:
    project, _ = await _project(request, "projects:read")
    return json_response(await scheduling.project_schedule_out(request.app[db_key], project))


@docs(
    tags=["scheduling"],
    summary="Monte Carlo forecast: P50/P85/P95 finish per project and phase, criticality",
    description=(
        "Projects of up to 500 tasks are forecast in the request (200); larger ones by the "
        "jobs worker (202 with the job to poll at Location; its result is this answer)."
    ),
    security=BEARER,
)
@querystring_schema(ps.ForecastQuery)
@response_schema(ps.ForecastOut, 200)
@response_schema(JobQueuedOut, 202)
@routes.get("/api/v1/projects/{project_id}/forecast")
async def forecast(request: web.Request) -> web.Response:
    project, access = await _project(request, "projects:read")
    query = query_of(request)
    db = request.app[db_key]
    if int(project.get("task_count") or 0) > scheduling.FORECAST_SYNC_TASKS:
        job = await queue_job(
            db,
            kind="forecast",
            workspace_id=access.workspace_id,
            created_by=access.user_id,
            params={"project_id": project["_id"], "runs": query["runs"], "seed": query["seed"]},
            request_id=request_id_of(request),
        )
        return json_response(
            {"job_id": job["_id"], "status": "queued"},
            status=202,
            headers={"Location": f"/api/v1/jobs/{job['_id']}"},
        )
    body = await scheduling.project_forecast(
        context_of(request),
        project,
        runs=query["runs"],
        seed=query["seed"],
        memory_budget=scheduling.REQUEST_MEMORY,
        actor=actor_of(request, access),
    )
    return json_response(body)


@docs(
    tags=["scheduling"],
    summary="Freeze the project's current schedule as a baseline (members and above)",
    security=BEARER,
)
@request_schema(ps.BaselineBody)
@response_schema(ps.BaselineOut, 201)
@querystring_schema(ps.NoQuery)
@routes.post("/api/v1/projects/{project_id}/baselines")
async def create_baseline(request: web.Request) -> web.Response:
    project, access = await _project(request, "projects:write", Role.MEMBER)
    body = await scheduling.create_baseline(
        context_of(request), project, actor_of(request, access), validated(request).get("name")
    )
    return json_response(
        body,
        status=201,
        headers={"Location": f"/api/v1/projects/{project['_id']}/baselines/{body['id']}"},
    )


@docs(tags=["scheduling"], summary="The project's baselines, newest first", security=BEARER)
@querystring_schema(ps.PageParams)
@response_schema(ps.BaselineListOut, 200)
@routes.get("/api/v1/projects/{project_id}/baselines")
async def list_baselines(request: web.Request) -> web.Response:
    project, _ = await _project(request, "projects:read")
    query = query_of(request)
    pager = pager_of(request, "baselines", project["_id"])
    found, more = await scheduling.baseline_page(
        request.app[db_key], project, after=pager.after(query.get("cursor")), limit=query["limit"]
    )
    return json_response(
        {
            "items": [scheduling.baseline_summary(doc) for doc in found],
            "next_cursor": pager.next(found[-1] if found else None, "_id", more),
        }
    )


@docs(
    tags=["scheduling"],
    summary="A baseline against the current schedule: slipped tasks, finish-date change",
    security=BEARER,
)
@response_schema(ps.BaselineCompareOut, 200)
@querystring_schema(ps.NoQuery)
@routes.get("/api/v1/projects/{project_id}/baselines/{baseline_id}/compare")
async def compare_baseline(request: web.Request) -> web.Response:
    project, _ = await _project(request, "projects:read")
    return json_response(
        await scheduling.compare_baseline(
            request.app[db_key], project, request.match_info["baseline_id"]
        )
    )


@docs(
    tags=["projects"],
    summary="Export the project: markdown (a plan that imports back), json, csv or a "
    "mermaid picture (dependency graph or gantt chart)",
    security=BEARER,
)
@querystring_schema(ps.ExportQuery)
@routes.get("/api/v1/projects/{project_id}/export")
async def export_project(request: web.Request) -> web.Response:
    project, _ = await _project(request, "projects:read")
    query = query_of(request)
    rendered = await exports.render(
        request.app[db_key], project, query["format"], query.get("diagram", "graph")
    )
    return web.Response(
        body=rendered.body,
        content_type=rendered.content_type,
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{rendered.filename}"'},
    )


@docs(tags=["activity"], summary="The project's activity log, newest first", security=BEARER)
@querystring_schema(ps.PageParams)
@response_schema(ps.ActivityListOut, 200)
@routes.get("/api/v1/projects/{project_id}/activity")
async def project_activity(request: web.Request) -> web.Response:
    project, _ = await _project(request, "projects:read")
    query = query_of(request)
    pager = pager_of(request, "project-activity", project["_id"])
    items, more = await activity_service.page_of_project(
        request.app[db_key],
        project["_id"],
        after=pager.after(query.get("cursor")),
        limit=query["limit"],
    )
    return json_response(
        {
            "items": [activity_out(i) for i in items],
            "next_cursor": pager.next(items[-1] if items else None, "_id", more),
        }
    )
