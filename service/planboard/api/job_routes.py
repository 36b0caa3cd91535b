"""``/api/v1/jobs`` (status, result) and queued project exports."""

from __future__ import annotations

import marshmallow as m
from aiohttp import web
from aiohttp_apigami import docs, request_schema, response_schema
from marshmallow import fields, validate

from planboard.api.authn import caller_of
from planboard.api.json import json_response
from planboard.api.middleware import request_id_of
from planboard.api.planning_schemas import ExportOptions
from planboard.api.validation import validated
from planboard.domain.errors import Conflict
from planboard.services.exports import EXPORT_FORMATS
from planboard.services.jobs import open_result, project_to_export, queue_job, readable_job
from planboard.store.document import Document
from planboard.typedefs import db_key

routes = web.RouteTableDef()
BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
CHUNK = 256 * 1024


class ExportJobBody(ExportOptions):
    format = fields.String(required=True, validate=validate.OneOf(EXPORT_FORMATS))


class JobQueuedOut(m.Schema):
    job_id = fields.String(required=True)
    status = fields.String(metadata={"example": "queued"})


class JobOut(m.Schema):
    id = fields.String(required=True)
    kind = fields.String(validate=validate.OneOf(("export", "import", "forecast")))
    status = fields.String(validate=validate.OneOf(("queued", "running", "succeeded", "failed")))
    progress = fields.Integer(metadata={"description": "0-100"})
    result = fields.Dict(allow_none=True)
    error = fields.String(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


def job_out(job: Document) -> dict[str, object]:
    return {
        "id": job["_id"],
        "kind": job["kind"],
        "status": job["status"],
        "progress": job.get("progress", 0),
        "result": job.get("result"),
        "error": job.get("error"),
        "created_at": job.get("created_at"),
        "updated_at": job.get("updated_at"),
    }


async def _job(request: web.Request) -> Document:
    return await readable_job(request.app[db_key], caller_of(request), request.match_info["job_id"])


@docs(tags=["jobs"], summary="Queue an export of the project (202; poll the job)", security=BEARER)
@request_schema(ExportJobBody)
@response_schema(JobQueuedOut, 202)
@routes.post("/api/v1/projects/{project_id}/exports")
async def queue_export(request: web.Request) -> web.Response:
    db = request.app[db_key]
    project, access = await project_to_export(
        db, caller_of(request), request.match_info["project_id"]
    )
    job = await queue_job(
        db,
        kind="export",
        workspace_id=access.workspace_id,
        created_by=access.user_id,
        params={"project_id": project["_id"], **validated(request)},
        request_id=request_id_of(request),
    )
    return json_response(
        {"job_id": job["_id"], "status": "queued"},
        status=202,
        headers={"Location": f"/api/v1/jobs/{job['_id']}"},
    )


@docs(tags=["jobs"], summary="A job's status, progress, result and error", security=BEARER)
@response_schema(JobOut, 200)
@routes.get("/api/v1/jobs/{job_id}")
async def get_job(request: web.Request) -> web.Response:
    return json_response(job_out(await _job(request)))


@docs(tags=["jobs"], summary="Download the document an export job produced", security=BEARER)
@routes.get("/api/v1/jobs/{job_id}/result")
async def job_result(request: web.Request) -> web.StreamResponse:
    job = await _job(request)
    result = job.get("result")
    if job["status"] != "succeeded" or not isinstance(result, dict) or "file_id" not in result:
        raise Conflict(f"the job has no downloadable result (status {job['status']})")
    stream = await open_result(request.app[db_key], str(result["file_id"]))
    response = web.StreamResponse(
        headers={
            "Content-Type": f"{result['content_type']}; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{result["filename"]}"',
            "Content-Length": str(result["size"]),
        }
    )
    await response.prepare(request)
    while chunk := await stream.read(CHUNK):
        await response.write(chunk)
    await response.write_eof()
    return response
