"""Projects and their phases: access, create, list, update, delete, progress."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, cast

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from planboard.domain.access import Role
from planboard.domain.errors import (
    Conflict,
    Forbidden,
    NotFound,
    ValidationFailed,
    VersionMismatch,
)
from planboard.domain.keys import PROJECT_KEY_RE, derive_project_key
from planboard.domain.model import TaskNode, TaskStatus
from planboard.domain.progress import compute_progress
from planboard.domain.text import MAX_PHASES
from planboard.events import outbox
from planboard.services import scheduling
from planboard.services.access import Access, Caller, authorize
from planboard.services.activity import (
    Actor,
    Retry,
    changes_out,
    diff,
    entry,
    event,
    record_change,
    with_retries,
)
from planboard.services.context import ServiceContext
from planboard.store import activity, attachments, baselines, comments, projects, tasks
from planboard.store.document import Document
from planboard.store.documents import ProjectDoc
from planboard.store.ids import new_id, utcnow

PROJECT_STATUSES = ("planned", "active", "paused", "completed", "cancelled", "archived")
PROJECT_FIELDS = [
    "name",
    "description",
    "status",
    "start_date",
    "target_date",
    "calendar",
    "scheduling_mode",
]


def _scheduling_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with a given calendar checked and in its stored form (null: none)."""
    out = dict(values)
    if out.get("calendar") is not None:
        out["calendar"] = scheduling.calendar_doc(out["calendar"])
    return out


OBJECT_ID_RE = re.compile(r"^[0-9a-f]{24}$")

# List sorts: API name -> stored field.
PROJECT_SORTS = {
    "created_at": "created_ms",
    "updated_at": "updated_ms",
    "name": "name_sort",
    "key": "key",
}


def check_id(value: str, field: str) -> str:
    """A path or body id must look like one of ours (24 hex digits): 422 naming the field."""
    if not OBJECT_ID_RE.match(value):
        raise ValidationFailed([(field, "not a valid id")], f"{field} is not a valid id")
    return value


async def project_for(
    db: AsyncDatabase[Document],
    caller: Caller,
    project_id: str,
    *,
    scope: str,
    role: Role = Role.VIEWER,
) -> tuple[ProjectDoc, Access]:
    """Load a project the caller may act on: the scope first (so a missing scope never tells
    whether a project exists), then 404 for unknown or other workspaces, 403 for the role."""
    caller.require_scope(scope)
    check_id(project_id, "project_id")
    project = await projects.get(db, project_id)
    if project is None:
        raise NotFound("project not found")
    access = await authorize(
        db, caller, project["workspace_id"], scope=scope, role=role, what="project"
    )
    return project, access


async def project_by_id(db: AsyncDatabase[Document], project_id: str) -> ProjectDoc:
    """The project (404 when gone); access is the caller's to check."""
    project = await projects.get(db, project_id)
    if project is None:
        raise NotFound("project not found")
    return project


def require_manager(project: Mapping[str, object], access: Access) -> None:
    """Changing a project or its phases takes an admin, or the member who created it."""
    if access.role.at_least(Role.ADMIN) or project.get("created_by") == access.user_id:
        return
    raise Forbidden(
        "changing a project takes the admin role in the workspace (or having created it); "
        f"you are {access.role.value}"
    )


def normalize_key(key: str) -> str:
    key = key.strip().upper()
    if not PROJECT_KEY_RE.match(key):
        raise ValidationFailed(
            [("key", "2-10 letters or digits, starting with a letter (e.g. PB)")]
        )
    return key


def _check_dates(values: Mapping[str, Any]) -> None:
    start, target = values.get("start_date"), values.get("target_date")
    if start is not None and target is not None and target < start:
        raise ValidationFailed([("target_date", "must not be before start_date")])


