"""Plan documents → projects and tasks (one write unit, events in the outbox)."""

from __future__ import annotations

from pymongo.errors import DuplicateKeyError

from planboard.domain.errors import Conflict, ValidationFailed
from planboard.domain.keys import PROJECT_KEY_RE, derive_project_key, task_key
from planboard.domain.links import Dependency
from planboard.domain.model import PlanDocument
from planboard.events.envelope import Event
from planboard.services.activity import Actor, entry, record_change
from planboard.services.context import ServiceContext
from planboard.services.scheduling import DEFAULT_MODE
from planboard.store import projects, tasks
from planboard.store.documents import LinkDoc, PhaseDoc, ProjectDoc, TaskDoc
from planboard.store.ids import new_id, utcnow


def link_doc(link: Dependency) -> LinkDoc:
    """A typed dependency as stored in ``link_types``."""
    return {"type": link.type.value, "lag": link.lag.amount, "lag_unit": link.lag.unit.value}


def _task_documents(
    plan: PlanDocument, project: ProjectDoc, phase_ids: dict[str, str], first_seq: int
) -> list[TaskDoc]:
    now = project["created_at"]
    ids = {task.ref: new_id() for task in plan.tasks()}
    blocks: dict[str, list[str]] = {ref: [] for ref in ids}
    for task in plan.tasks():
        for dep in task.dependencies:
            blocks[dep].append(ids[task.ref])
    docs: list[TaskDoc] = []
    seq = first_seq
    for phase in plan.phases:
        for task in phase.tasks:
            docs.append(
                {
                    "_id": ids[task.ref],
                    "workspace_id": project["workspace_id"],
                    "project_id": project["_id"],
                    "seq": seq,
                    "key": task_key(project["key"], seq),
                    "plan_ref": task.ref,
                    "title": task.title,
                    "description": "",
                    "checklist": [{"text": c.text, "done": c.done} for c in task.checklist],
                    "status": task.status.value,
                    "complexity": task.complexity.value if task.complexity else None,
                    "estimate_hours": task.estimate_hours,
                    "phase_id": phase_ids[phase.name],
                    "assignee_id": None,
                    "labels": [],
                    "due_date": task.due.isoformat() if task.due else None,
                    "start_date": task.start.isoformat() if task.start else None,
                    "priority": task.priority.value if task.priority else None,
                    "milestone": task.milestone,
                    "blocked_by": [ids[d] for d in task.dependencies],
                    "link_types": {ids[link.predecessor]: link_doc(link) for link in task.links},
                    "blocks": blocks[task.ref],
                    "created_at": now,
                    "updated_at": now,
                    "version": 1,
                    "attachment_count": 0,  # store/quotas.py
                }
            )
            tasks.shadow(docs[-1])
            seq += 1
    return docs


async def import_plan(
    ctx: ServiceContext,
    *,
    workspace_id: str,
    plan: PlanDocument,
    key: str | None = None,
    actor_id: str | None = None,
    request_id: str | None = None,
) -> ProjectDoc:
    """Create a project with the plan's phases and tasks; returns the project."""
    db = ctx.db
    if key is not None:
        key = key.strip().upper()
    if key is not None and not PROJECT_KEY_RE.match(key):
        raise ValidationFailed(
            [("key", "2-10 upper-case letters or digits, starting with a letter")]
        )
    if key is None:
        key = derive_project_key(plan.name, await projects.keys_in_workspace(db, workspace_id))
    now = utcnow()
    phases: list[PhaseDoc] = [
        {"id": new_id(), "name": p.name, "estimate_hours": p.estimate_hours, "position": i}
        for i, p in enumerate(plan.phases)
    ]
    project: ProjectDoc = {
        "_id": new_id(),
        "workspace_id": workspace_id,
        "key": key,
        "name": plan.name,
        "name_sort": projects.sort_key_of_name(plan.name),
        "description": plan.description,
        "target_users": plan.target_users,
        "project_type": plan.project_type,
        "status": "active",
        "phases": phases,
        "phases_version": 1,
        "graph_version": 0,
        "start_date": None,
        "target_date": None,
        "calendar": None,
        "scheduling_mode": DEFAULT_MODE,
        "task_seq": len(plan.tasks()),
        "task_count": len(plan.tasks()),  # store/quotas.py
        "created_by": actor_id,
        "created_at": now,
        "updated_at": now,
        "version": 1,
    }
    projects.stamp_times(project)
    task_docs = _task_documents(plan, project, {p["name"]: str(p["id"]) for p in phases}, 1)
    events = [
        Event(
            type="project.created",
            key=project["_id"],
            workspace_id=workspace_id,
            data={"project_id": project["_id"], "key": key, "name": plan.name, "imported": True},
            actor_id=actor_id,
            request_id=request_id,
        )
    ]
    events += [
        Event(
            type="task.created",
            key=project["_id"],
            workspace_id=workspace_id,
            data={"project_id": project["_id"], "task_id": doc["_id"], "key": doc["key"]},
            actor_id=actor_id,
            request_id=request_id,
        )
        for doc in task_docs
    ]
    actor = Actor(actor_id, request_id)
    entries = [
        entry(
            project=project,
            actor=actor,
            entity="project",
            entity_id=project["_id"],
            action="imported",
            at=now,
            data={"key": key, "name": plan.name, "tasks": len(task_docs)},
        )
    ]
    entries += [
        entry(
            project=project,
            actor=actor,
            entity="task",
            entity_id=doc["_id"],
            action="created",
            at=now,
            task=doc,
            data={"title": doc["title"], "status": doc["status"], "plan_ref": doc["plan_ref"]},
        )
        for doc in task_docs
    ]
    try:
        async with ctx.write() as unit:
            session = unit.session
            await projects.insert(db, project, session=session)
            await tasks.insert_many(db, task_docs, session=session)
            await record_change(db, events=events, entries=entries, session=session)
    except DuplicateKeyError:
        raise Conflict(f"a project with key {key!r} already exists in this workspace") from None
    return project
