"""Dependency edges between tasks of one project (a DAG, both directions stored).

Adding an edge is checked against the whole project graph under the project's
``graph_version`` guard:

1. read the project (``graph_version`` g and the live edge reservations), then the
   graph; the reservations count as edges;
2. refuse a cycle (409 naming it) or a duplicate;
3. compare-and-increment ``graph_version`` from g while publishing a reservation of
   the new edge in the same document write: of two racing inserts that together
   would close a cycle only one increment succeeds, the other replays from 1 and sees
   the first edge (reserved or written);
4. write the edge on both tasks, then drop the reservation (which bumps the version
   again, so nobody keeps deciding on a stale view).

Edges are only ever written after a successful reservation, so no reader acts on an
edge that is later undone. A request that dies between 3 and 4 leaves a reservation
that is ignored after RESERVATION_TTL.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from planboard.domain.dag import find_cycle_if_added
from planboard.domain.errors import (
    Conflict,
    CycleDetected,
    NotFound,
    ValidationFailed,
    VersionMismatch,
)
from planboard.domain.links import Lag, LagUnit, LinkType
from planboard.services.activity import Actor, Retry, entry, event, record_change, with_retries
from planboard.services.context import ServiceContext
from planboard.services.projects import OBJECT_ID_RE
from planboard.store import projects, tasks
from planboard.store.document import Document
from planboard.store.documents import LinkDoc, ProjectDoc, TaskDoc
from planboard.store.ids import new_id, utcnow

FIELD = "blocked_by"
RESERVATION_TTL = timedelta(seconds=30)
FS_NO_LAG: LinkDoc = {"type": "FS", "lag": 0.0, "lag_unit": "h"}


def link_doc(type_: str = "FS", lag: float = 0.0, lag_unit: str = "h") -> LinkDoc:
    """A link's type and lag as stored, through the domain's rules (``Lag``: at most
    10,000, four decimals, a zero lag is ``0 h``); a bad value is a 422 naming it."""
    try:
        link_type, unit = LinkType(type_), LagUnit(lag_unit)
    except ValueError:
        raise ValidationFailed([("type", "use FS, SS, FF or SF; lag_unit h or d")]) from None
    amount = Lag(lag, unit)
    return {"type": link_type.value, "lag": amount.amount, "lag_unit": amount.unit.value}


async def resolve_blocker(
    db: AsyncDatabase[Document], project: Mapping[str, object], ref: str, field: str = FIELD
) -> TaskDoc:
    """The task named by id or key, which must belong to ``project`` (422 otherwise: the
    same answer for other projects and other workspaces, so nothing leaks)."""
    if OBJECT_ID_RE.match(ref):
        found = await tasks.get(db, ref)
    else:
        found = (await tasks.in_project_by_keys(db, str(project["_id"]), [ref.upper()])).get(
            ref.upper()
        )
    if found is None or found["project_id"] != project["_id"]:
        raise ValidationFailed(
            [(field, "not a task of this project (dependencies stay within one project)")]
        )
    return found


async def add_dependency(
    ctx: ServiceContext,
    task: TaskDoc,
    project: ProjectDoc,
    actor: Actor,
    blocker_ref: str,
    link: LinkDoc = FS_NO_LAG,
) -> TaskDoc:
    """``task`` becomes blocked by the task ``blocker_ref`` with the link's type and lag
    (FS without lag by default); returns the updated task."""
    db = ctx.db
    blocker = await resolve_blocker(db, project, blocker_ref)
    task_id, blocker_id = task["_id"], blocker["_id"]
    if task_id == blocker_id:
        raise ValidationFailed([(FIELD, "a task cannot depend on itself")])
    project_id = project["_id"]

    async def attempt() -> TaskDoc:
        guard = await projects.get(db, project_id)  # graph_version before the graph
        current = await tasks.get(db, task_id)
        if guard is None or current is None:
            raise NotFound("task not found")
        if await tasks.get(db, blocker_id) is None:
            raise ValidationFailed([(FIELD, "that task was just deleted")])
        now = utcnow()
        pending = projects.live_pending(guard, now - RESERVATION_TTL)
        edges = {
            str(d["_id"]): tasks.id_list(d, "blocked_by")
            for d in await tasks.graph_of(db, project_id)
        }
        for held in pending:
            edges.setdefault(str(held["task"]), []).append(str(held["blocker"]))
        if blocker_id in edges.get(task_id, []):
            raise Conflict(f"{current['key']} is already blocked by {blocker['key']}")
        cycle = find_cycle_if_added(edges, task_id, blocker_id)
        if cycle is not None:
            raise await _cycle_error(db, project_id, cycle)
        reservation: Document = {"id": new_id(), "task": task_id, "blocker": blocker_id, "at": now}
        try:
            async with ctx.write(project_id) as unit:
                session = unit.session
                if not await projects.reserve_edge(
                    db, guard, [*pending, reservation], session=session
                ):
                    raise Retry
                await tasks.add_blocker(db, task_id, blocker_id, now, link, session=session)
                await tasks.add_blocks(db, blocker_id, task_id, now, session=session)
                await _record(
                    db, project, actor, "dependency_added", current, blocker, now, session, link
                )
                await projects.release_edge(db, project_id, str(reservation["id"]), session=session)
        except Retry:
            raise
        except BaseException:
            # without a transaction the reservation would linger until it expires
            await projects.release_edge(db, project_id, str(reservation["id"]))
            raise
        updated = await tasks.get(db, task_id)
        if updated is None:
            raise NotFound("task not found")
        return updated

    return await with_retries(attempt, tries=60)


async def _cycle_error(
    db: AsyncDatabase[Document], project_id: str, cycle: list[str]
) -> CycleDetected:
    keys = {str(d["_id"]): str(d["key"]) for d in await tasks.graph_of(db, project_id)}
    named = [keys.get(node, node) for node in cycle]
    return CycleDetected(
        named,
        "this dependency would close a cycle: "
        + " -> ".join(named)
        + " (each task is blocked by the next)",
    )


async def remove_dependency(
    ctx: ServiceContext,
    task: TaskDoc,
    project: ProjectDoc,
    actor: Actor,
    blocker_ref: str,
) -> None:
    db = ctx.db
    blocker = await resolve_blocker(db, project, blocker_ref, field="blocker")
    task_id, blocker_id = task["_id"], blocker["_id"]
    if blocker_id not in tasks.id_list(task, "blocked_by"):
        raise NotFound(f"{task['key']} is not blocked by {blocker['key']}")
    now = utcnow()
    async with ctx.write(project["_id"]) as unit:
        session = unit.session
        await tasks.remove_blocker(db, task_id, blocker_id, now, session=session)
        await tasks.remove_blocks(db, blocker_id, task_id, now, session=session)
        await _record(db, project, actor, "dependency_removed", task, blocker, now, session)


async def _record(
    db: AsyncDatabase[Document],
    project: ProjectDoc,
    actor: Actor,
    action: str,
    task: TaskDoc,
    blocker: TaskDoc,
    now: datetime,
    session: AsyncClientSession | None,
    link: LinkDoc | None = None,
) -> None:
    typed = dict(link) if link is not None else {}
    await record_change(
        db,
        events=[
            event(
                f"task.{action}",
                project,
                actor,
                task_id=task["_id"],
                key=task["key"],
                blocked_by=blocker["_id"],
                blocked_by_key=blocker["key"],
                **typed,
            )
        ],
        entries=[
            entry(
                project=project,
                actor=actor,
                entity="task",
                entity_id=task["_id"],
                action=action,
                at=now,
                task=task,
                data={"blocked_by": blocker["key"], "blocked_by_id": blocker["_id"], **typed},
            ),
            entry(
                project=project,
                actor=actor,
                entity="task",
                entity_id=blocker["_id"],
                action=action.replace("dependency", "dependent"),
                at=now,
                task=blocker,
                data={"blocks": task["key"], "blocks_id": task["_id"]},
            ),
        ],
        session=session,
    )


async def update_dependency(
    ctx: ServiceContext,
    task: TaskDoc,
    project: ProjectDoc,
    actor: Actor,
    blocker_ref: str,
    link: LinkDoc,
    expected_version: int | None,
) -> TaskDoc:
    """Change the type and lag of the link from ``task`` to ``blocker_ref`` (same graph:
    no cycle can appear); under the task's version guard."""
    db = ctx.db
    blocker = await resolve_blocker(db, project, blocker_ref, field="blocker")
    current = await tasks.get(db, task["_id"])
    if current is None:
        raise NotFound("task not found")
    if blocker["_id"] not in tasks.id_list(current, "blocked_by"):
        raise NotFound(f"{current['key']} is not blocked by {blocker['key']}")
    version = int(str(current["version"]))
    if expected_version is not None and expected_version != version:
        raise VersionMismatch("the task changed meanwhile; read it again")
    now = utcnow()
    async with ctx.write(project["_id"]) as unit:
        session = unit.session
        if not await tasks.set_link(
            db, current["_id"], blocker["_id"], version, link, now, session=session
        ):
            raise VersionMismatch("the task changed meanwhile; read it again")
        await _record(
            db, project, actor, "dependency_changed", current, blocker, now, session, link
        )
    updated = await tasks.get(db, task["_id"])
    if updated is None:
        raise NotFound("task not found")
    return updated


async def dependencies_of(db: AsyncDatabase[Document], task: TaskDoc) -> dict[str, list[Document]]:
    """``blocked_by`` and ``blocks`` summaries ``{id, key, title, status}`` in stored order."""
    blocked_by = tasks.id_list(task, "blocked_by")
    blocks = tasks.id_list(task, "blocks")
    found = await tasks.many(db, blocked_by + blocks, {"_id": 1, "key": 1, "title": 1, "status": 1})

    links = task.get("link_types") or {}

    def summary(ids: list[str], typed: bool) -> list[Document]:
        return [
            {
                "id": found[i]["_id"],
                "key": found[i]["key"],
                "title": found[i]["title"],
                "status": found[i]["status"],
                **(dict(links.get(i) or FS_NO_LAG) if typed else {}),
            }
            for i in ids
            if i in found
        ]

    return {"blocked_by": summary(blocked_by, True), "blocks": summary(blocks, False)}