async def create_project(
    ctx: ServiceContext,
    access: Access,
    actor: Actor,
    values: Mapping[str, Any],
) -> ProjectDoc:
    """Create a project; the key is derived from the name unless given (409 if taken)."""
    db = ctx.db
    _check_dates(values)
    values = _scheduling_values(values)
    given = normalize_key(values["key"]) if values.get("key") else None
    for _ in range(5):
        key = given or derive_project_key(
            values["name"], await projects.keys_in_workspace(db, access.workspace_id)
        )
        now = utcnow()
        project: ProjectDoc = {
            "_id": new_id(),
            "workspace_id": access.workspace_id,
            "key": key,
            "name": values["name"],
            "name_sort": projects.sort_key_of_name(values["name"]),
            "description": values.get("description") or "",
            "status": values.get("status") or "active",
            "start_date": values.get("start_date"),
            "target_date": values.get("target_date"),
            "calendar": values.get("calendar"),
            "scheduling_mode": values.get("scheduling_mode") or scheduling.DEFAULT_MODE,
            "target_users": None,
            "project_type": None,
            "phases": [],
            "phases_version": 0,
            "graph_version": 0,
            "task_seq": 0,
            "task_count": 0,  # store/quotas.py
            "created_by": access.user_id,
            "created_at": now,
            "updated_at": now,
            "version": 1,
        }
        projects.stamp_times(project)
        try:
            async with ctx.write() as unit:
                session = unit.session
                await projects.insert(db, project, session=session)
                await record_change(
                    db,
                    events=[
                        event("project.created", project, actor, key=key, name=project["name"])
                    ],
                    entries=[
                        entry(
                            project=project,
                            actor=actor,
                            entity="project",
                            entity_id=project["_id"],
                            action="created",
                            at=now,
                            data={"key": key, "name": project["name"]},
                        )
                    ],
                    session=session,
                )
        except DuplicateKeyError:
            if given:
                raise Conflict(
                    f"a project with key {given!r} already exists in this workspace"
                ) from None
            continue  # a concurrent create took the derived key: derive again
        return project
    raise Conflict("could not allocate a project key; pass one explicitly")


async def list_projects(
    db: AsyncDatabase[Document],
    workspace_id: str,
    *,
    statuses: list[str],
    sort: str,
    after: tuple[Any, str] | None,
    limit: int,
) -> tuple[list[ProjectDoc], bool]:
    query: dict[str, object] = {"workspace_id": workspace_id}
    if statuses:
        query["status"] = {"$in": statuses}
    descending = sort.startswith("-")
    return await projects.page(
        db,
        query,
        field=PROJECT_SORTS[sort.lstrip("-")],
        descending=descending,
        after=after,
        limit=limit,
    )


def check_version(current: Mapping[str, object], expected: int | None) -> None:
    if expected is not None and current.get("version") != expected:
        raise VersionMismatch(
            f"the resource is at version {current.get('version')}, not {expected}; "
            "read it again and reapply your change"
        )


async def update_project(
    ctx: ServiceContext,
    project: ProjectDoc,
    actor: Actor,
    values: Mapping[str, Any],
    expected_version: int | None,
) -> ProjectDoc:
    """Change fields under a version guard (a stale ``expected_version`` is a 412)."""
    db = ctx.db
    project_id = project["_id"]
    values = _scheduling_values(values)

    async def attempt() -> ProjectDoc:
        current = await projects.get(db, project_id)
        if current is None:
            raise NotFound("project not found")
        check_version(current, expected_version)
        merged = {**current, **values}
        _check_dates(merged)
        changes = diff(current, merged, PROJECT_FIELDS)
        if not changes:
            return current
        now = utcnow()
        update: Document = {field: merged[field] for field in changes}
        if "name" in changes:
            update["name_sort"] = projects.sort_key_of_name(merged["name"])
        update["updated_at"] = now
        update.update(projects.time_shadows({"updated_at": now}))
        async with ctx.write(project_id) as unit:
            session = unit.session
            version = int(str(current["version"]))
            if not await projects.update_guarded(db, project_id, version, update, session=session):
                if expected_version is not None:
                    raise VersionMismatch("the project changed meanwhile; read it again")
                raise Retry
            await record_change(
                db,
                events=[event("project.updated", current, actor, changes=changes_out(changes))],
                entries=[
                    entry(
                        project=current,
                        actor=actor,
                        entity="project",
                        entity_id=project_id,
                        action="updated",
                        at=now,
                        changes=changes,
                    )
                ],
                session=session,
            )
        return cast(ProjectDoc, {**current, **update, "version": version + 1})

    return await with_retries(attempt)


