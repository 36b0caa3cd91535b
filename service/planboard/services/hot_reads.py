"""The hot reads the Redis cache holds — a project, its progress, a task by id — and what
each cached value is, in one place for the API (which fills on a miss) and ``planboard
cache-warm`` (which fills ahead), so a warmed value is byte for byte the one the API
would have stored.

A value is ``{"p": project, "ws": workspace, "etag"?: ..., "body": ...}`` plus the
cache's generation ``g`` (services/cache.py). Membership is not part of a value: the API
authorizes against ``ws`` on every read (services/access.py, through the near cache).

Pages of a project's task list are cached as well (api/task_routes.py, under the same
project generation), but not here: a page holds the API's signed cursors, so only the API
fills it, on a miss; ``cache-warm`` does not pre-fill pages.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pymongo.asynchronous.database import AsyncDatabase

from planboard.services import cache
from planboard.services import projects as project_service
from planboard.services import tasks as task_service
from planboard.services.representations import project_etag, project_out, task_etag, task_out
from planboard.store import projects as projects_store
from planboard.store import tasks as tasks_store
from planboard.store.document import Document
from planboard.store.documents import ProjectDoc, TaskDoc

PROJECT, PROGRESS, TASK = "project", "progress", "task"

# --------------------------------------------------------------------------- values


async def project_value(db: AsyncDatabase[Document], project_id: str) -> cache.Value | None:
    project = await projects_store.get(db, project_id)
    if project is None:
        return None
    return {
        "ws": project["workspace_id"],
        "etag": project_etag(project),
        "body": project_out(project),
        "p": project_id,
    }


async def progress_value(db: AsyncDatabase[Document], project_id: str) -> cache.Value | None:
    project = await projects_store.get(db, project_id)
    if project is None:
        return None
    body = await project_service.progress(db, project)
    return {"ws": project["workspace_id"], "body": body, "p": project_id}


async def task_representation(
    db: AsyncDatabase[Document], project: ProjectDoc, doc: TaskDoc
) -> cache.Value:
    """A task as the API shows it, ``{p, ws, etag, body}``: the one path for a task read
    by id (cached) or by key, and for the answer to a write."""
    (view,) = await task_service.views(db, project, [doc])
    return {
        "p": project["_id"],
        "ws": project["workspace_id"],
        "etag": task_etag(view),
        "body": task_out(view),
    }


async def task_value(db: AsyncDatabase[Document], task_id: str) -> cache.Value | None:
    found = await tasks_store.get(db, task_id)
    project = None if found is None else await projects_store.get(db, found["project_id"])
    if found is None or project is None:
        return None
    return await task_representation(db, project, found)


async def project_of_task(db: AsyncDatabase[Document], task_id: str) -> str | None:
    found = await tasks_store.get(db, task_id)
    return None if found is None else found["project_id"]


# --------------------------------------------------------------------------- reads (API)


async def read_project(
    reads: cache.ReadThrough, db: AsyncDatabase[Document], project_id: str
) -> cache.Value | None:
    return await reads.get(
        PROJECT, cache.project_key(project_id), project_id, lambda: project_value(db, project_id)
    )


async def read_progress(
    reads: cache.ReadThrough, db: AsyncDatabase[Document], project_id: str
) -> cache.Value | None:
    return await reads.get(
        PROGRESS,
        cache.progress_key(project_id),
        project_id,
        lambda: progress_value(db, project_id),
    )


async def read_task(
    reads: cache.ReadThrough, db: AsyncDatabase[Document], task_id: str
) -> cache.Value | None:
    return await reads.get(
        TASK,
        cache.task_key(task_id),
        lambda: project_of_task(db, task_id),
        lambda: task_value(db, task_id),
    )


# --------------------------------------------------------------------------- warming


@dataclass(frozen=True, slots=True)
class Candidate:
    """A project to warm and when it was last active (its own or a task's last write)."""

    project_id: str
    workspace_id: str
    active_ms: int


async def candidates(
    db: AsyncDatabase[Document],
    *,
    workspace_ids: Sequence[str] = (),
    project_ids: Sequence[str] = (),
    limit: int | None = None,
) -> list[Candidate]:
    """Projects to warm, most recently active first.

    Named projects are taken whatever their status; otherwise every project not
    ``archived`` (of the named workspaces, if any). A named project that does not
    exist raises ``LookupError``.
    """
    query: dict[str, object] = {}
    if project_ids:
        query["_id"] = {"$in": list(project_ids)}
    else:
        query["status"] = {"$ne": "archived"}
    if workspace_ids:
        query["workspace_id"] = {"$in": list(workspace_ids)}
    docs = await projects_store.activity_of(db, query)
    missing = sorted(set(project_ids) - {doc["_id"] for doc in docs})
    if missing:
        where = " in the given workspaces" if workspace_ids else ""
        raise LookupError(f"no project {', '.join(missing)}{where}")
    latest = await tasks_store.latest_update_by_project(db, [str(doc["_id"]) for doc in docs])
    found = [
        Candidate(
            project_id=str(doc["_id"]),
            workspace_id=str(doc["workspace_id"]),
            active_ms=max(_ms(doc.get("updated_ms")), latest.get(str(doc["_id"]), 0)),
        )
        for doc in docs
    ]
    found.sort(key=lambda c: (-c.active_ms, c.project_id))
    return found[:limit] if limit is not None else found


def _ms(value: object) -> int:
    return int(value) if isinstance(value, int | float) else 0


@dataclass
class WarmReport:
    projects: int = 0
    warmed: int = 0  # values stored
    skipped: int = 0  # valid already, or gone from MongoDB meanwhile
    failed: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class WarmProgress:
    """What a progress callback receives (progress.StepLike)."""

    phase: str
    item: str
    done: int
    total: int | None


async def warm(
    reads: cache.ReadThrough,
    db: AsyncDatabase[Document],
    targets: Sequence[Candidate],
    *,
    tasks_per_project: int,
    concurrency: int,
    invalidate: bool = False,
    progress: Callable[[WarmProgress], None] | None = None,
) -> WarmReport:
    """Warm each project's representation and progress and its ``tasks_per_project``
    most recently updated tasks, ``concurrency`` projects at a time.

    ``invalidate`` first gives each project a new generation (after a restore: nothing
    cached before it is served). A project's failure is counted and the others go on.
    """
    report = WarmReport(projects=len(targets))
    started = time.monotonic()
    gate = asyncio.Semaphore(concurrency)
    done = 0

    def tally(outcome: cache.Fill) -> None:
        if outcome == "filled":
            report.warmed += 1
        else:  # present, absent, or busy: another filler holds the key's lock
            report.skipped += 1

    async def one(target: Candidate) -> None:
        nonlocal done
        pid = target.project_id
        async with gate:
            try:
                if invalidate:
                    await cache.invalidate_project(reads.redis, pid)
                tally(await _warm_value(reads, PROJECT, pid, pid, lambda: project_value(db, pid)))
                tally(await _warm_value(reads, PROGRESS, pid, pid, lambda: progress_value(db, pid)))
                for task_id in await tasks_store.recently_updated(db, pid, tasks_per_project):
                    tally(await _warm_task(reads, db, task_id, pid))
            except Exception as exc:  # one project's failure never stops the others
                report.failed += 1
                report.errors.append(f"project {pid}: {type(exc).__name__}: {exc}")
            done += 1
            if progress is not None:
                progress(WarmProgress("warm", "projects", done, len(targets)))

    if progress is not None:
        progress(WarmProgress("warm", "projects", 0, len(targets)))
    await asyncio.gather(*(one(t) for t in targets))
    report.seconds = time.monotonic() - started
    return report


async def _warm_value(
    reads: cache.ReadThrough, kind: str, ident: str, project_id: str, load: cache.Loader
) -> cache.Fill:
    keys = {PROJECT: cache.project_key, PROGRESS: cache.progress_key, TASK: cache.task_key}
    return await reads.warm(kind, keys[kind](ident), project_id, load)


async def _warm_task(
    reads: cache.ReadThrough, db: AsyncDatabase[Document], task_id: str, project_id: str
) -> cache.Fill:
    return await _warm_value(reads, TASK, task_id, project_id, lambda: task_value(db, task_id))
