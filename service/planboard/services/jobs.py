"""Jobs: queue long work (a ``job.queued`` event) and run it in the ``jobs`` worker."""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

import orjson
from bson import ObjectId
from bson.errors import InvalidId
from gridfs.asynchronous.grid_file import AsyncGridOut
from gridfs.errors import NoFile
from pymongo.asynchronous.database import AsyncDatabase

from planboard.domain.access import Role
from planboard.domain.errors import DomainError, NotFound
from planboard.domain.plan import parse_plan
from planboard.domain.plan_json import plan_from_json
from planboard.events import outbox
from planboard.events.envelope import Event
from planboard.services import exports, scheduling
from planboard.services.access import Access, Caller, authorize
from planboard.services.activity import Actor
from planboard.services.context import ServiceContext
from planboard.services.plans import import_plan
from planboard.store import jobs, projects
from planboard.store.document import Document
from planboard.store.documents import ProjectDoc
from planboard.store.ids import new_id, utcnow

log = logging.getLogger(__name__)

KINDS = ("export", "import", "forecast")
OWNER = f"{socket.gethostname()}:{os.getpid()}"


async def queue_job(
    db: AsyncDatabase[Document],
    *,
    kind: str,
    workspace_id: str,
    created_by: str,
    params: dict[str, Any],
    request_id: str | None = None,
) -> Document:
    now = utcnow()
    job: Document = {
        "_id": new_id(),
        "kind": kind,
        "workspace_id": workspace_id,
        "created_by": created_by,
        "params": params,
        "status": "queued",
        "progress": 0,
        "result": None,
        "error": None,
        "created_at": now,
        "updated_at": now,
    }
    await jobs.insert(db, job)
    await outbox.record(
        db,
        [
            Event(
                type="job.queued",
                key=str(params.get("project_id") or workspace_id),
                workspace_id=workspace_id,
                data={"job_id": job["_id"], "kind": kind},
                actor_id=created_by,
                request_id=request_id,
            )
        ],
    )
    return job


async def run_job(ctx: ServiceContext, job_id: str) -> None:
    """Run a queued job once; a failure is recorded on the job, never raised."""
    db = ctx.db
    job = await jobs.start(db, job_id, OWNER, utcnow())
    if job is None:
        return  # already started or finished (a redelivered event)
    try:
        result = await _execute(ctx, job)
    except DomainError as exc:
        await jobs.finish(db, job_id, utcnow(), error=exc.detail)
    except Exception as exc:
        log.exception("job %s failed", job_id)
        await jobs.finish(db, job_id, utcnow(), error=f"internal error ({type(exc).__name__})")
    else:
        await jobs.finish(db, job_id, utcnow(), result=result)


async def _execute(ctx: ServiceContext, job: Document) -> Document:
    db = ctx.db
    params: Any = job["params"]
    job_id = str(job["_id"])
    if job["kind"] == "export":
        project = await projects.get(db, str(params["project_id"]))
        if project is None or project["workspace_id"] != job["workspace_id"]:
            raise DomainError("the project no longer exists")
        await jobs.set_progress(db, job_id, 10, utcnow())
        rendered = await exports.render(
            db, project, str(params["format"]), str(params.get("diagram", "graph"))
        )
        await jobs.set_progress(db, job_id, 80, utcnow())
        file_id = await jobs.results(db).upload_from_stream(
            rendered.filename,
            rendered.body,
            metadata={"job_id": job_id, "content_type": rendered.content_type},
        )
        return {
            "file_id": str(file_id),
            "filename": rendered.filename,
            "content_type": rendered.content_type,
            "size": len(rendered.body),
            "download_url": f"/api/v1/jobs/{job_id}/result",
        }
    if job["kind"] == "forecast":
        project = await projects.get(db, str(params["project_id"]))
        if project is None:
            raise DomainError("the project no longer exists")
        await jobs.set_progress(db, job_id, 10, utcnow())
        return await scheduling.project_forecast(
            ctx,
            project,
            runs=int(params["runs"]),
            seed=int(params["seed"]),
            actor=Actor(str(job["created_by"]), None),
        )
    if job["kind"] == "import":
        if "json" in params:
            plan = plan_from_json(orjson.loads(str(params["json"])))
        else:
            plan = parse_plan(str(params["markdown"]))
        await jobs.set_progress(db, job_id, 20, utcnow())
        project = await import_plan(
            ctx,
            workspace_id=str(job["workspace_id"]),
            plan=plan,
            key=params.get("key"),
            actor_id=str(job["created_by"]),
        )
        return {"project_id": project["_id"], "key": project["key"], "tasks": len(plan.tasks())}
    raise DomainError(f"unknown job kind {job['kind']!r}")


async def readable_job(db: AsyncDatabase[Document], caller: Caller, job_id: str) -> Document:
    """The job, if the caller may read its workspace (404 otherwise, like any resource)."""
    job = await jobs.get(db, job_id[:100])
    if job is None:
        raise NotFound("job not found")
    await authorize(db, caller, str(job["workspace_id"]), scope="projects:read", what="job")
    return job


async def open_result(db: AsyncDatabase[Document], file_id: str) -> AsyncGridOut:
    """The stored result of an export job (404 once it expired)."""
    try:
        return await jobs.results(db).open_download_stream(ObjectId(file_id))
    except (NoFile, InvalidId):
        raise NotFound("the result has expired") from None


async def project_to_export(
    db: AsyncDatabase[Document], caller: Caller, project_id: str
) -> tuple[ProjectDoc, Access]:
    """The project, if the caller may read it (404 otherwise)."""
    project = await projects.get(db, project_id[:100])
    if project is None:
        raise NotFound("project not found")
    access = await authorize(
        db, caller, project["workspace_id"], scope="projects:read", role=Role.VIEWER, what="project"
    )
    return project, access