async def delete_project(
    ctx: ServiceContext,
    project: ProjectDoc,
    actor: Actor,
    expected_version: int | None,
) -> None:
    """Delete the project (guarded), then its tasks, comments and activity.

    The project goes first: should the cascade stop midway, what is left is unreachable
    (every task read goes through its project) and a retry of the cascade is harmless.
    """
    db = ctx.db
    project_id = project["_id"]
    current = await projects.get(db, project_id)
    if current is None:
        raise NotFound("project not found")
    check_version(current, expected_version)
    async with ctx.write(project_id) as unit:
        session = unit.session
        version = int(str(current["version"]))
        if not await projects.delete_guarded(db, project_id, version, session=session):
            raise VersionMismatch("the project changed meanwhile; read it again")
        removed = await tasks.delete_in_project(db, project_id, session=session)
        await baselines.delete_of_project(db, project_id, session=session)
        await comments.delete_of_project(db, project_id, session=session)
        await attachments.mark_deleted_where(
            db, {"project_id": project_id}, utcnow(), session=session
        )
        await activity.delete_of_project(db, project_id, session=session)
        await outbox.record(
            db,
            [event("project.deleted", current, actor, key=current["key"], tasks_deleted=removed)],
            session=session,
        )


# --------------------------------------------------------------------------- phases


def ordered_phases(project: Mapping[str, object]) -> list[Document]:
    phases: Any = project.get("phases") or []
    return sorted((dict(p) for p in phases), key=lambda p: int(p.get("position", 0)))


def resolve_phase(project: Mapping[str, object], ref: str) -> Document | None:
    """A phase by id, else by exact name."""
    phases = ordered_phases(project)
    for phase in phases:
        if phase["id"] == ref:
            return phase
    for phase in phases:
        if phase["name"] == ref:
            return phase
    return None


def phase_names(project: Mapping[str, object]) -> dict[str, str]:
    return {str(p["id"]): str(p["name"]) for p in ordered_phases(project)}


def _renumber(phases: list[Document]) -> list[Document]:
    return [{**phase, "position": index} for index, phase in enumerate(phases)]


def _check_unique_name(phases: list[Document], name: str, except_id: str | None = None) -> None:
    folded = name.casefold()
    if any(str(p["name"]).casefold() == folded and p["id"] != except_id for p in phases):
        raise Conflict(f"the project already has a phase named {name!r}")


async def phases_with_counts(db: AsyncDatabase[Document], project: ProjectDoc) -> list[Document]:
    counts = await tasks.counts_by_phase(db, project["_id"])
    return [{**p, "task_count": counts.get(str(p["id"]), 0)} for p in ordered_phases(project)]


async def _change_phases(
    ctx: ServiceContext,
    project_id: str,
    actor: Actor,
    change: Any,
) -> tuple[ProjectDoc, Document]:
    """Apply ``change(project, phases) -> (new phases, phase, kind, changes, data)`` under
    the ``phases_version`` guard, with its event and activity entry; returns (project, phase).
    """
    db = ctx.db

    async def attempt() -> tuple[ProjectDoc, Document]:
        current = await projects.get(db, project_id)
        if current is None:
            raise NotFound("project not found")
        phases, phase, kind, changes, data = await change(current, ordered_phases(current))
        now = utcnow()
        async with ctx.write(project_id) as unit:
            session = unit.session
            if not await projects.set_phases(db, current, phases, now, session=session):
                raise Retry
            if data.get("move_to"):
                data["tasks_moved"] = await tasks.move_phase(
                    db, project_id, str(phase["id"]), str(data["move_to"]), now, session=session
                )
            await record_change(
                db,
                events=[
                    event(
                        f"project.{kind}",
                        current,
                        actor,
                        phase_id=phase["id"],
                        name=phase["name"],
                        changes=changes_out(changes),
                        **data,
                    )
                ],
                entries=[
                    entry(
                        project=current,
                        actor=actor,
                        entity="phase",
                        entity_id=str(phase["id"]),
                        action=kind.removeprefix("phase_"),
                        at=now,
                        changes=changes,
                        data={"name": phase["name"], **data},
                    )
                ],
                session=session,
            )
        updated = cast(
            ProjectDoc,
            {
                **current,
                "phases": phases,
                "phases_version": projects.counter(current, "phases_version") + 1,
            },
        )
        return updated, phase

    return await with_retries(attempt)


def _place(phases: list[Document], phase: Document, position: int | None) -> list[Document]:
    others = [p for p in phases if p["id"] != phase["id"]]
    index = len(others) if position is None else max(0, min(position, len(others)))
    return _renumber([*others[:index], phase, *others[index:]])


