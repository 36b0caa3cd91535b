"""Tasks: resolve (id or human key), create (one or a batch), update, delete, bulk status,
list with filters, and the derived ``ready`` / ``blocked_by_open`` of each task."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError

from planboard.domain.access import Role
from planboard.domain.calendar import WorkTimeOutOfRange
from planboard.domain.dag import is_ready
from planboard.domain.errors import Conflict, NotFound, ValidationFailed, VersionMismatch
from planboard.domain.keys import parse_task_key, task_key
from planboard.domain.model import TaskStatus
from planboard.domain.schedule import SchedulingMode
from planboard.services import scheduling
from planboard.services.access import Access, Caller, authorize
from planboard.services.activity import (
    Actor,
    Changes,
    Retry,
    changes_out,
    entry,
    event,
    record_change,
    with_retries,
)
from planboard.services.context import ServiceContext
from planboard.services.projects import (
    OBJECT_ID_RE,
    check_id,
    check_version,
    phase_names,
    resolve_phase,
    task_nodes,
)
from planboard.store import (
    attachments,
    comments,
    memberships,
    projects,
    quotas,
    tasks,
)
from planboard.store.document import Document
from planboard.store.documents import ProjectDoc, TaskDoc
from planboard.store.ids import new_id, utcnow

log = logging.getLogger(__name__)

MAX_TASKS_PER_PROJECT = 10_000
DUPLICATE_KEY = 11000  # MongoDB's error code
MAX_BATCH = 500
PLAN_REF_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,49}$")

# Stored fields a change can touch (``phase_id`` is shown to people as ``phase``).
TASK_FIELDS = [
    "title",
    "description",
    "checklist",
    "status",
    "complexity",
    "estimate_hours",
    "assignee_id",
    "labels",
    "due_date",
    "phase_id",
    "plan_ref",
    "start_date",
    "priority",
    "milestone",
]
# The fields whose combination ``date_problems`` checks.
DATE_FIELDS = ("start_date", "due_date", "milestone", "estimate_hours")
TASK_SORTS = {
    "key": "seq",
    "due_date": "due_sort",
    "updated_at": "updated_ms",
    "created_at": "created_ms",
    "estimate_hours": "estimate_sort",
    "title": "title_sort",
}


@dataclass(frozen=True, slots=True)
class TaskView:
    """A stored task with what is derived at read time."""

    doc: TaskDoc
    phase: str | None
    blocked_by_open: list[str]
    ready: bool


# --------------------------------------------------------------------------- access


async def task_for(
    db: AsyncDatabase[Document],
    caller: Caller,
    ref: str,
    *,
    scope: str,
    role: Role = Role.VIEWER,
    field: str = "task",
) -> tuple[TaskDoc, ProjectDoc, Access]:
    """A task by id or human key (resolved in the caller's workspaces), its project and
    the caller's access; 404 for unknown tasks and for other workspaces' tasks."""
    caller.require_scope(scope)
    task = await _find(db, caller, ref, field)
    project = await projects.get(db, task["project_id"])
    if project is None:
        raise NotFound("task not found")
    access = await authorize(
        db, caller, project["workspace_id"], scope=scope, role=role, what="task"
    )
    return task, project, access


async def task_id_of(db: AsyncDatabase[Document], caller: Caller, ref: str) -> str:
    """The id of the task ``ref`` names: an id as it is (nothing is read: a read by id is
    authorized by what it finds), a key resolved in the caller's workspaces (404 when none
    of theirs has it)."""
    if OBJECT_ID_RE.match(ref):
        return ref
    return (await _find(db, caller, ref, "task"))["_id"]


async def _find(db: AsyncDatabase[Document], caller: Caller, ref: str, field: str) -> TaskDoc:
    if OBJECT_ID_RE.match(ref):
        task = await tasks.get(db, ref)
        if task is None:
            raise NotFound("task not found")
        return task
    if parse_task_key(ref.upper()) is None:
        raise ValidationFailed([(field, "not a task id or key (such as PB-12)")])
    mine = [m["workspace_id"] for m in await memberships.of_user(db, caller.user_id)]
    found = await tasks.by_key(db, ref.upper(), mine)
    if not found:
        raise NotFound("task not found")
    if len(found) > 1:
        raise Conflict(f"{ref.upper()} names a task in several of your workspaces; use its id")
    return found[0]


async def find_in_project(
    db: AsyncDatabase[Document], project: ProjectDoc, refs: Sequence[str], field: str
) -> list[TaskDoc]:
    """Tasks of ``project`` by id or key; anything else is a 422 naming ``field.<index>``."""
    ids = [ref for ref in refs if OBJECT_ID_RE.match(ref)]
    keys = [ref.upper() for ref in refs if not OBJECT_ID_RE.match(ref)]
    by_id = await tasks.many(db, ids)
    by_key = await tasks.in_project_by_keys(db, project["_id"], keys)
    found: list[TaskDoc] = []
    errors: list[tuple[str, str]] = []
    for index, ref in enumerate(refs):
        doc = by_id.get(ref) if OBJECT_ID_RE.match(ref) else by_key.get(ref.upper())
        if doc is None or doc["project_id"] != project["_id"]:
            errors.append((f"{field}.{index}", "not a task of this project"))
        else:
            found.append(doc)
    if errors:
        raise ValidationFailed(errors)
    return found


def date_problems(
    task: Mapping[str, Any], changed: Sequence[str], prefix: str = ""
) -> list[tuple[str, str]]:
    """What is wrong with a task's dates and milestone flag taken together (the plan
    format's rules, docs/scheduling.md): start on or before due; a milestone takes no time
    (no estimate but 0) and, with both dates, they are one day. Each problem names the
    field of ``changed`` that made it (the first of the pair when both changed)."""

    def name(*candidates: str) -> str:
        return prefix + next((c for c in candidates if c in changed), candidates[0])

    problems: list[tuple[str, str]] = []
    start, due = task.get("start_date"), task.get("due_date")
    if start is not None and due is not None and start > due:
        problems.append((name("start_date", "due_date"), "the start must be on or before due_date"))
    if task.get("milestone"):
        estimate = task.get("estimate_hours")
        if estimate:
            problems.append(
                (
                    name("milestone", "estimate_hours"),
                    "a milestone takes no time: its estimate must be unset or 0",
                )
            )
        if start is not None and due is not None and start != due:
            problems.append(
                (
                    name("milestone", "start_date", "due_date"),
                    "a milestone is one day: start_date and due_date must be the same",
                )
            )
    return problems


# --------------------------------------------------------------------------- views


async def views(
    db: AsyncDatabase[Document], project: Mapping[str, object], docs: Sequence[TaskDoc]
) -> list[TaskView]:
    """Derive phase names, open blockers and readiness (one query for all blockers)."""
    names = phase_names(project)
    blocker_ids = [str(b) for doc in docs for b in tasks.id_list(doc, "blocked_by")]
    blockers = await tasks.many(db, blocker_ids, {"status": 1})
    out = []
    for doc in docs:
        open_ids = [
            b
            for b in dict.fromkeys(tasks.id_list(doc, "blocked_by"))
            if b in blockers and TaskStatus(str(blockers[b]["status"])).is_open
        ]
        out.append(
            TaskView(
                doc=doc,
                phase=names.get(str(doc.get("phase_id"))),
                blocked_by_open=open_ids,
                ready=TaskStatus(doc["status"]).is_open and not open_ids,
            )
        )
    return out


# --------------------------------------------------------------------------- create


async def _members(db: AsyncDatabase[Document], workspace_id: str) -> set[str]:
    return {m["user_id"] for m in await memberships.of_workspace(db, workspace_id)}


def _resolve_fields(
    project: ProjectDoc,
    item: Mapping[str, Any],
    members: set[str],
    prefix: str,
    errors: list[tuple[str, str]],
) -> Document:
    """Input fields → stored fields (phase name/id → ``phase_id``); errors are collected."""
    out: Document = {k: v for k, v in item.items() if k not in ("phase", "version")}
    if "phase" in item:
        ref = item["phase"]
        if ref is None:
            out["phase_id"] = None
        else:
            phase = resolve_phase(project, ref)
            if phase is None:
                errors.append((f"{prefix}phase", "no phase with this id or name in the project"))
            else:
                out["phase_id"] = phase["id"]
    assignee = item.get("assignee_id")
    if assignee is not None:
        if not OBJECT_ID_RE.match(assignee):
            errors.append((f"{prefix}assignee_id", "not a valid id"))
        elif assignee not in members:
            errors.append((f"{prefix}assignee_id", "not a member of this workspace"))
    if "labels" in item:
        out["labels"] = list(dict.fromkeys(item["labels"]))
    return out


async def create_tasks(
    ctx: ServiceContext,
    project: ProjectDoc,
    actor: Actor,
    items: Sequence[Mapping[str, Any]],
    *,
    prefix: str = "",
) -> list[TaskDoc]:
    """Create tasks all-or-nothing: every item is checked before anything is written.

    ``prefix`` names items in errors (``"tasks."`` gives ``tasks.3.phase``).
    """
    db = ctx.db
    project_id = project["_id"]
    assigns = any(item.get("assignee_id") for item in items)
    members = await _members(db, project["workspace_id"]) if assigns else set()
    errors: list[tuple[str, str]] = []
    resolved = []
    refs: dict[str, int] = {}
    for index, item in enumerate(items):
        where = f"{prefix}{index}." if prefix else ""
        resolved.append(_resolve_fields(project, item, members, where, errors))
        errors += date_problems(item, list(item), where)
        ref = item.get("plan_ref")
        if ref is not None:
            if ref in refs:
                errors.append((f"{where}plan_ref", f"repeats item {refs[ref]}'s plan_ref"))
            refs.setdefault(ref, index)
    taken = await tasks.plan_refs_taken(db, project_id, list(refs))
    for ref, index in refs.items():
        if ref in taken:
            where = f"{prefix}{index}." if prefix else ""
            errors.append((f"{where}plan_ref", "already used by another task of the project"))
    if errors:
        raise ValidationFailed(errors)
    now = utcnow()
    # Numbers and the project's task_count in one conditional write (store/quotas.py): the
    # limit holds however many creates run at once.
    first = await projects.allocate_task_seqs(
        db, project_id, len(items), max_tasks=MAX_TASKS_PER_PROJECT
    )
    if first is None:
        if await projects.get(db, project_id) is None:
            raise NotFound("project not found")
        field = prefix.rstrip(".") or "title"
        raise ValidationFailed([(field, f"a project holds at most {MAX_TASKS_PER_PROJECT} tasks")])
    docs = [
        new_task_document(project, first + index, values, actor, now)
        for index, values in enumerate(resolved)
    ]
    try:
        await _write_created(ctx, project, actor, docs, now)
    except BaseException as error:
        if not quotas.outcome_unknown(error):
            await _give_back(db, project_id, first, docs)
        raise
    return docs


async def _give_back(
    db: AsyncDatabase[Document], project_id: str, first: int, docs: Sequence[TaskDoc]
) -> None:
    """A create none of whose tasks stayed written gives back its place in the project's
    task count and, while no later reservation came after them, its task numbers (so a
    refused create takes no key). If a task was written (no transaction: an ordered insert
    stops at its first failure) both stay taken: the count is then too high, never too low."""
    try:
        if await tasks.count_ids(db, [d["_id"] for d in docs]) == 0:
            await quotas.PROJECT_TASKS.give_back(db, project_id, len(docs))
            await projects.release_task_seqs(db, project_id, first, len(docs))
    except PyMongoError:
        log.warning("could not give back the reservation of a failed create", exc_info=True)


async def _write_created(
    ctx: ServiceContext,
    project: ProjectDoc,
    actor: Actor,
    docs: list[TaskDoc],
    now: datetime,
) -> None:
    db = ctx.db
    names = phase_names(project)
    try:
        async with ctx.write(project["_id"]) as unit:
            session = unit.session
            await tasks.insert_many(db, docs, session=session)
            await record_change(
                db,
                events=[
                    event("task.created", project, actor, task_id=d["_id"], key=d["key"])
                    for d in docs
                ],
                entries=[
                    entry(
                        project=project,
                        actor=actor,
                        entity="task",
                        entity_id=d["_id"],
                        action="created",
                        at=now,
                        task=d,
                        data={
                            "title": d["title"],
                            "status": d["status"],
                            "phase": names.get(str(d.get("phase_id"))),
                        },
                    )
                    for d in docs
                ],
                session=session,
            )
    except (DuplicateKeyError, BulkWriteError) as error:
        if isinstance(error, BulkWriteError) and not _only_duplicates(error):
            raise
        # A concurrent request took one of the plan refs after the check above. Without a
        # transaction the tasks before the duplicate were written: take them back, so the
        # create stays all-or-nothing (and the project's task_count exact).
        await tasks.delete_ids(db, [d["_id"] for d in docs])
        raise Conflict("a plan_ref of this request was just taken by another task") from None


def _only_duplicates(error: BulkWriteError) -> bool:
    return all(e.get("code") == DUPLICATE_KEY for e in error.details.get("writeErrors", []))


def new_task_document(
    project: ProjectDoc, seq: int, values: Mapping[str, Any], actor: Actor, now: Any
) -> TaskDoc:
    doc: TaskDoc = {
        "_id": new_id(),
        "workspace_id": project["workspace_id"],
        "project_id": project["_id"],
        "seq": seq,
        "key": task_key(project["key"], seq),
        "title": values["title"],
        "description": values.get("description") or "",
        "checklist": [dict(item) for item in values.get("checklist") or []],
        "status": values.get("status") or TaskStatus.TODO.value,
        "complexity": values.get("complexity"),
        "estimate_hours": values.get("estimate_hours"),
        "phase_id": values.get("phase_id"),
        "assignee_id": values.get("assignee_id"),
        "labels": list(values.get("labels") or []),
        "due_date": values.get("due_date"),
        "start_date": values.get("start_date"),
        "priority": values.get("priority"),
        "milestone": bool(values.get("milestone")),
        "blocked_by": [],
        "link_types": {},
        "blocks": [],
        "created_by": actor.user_id,
        "created_at": now,
        "updated_at": now,
        "version": 1,
        "attachment_count": 0,  # store/quotas.py
    }
    if values.get("plan_ref") is not None:
        doc["plan_ref"] = values["plan_ref"]
    tasks.shadow(doc)
    return doc


# --------------------------------------------------------------------------- update


def _shown(changes: Changes, names: Mapping[str, str]) -> Changes:
    """``phase_id`` changes shown as phase names under ``phase``."""
    if "phase_id" not in changes:
        return changes
    old, new = changes["phase_id"]
    shown = {k: v for k, v in changes.items() if k != "phase_id"}
    shown["phase"] = (names.get(str(old)) if old else None, names.get(str(new)) if new else None)
    return shown


async def update_task(
    ctx: ServiceContext,
    task_id: str,
    project: ProjectDoc,
    actor: Actor,
    values: Mapping[str, Any],
    expected_version: int | None,
    *,
    loaded: TaskDoc | None = None,
) -> TaskDoc:
    """Change fields under the task's version guard (412 on a stale ``expected_version``).

    ``loaded`` is the task as the caller just read it: the first attempt starts from it
    (the version guard catches a change in between), a retry reads the task again.
    """
    db = ctx.db
    members = await _members(db, project["workspace_id"]) if "assignee_id" in values else set()
    errors: list[tuple[str, str]] = []
    resolved = _resolve_fields(project, values, members, "", errors)
    if errors:
        raise ValidationFailed(errors)
    if resolved.get("plan_ref") is not None:
        taken = await tasks.plan_refs_taken(db, project["_id"], [str(resolved["plan_ref"])])
        if taken.get(str(resolved["plan_ref"]), task_id) != task_id:
            raise ValidationFailed([("plan_ref", "already used by another task of the project")])

    fresh = [loaded] if loaded is not None and loaded["_id"] == task_id else []

    async def attempt() -> TaskDoc:
        current = fresh.pop() if fresh else await tasks.get(db, task_id)
        if current is None:
            raise NotFound("task not found")
        check_version(current, expected_version)
        merged = {**current, **resolved}
        if any(field in resolved for field in DATE_FIELDS):
            problems = date_problems(merged, list(resolved))
            if problems:
                raise ValidationFailed(problems)
        changes = {
            field: (current.get(field), merged.get(field))
            for field in TASK_FIELDS
            if field in resolved and current.get(field) != merged.get(field)
        }
        if not changes:
            return current
        return await _write_changes(ctx, project, actor, current, changes, expected_version)

    return await with_retries(attempt)


async def _write_changes(
    ctx: ServiceContext,
    project: ProjectDoc,
    actor: Actor,
    current: TaskDoc,
    changes: Changes,
    expected_version: int | None,
) -> TaskDoc:
    db = ctx.db
    now = utcnow()
    values: Document = {
        f: new for f, (_, new) in changes.items() if not (f == "plan_ref" and new is None)
    }
    unset = ["plan_ref"] if "plan_ref" in changes and changes["plan_ref"][1] is None else []
    after = {**current, **values}
    for field in unset:
        after.pop(field, None)
    after["updated_at"] = now
    values["updated_at"] = now
    values.update(tasks.sort_shadows(after))
    shown = _shown(changes, phase_names(project))
    version = int(str(current["version"]))
    moved = await _rescheduled(ctx, project, current, after, changes)
    try:
        async with ctx.write(project["_id"]) as unit:
            session = unit.session
            ok = await tasks.update_guarded(
                db, current["_id"], version, values, unset=unset, session=session
            )
            if not ok:
                if expected_version is not None:
                    raise VersionMismatch("the task changed meanwhile; read it again")
                raise Retry
            await _write_rescheduled(ctx, project, actor, current, moved, now, session)
            action = "status_changed" if set(changes) == {"status"} else "updated"
            await record_change(
                db,
                events=[
                    event(
                        "task.updated",
                        project,
                        actor,
                        task_id=current["_id"],
                        key=current["key"],
                        changes=changes_out(shown),
                    )
                ],
                entries=[
                    entry(
                        project=project,
                        actor=actor,
                        entity="task",
                        entity_id=current["_id"],
                        action=action,
                        at=now,
                        task=current,
                        changes=shown,
                    )
                ],
                session=session,
            )
    except DuplicateKeyError:
        raise ValidationFailed(
            [("plan_ref", "already used by another task of the project")]
        ) from None
    after.update(values)
    after["version"] = version + 1
    return cast(TaskDoc, after)


# --------------------------------------------------------------------------- rescheduling

# What a change must touch to move other tasks of an automatic project.
SCHEDULE_INPUTS = frozenset({"start_date", "estimate_hours", "status", "milestone"})


@dataclass(frozen=True, slots=True)
class Moved:
    """A dependent whose dates a change moved: its stored start day and computed dates."""

    doc: Document
    start_date: str
    start: tuple[datetime, datetime]
    finish: tuple[datetime, datetime]


@dataclass(frozen=True, slots=True)
class Exhausted:
    """A task whose total slack the change brought from above zero to zero (or less)."""

    doc: Document
    slack: tuple[float, float]


@dataclass(frozen=True, slots=True)
class Reschedule:
    moved: list[Moved]
    exhausted: list[Exhausted]


async def _rescheduled(
    ctx: ServiceContext,
    project: ProjectDoc,
    current: TaskDoc,
    after: Mapping[str, Any],
    changes: Changes,
) -> Reschedule:
    """In an automatic project, the other tasks whose early dates the change moves and
    those whose slack it used up (the schedule before and after it, docs/scheduling.md
    "The API"); nothing otherwise."""
    if scheduling.mode_of(project) is not SchedulingMode.AUTOMATIC:
        return Reschedule([], [])
    if not SCHEDULE_INPUTS & set(changes):
        return Reschedule([], [])
    db = ctx.db
    calendar = (await scheduling.effective_calendar(db, project)).calendar
    docs = await tasks.schedule_of(db, project["_id"])
    changed = [{**d, **after} if d["_id"] == current["_id"] else d for d in docs]
    try:
        before = (await asyncio.to_thread(scheduling.compute, project, docs, calendar)).by_id()
        later = (await asyncio.to_thread(scheduling.compute, project, changed, calendar)).by_id()
    except WorkTimeOutOfRange as error:
        raise ValidationFailed(
            [(sorted(SCHEDULE_INPUTS & set(changes))[0], f"the schedule would break: {error}")]
        ) from None
    moved, exhausted = [], []
    for doc in docs:
        task_id = str(doc["_id"])
        old, new = before.get(task_id), later.get(task_id)
        if task_id == current["_id"] or old is None or new is None:
            continue
        if old.total_slack_hours > 0 and new.critical:
            exhausted.append(Exhausted(doc, (old.total_slack_hours, new.total_slack_hours)))
        if (old.early_start, old.early_finish) == (new.early_start, new.early_finish):
            continue
        day = new.early_start.astimezone(calendar.zone).date().isoformat()
        moved.append(
            Moved(
                doc=doc,
                start_date=day,
                start=(old.early_start, new.early_start),
                finish=(old.early_finish, new.early_finish),
            )
        )
    return Reschedule(moved, exhausted)


async def _write_rescheduled(
    ctx: ServiceContext,
    project: ProjectDoc,
    actor: Actor,
    cause: TaskDoc,
    found: Reschedule,
    now: datetime,
    session: Any,
) -> None:
    """Store the moved tasks' new start days and record ``task.rescheduled`` for each,
    and ``task.slack_exhausted`` for each task whose slack the change used up."""
    moved = found.moved
    for item in moved:
        if item.doc.get("start_date") == item.start_date:
            continue
        # a start past the due date (or off a milestone's day) is not stored: the task
        # keeps consistent dates and the schedule shows the slip
        if date_problems({**item.doc, "start_date": item.start_date}, ["start_date"]):
            continue
        await tasks.set_start(ctx.db, str(item.doc["_id"]), item.start_date, now, session=session)
    events = [
        event(
            "task.rescheduled",
            project,
            actor,
            task_id=item.doc["_id"],
            key=item.doc["key"],
            start_date=[item.doc.get("start_date"), item.start_date],
            early_start=[item.start[0], item.start[1]],
            early_finish=[item.finish[0], item.finish[1]],
            cause_task_id=cause["_id"],
            cause_key=cause["key"],
        )
        for item in moved
    ]
    events += [
        event(
            "task.slack_exhausted",
            project,
            actor,
            task_id=item.doc["_id"],
            key=item.doc["key"],
            total_slack_hours=[round(item.slack[0], 4), round(item.slack[1], 4)],
            cause_task_id=cause["_id"],
            cause_key=cause["key"],
        )
        for item in found.exhausted
    ]
    if not events:
        return
    await record_change(
        ctx.db,
        events=events,
        entries=[
            entry(
                project=project,
                actor=actor,
                entity="task",
                entity_id=str(item.doc["_id"]),
                action="rescheduled",
                at=now,
                task=item.doc,
                changes={"start_date": (item.doc.get("start_date"), item.start_date)},
                data={"cause": cause["key"]},
            )
            for item in moved
        ],
        session=session,
    )


async def bulk_status(
    ctx: ServiceContext,
    project: ProjectDoc,
    actor: Actor,
    targets: Sequence[TaskDoc],
    status: str,
) -> list[TaskDoc]:
    """Set one status on many tasks (each under its own version guard)."""
    updated = []
    for target in {t["_id"]: t for t in targets}.values():
        updated.append(
            await update_task(ctx, target["_id"], project, actor, {"status": status}, None)
        )
    return updated


# --------------------------------------------------------------------------- delete


async def delete_task(
    ctx: ServiceContext,
    task: TaskDoc,
    project: ProjectDoc,
    actor: Actor,
    expected_version: int | None,
) -> None:
    """Delete the task (guarded), its edges on both sides and its comments."""
    db = ctx.db
    current = await tasks.get(db, task["_id"])
    if current is None:
        raise NotFound("task not found")
    check_version(current, expected_version)
    now = utcnow()
    task_id = current["_id"]
    async with ctx.write(project["_id"]) as unit:
        session = unit.session
        if not await tasks.delete_guarded(
            db, task_id, int(str(current["version"])), session=session
        ):
            raise VersionMismatch("the task changed meanwhile; read it again")
        await tasks.detach(db, project["_id"], task_id, now, session=session)
        await projects.touch_graph(db, project["_id"], tasks_removed=1, session=session)
        await comments.delete_of_task(db, task_id, session=session)
        await attachments.mark_deleted_where(db, {"task_id": task_id}, now, session=session)
        await record_change(
            db,
            events=[event("task.deleted", project, actor, task_id=task_id, key=current["key"])],
            entries=[
                entry(
                    project=project,
                    actor=actor,
                    entity="task",
                    entity_id=task_id,
                    action="deleted",
                    at=now,
                    task=current,
                    data={"title": current["title"]},
                )
            ],
            session=session,
        )


# --------------------------------------------------------------------------- lists


@dataclass(frozen=True, slots=True)
class TaskFilters:
    statuses: tuple[str, ...] = ()
    phase: str | None = None
    assignee: str | None = None  # a user id (the API resolves `me`)
    labels: tuple[str, ...] = ()
    due_before: str | None = None
    due_after: str | None = None
    ready: bool | None = None


async def list_tasks(
    db: AsyncDatabase[Document],
    project: ProjectDoc,
    filters: TaskFilters,
    *,
    sort: str,
    after: tuple[Any, str] | None,
    limit: int,
) -> tuple[list[TaskDoc], bool]:
    project_id = project["_id"]
    query: dict[str, object] = {"project_id": project_id}
    if filters.statuses:
        query["status"] = {"$in": list(filters.statuses)}
    if filters.phase is not None:
        phase = resolve_phase(project, filters.phase)
        if phase is None:
            raise ValidationFailed([("phase", "no phase with this id or name in the project")])
        query["phase_id"] = phase["id"]
    if filters.assignee is not None:
        query["assignee_id"] = check_id(filters.assignee, "assignee")
    if filters.labels:
        query["labels"] = {"$in": list(filters.labels)}
    due: dict[str, str] = {}
    if filters.due_after is not None:
        due["$gte"] = filters.due_after
    if filters.due_before is not None:
        due["$lte"] = filters.due_before
    if due:
        query["due_date"] = due
    if filters.ready is not None:
        graph = task_nodes(project, await tasks.graph_of(db, project_id))
        by_id = {node.id: node for node in graph}
        ready_ids = [node.id for node in graph if is_ready(node, by_id)]
        query["_id"] = {"$in" if filters.ready else "$nin": ready_ids}
    descending = sort.startswith("-")
    return await tasks.page(
        db,
        query,
        field=TASK_SORTS[sort.lstrip("-")],
        descending=descending,
        after=after,
        limit=limit,
    )