async def add_phase(
    ctx: ServiceContext,
    project: ProjectDoc,
    actor: Actor,
    values: Mapping[str, Any],
) -> tuple[ProjectDoc, Document]:
    phase_id = new_id()

    async def change(current: ProjectDoc, phases: list[Document]) -> tuple[Any, ...]:
        if len(phases) >= MAX_PHASES:
            raise ValidationFailed([("name", f"a project holds at most {MAX_PHASES} phases")])
        _check_unique_name(phases, values["name"])
        phase: Document = {
            "id": phase_id,
            "name": values["name"],
            "estimate_hours": values.get("estimate_hours"),
        }
        placed = _place(phases, phase, values.get("position"))
        phase = next(p for p in placed if p["id"] == phase_id)
        return placed, phase, "phase_created", {}, {}

    return await _change_phases(ctx, project["_id"], actor, change)


async def update_phase(
    ctx: ServiceContext,
    project: ProjectDoc,
    actor: Actor,
    phase_id: str,
    values: Mapping[str, Any],
) -> tuple[ProjectDoc, Document]:

    async def change(current: ProjectDoc, phases: list[Document]) -> tuple[Any, ...]:
        old = next((p for p in phases if p["id"] == phase_id), None)
        if old is None:
            raise NotFound("phase not found")
        if "name" in values:
            _check_unique_name(phases, values["name"], except_id=phase_id)
        new = {**old, **{k: v for k, v in values.items() if k in ("name", "estimate_hours")}}
        placed = _place(phases, new, values.get("position", old["position"]))
        new = next(p for p in placed if p["id"] == phase_id)
        changes = diff(old, new, ["name", "estimate_hours", "position"])
        return placed, new, "phase_updated", changes, {}

    return await _change_phases(ctx, project["_id"], actor, change)


async def delete_phase(
    ctx: ServiceContext,
    project: ProjectDoc,
    actor: Actor,
    phase_id: str,
    move_to: str | None,
) -> ProjectDoc:
    """Delete a phase; one that still holds tasks needs ``move_to`` (another phase)."""
    db = ctx.db

    async def change(current: ProjectDoc, phases: list[Document]) -> tuple[Any, ...]:
        old = next((p for p in phases if p["id"] == phase_id), None)
        if old is None:
            raise NotFound("phase not found")
        if move_to is not None:
            target = next((p for p in phases if p["id"] == move_to), None)
            if target is None or move_to == phase_id:
                raise ValidationFailed([("move_to", "must be another phase of this project")])
        elif await tasks.count_in_phase(db, current["_id"], phase_id):
            raise Conflict("the phase still has tasks: pass ?move_to=<phase id> to move them first")
        remaining = _renumber([p for p in phases if p["id"] != phase_id])
        return remaining, old, "phase_deleted", {}, {"move_to": move_to} if move_to else {}

    updated, _ = await _change_phases(ctx, project["_id"], actor, change)
    return updated


# --------------------------------------------------------------------------- progress


def hours_of(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def task_nodes(
    project: Mapping[str, object], docs: Sequence[Mapping[str, object]]
) -> list[TaskNode]:
    names = phase_names(project)
    return [
        TaskNode(
            id=str(doc["_id"]),
            ref=str(doc["plan_ref"]) if doc.get("plan_ref") else None,
            key=str(doc["key"]),
            status=TaskStatus(str(doc["status"])),
            estimate_hours=hours_of(doc.get("estimate_hours")),
            phase=names.get(str(doc.get("phase_id"))),
            blocked_by=tuple(tasks.id_list(doc, "blocked_by")),
        )
        for doc in docs
    ]


async def progress(db: AsyncDatabase[Document], project: ProjectDoc) -> dict[str, Any]:
    """The SPEC §7 roll-up; ``current_focus`` expanded into ``{id, key, plan_ref, title}``."""
    docs = await tasks.graph_of(db, str(project["_id"]))
    nodes = task_nodes(project, docs)
    result = compute_progress(nodes, [str(p["name"]) for p in ordered_phases(project)])
    body = result.to_dict()
    by_id = {str(doc["_id"]): doc for doc in docs}
    body["current_focus"] = [
        {
            "id": task_id,
            "key": by_id[task_id]["key"],
            "plan_ref": by_id[task_id].get("plan_ref"),
            "title": by_id[task_id]["title"],
        }
        for task_id in result.current_focus
    ]
    return body
