"""The ``projects`` collection (phases are embedded, ordered by ``position``).

Version counters on a project document:
- ``version``: the project's own fields (name, status, dates...), If-Match/ETag.
- ``phases_version``: the embedded ``phases`` array, replaced whole under this guard
  (the dev server cannot ``$push`` subdocuments or ``$set`` array-index paths).
- ``graph_version``: bumped with every dependency-edge write, so that two racing edge
  inserts that would close a cycle together cannot both succeed.

Documents written before migration 3 may lack the two newer counters; guards treat a
missing counter as 0 (``guard_value``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, cast

from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from planboard.store.document import Document
from planboard.store.documents import ProjectDoc, TimeShadows
from planboard.store.pagination import keyset_page

PROJECTS = "projects"


def sort_key_of_name(name: str) -> str:
    """A case-insensitive sort key; the ``n:`` prefix keeps a name that looks like an ISO
    date from being compared as a date by the dev server (docs/devstack.md)."""
    return "n:" + name.casefold()


def time_shadows(doc: Mapping[str, object]) -> TimeShadows:
    """``created_ms`` / ``updated_ms``: datetimes as sortable integers (the dev server
    compares datetimes only to the second, docs/devstack.md)."""
    out: TimeShadows = {}
    created, updated = doc.get("created_at"), doc.get("updated_at")
    if isinstance(created, datetime):
        out["created_ms"] = int(created.timestamp() * 1000)
    if isinstance(updated, datetime):
        out["updated_ms"] = int(updated.timestamp() * 1000)
    return out


def stamp_times(doc: ProjectDoc) -> None:
    """Set ``doc``'s time shadows from its times."""
    shadows = time_shadows(doc)
    if "created_ms" in shadows:
        doc["created_ms"] = shadows["created_ms"]
    if "updated_ms" in shadows:
        doc["updated_ms"] = shadows["updated_ms"]


def guard_value(doc: Mapping[str, object], field: str) -> dict[str, object]:
    """The filter that matches ``doc``'s current value of a counter (absent counts as 0)."""
    value = doc.get(field)
    if value is None:
        return {field: {"$exists": False}}
    return {field: value}


def counter(doc: Mapping[str, object], field: str) -> int:
    value = doc.get(field)
    return int(value) if isinstance(value, int) else 0


def collection(db: AsyncDatabase[Document]) -> AsyncCollection[ProjectDoc]:
    """The ``projects`` collection, typed by its documents' shape."""
    return cast("AsyncCollection[ProjectDoc]", db[PROJECTS])


async def insert(
    db: AsyncDatabase[Document], doc: ProjectDoc, *, session: AsyncClientSession | None = None
) -> None:
    await collection(db).insert_one(doc, session=session)


async def get(db: AsyncDatabase[Document], project_id: str) -> ProjectDoc | None:
    return await collection(db).find_one({"_id": project_id})


async def find_by_key(
    db: AsyncDatabase[Document], workspace_id: str, key: str
) -> ProjectDoc | None:
    return await collection(db).find_one({"workspace_id": workspace_id, "key": key})


async def activity_of(db: AsyncDatabase[Document], query: dict[str, object]) -> list[Document]:
    """``_id``, ``workspace_id`` and ``updated_ms`` of the matching projects."""
    cursor = db[PROJECTS].find(query, {"_id": 1, "workspace_id": 1, "updated_ms": 1})
    return [doc async for doc in cursor]


async def keys_in_workspace(db: AsyncDatabase[Document], workspace_id: str) -> set[str]:
    cursor = db[PROJECTS].find({"workspace_id": workspace_id}, {"key": 1})
    return {str(doc["key"]) async for doc in cursor}


async def page(
    db: AsyncDatabase[Document],
    query: dict[str, object],
    *,
    field: str,
    descending: bool,
    after: tuple[Any, str] | None,
    limit: int,
) -> tuple[list[ProjectDoc], bool]:
    found, more = await keyset_page(
        db[PROJECTS], query, field=field, descending=descending, after=after, limit=limit
    )
    return cast("list[ProjectDoc]", found), more


async def update_guarded(
    db: AsyncDatabase[Document],
    project_id: str,
    version: int,
    values: Document,
    *,
    session: AsyncClientSession | None = None,
) -> bool:
    """Set ``values`` and bump ``version`` if the project is still at ``version``."""
    result = await db[PROJECTS].update_one(
        {"_id": project_id, "version": version},
        {"$set": values, "$inc": {"version": 1}},
        session=session,
    )
    return result.matched_count == 1


async def set_phases(
    db: AsyncDatabase[Document],
    project: ProjectDoc,
    phases: list[Document],
    now: datetime,
    *,
    session: AsyncClientSession | None = None,
) -> bool:
    """Replace the whole phases array if nobody changed it since ``project`` was read."""
    result = await db[PROJECTS].update_one(
        {"_id": project["_id"], **guard_value(project, "phases_version")},
        {
            "$set": {
                "phases": phases,
                "phases_version": counter(project, "phases_version") + 1,
                "phases_updated_at": now,
            }
        },
        session=session,
    )
    return result.matched_count == 1


def live_pending(project: Mapping[str, object], since: datetime) -> list[Document]:
    """The edge reservations (``graph_pending``) made after ``since``; older ones belong to
    requests that died between reserving and writing, and are ignored."""
    pending: Any = project.get("graph_pending") or []
    return [dict(p) for p in pending if isinstance(p, dict) and p.get("at") and p["at"] > since]


async def reserve_edge(
    db: AsyncDatabase[Document],
    project: ProjectDoc,
    pending: list[Document],
    *,
    session: AsyncClientSession | None = None,
) -> bool:
    """Compare-and-increment ``graph_version`` from the value read in ``project`` and
    publish ``pending`` (the live reservations plus the new one) in the same write."""
    result = await db[PROJECTS].update_one(
        {"_id": project["_id"], **guard_value(project, "graph_version")},
        {
            "$set": {
                "graph_version": counter(project, "graph_version") + 1,
                "graph_pending": pending,
            }
        },
        session=session,
    )
    return result.matched_count == 1


async def release_edge(
    db: AsyncDatabase[Document],
    project_id: str,
    reservation_id: str,
    *,
    session: AsyncClientSession | None = None,
) -> None:
    """Drop a reservation once its edge is written (or abandoned); bumping the version
    makes any writer that read the reservation re-read the graph."""
    await db[PROJECTS].update_one(
        {"_id": project_id},
        {"$pull": {"graph_pending": {"id": reservation_id}}, "$inc": {"graph_version": 1}},
        session=session,
    )


async def touch_graph(
    db: AsyncDatabase[Document],
    project_id: str,
    *,
    tasks_removed: int = 0,
    session: AsyncClientSession | None = None,
) -> None:
    """Bump ``graph_version`` unconditionally (a task left the graph): racing edge inserts
    that read the old value replay and see the change. ``tasks_removed`` deleted tasks
    are given back from ``task_count`` in the same write (store/quotas.py)."""
    change: dict[str, int] = {"graph_version": 1}
    if tasks_removed:
        change["task_count"] = -tasks_removed
    await db[PROJECTS].update_one({"_id": project_id}, {"$inc": change}, session=session)


async def delete_guarded(
    db: AsyncDatabase[Document],
    project_id: str,
    version: int,
    *,
    session: AsyncClientSession | None = None,
) -> bool:
    result = await db[PROJECTS].delete_one({"_id": project_id, "version": version}, session=session)
    return result.deleted_count == 1


async def allocate_task_seqs(
    db: AsyncDatabase[Document],
    project_id: str,
    count: int,
    *,
    max_tasks: int,
    session: AsyncClientSession | None = None,
) -> int | None:
    """Reserve ``count`` task numbers and count ``count`` more tasks, atomically, if the
    project then holds at most ``max_tasks`` (``task_count``, store/quotas.py); returns the
    first number, or None when the project is full (or gone). Numbers are never reused;
    the count is given back (``quotas.PROJECT_TASKS``) when the tasks are not written or
    are deleted."""
    doc = await db[PROJECTS].find_one_and_update(
        {"_id": project_id, "task_count": {"$lte": max_tasks - count}},
        {"$inc": {"task_seq": count, "task_count": count}},
        projection={"task_seq": 1},
        return_document=ReturnDocument.AFTER,
        session=session,
    )
    if doc is None:
        return None
    return int(str(doc["task_seq"])) - count + 1


async def release_task_seqs(
    db: AsyncDatabase[Document], project_id: str, first: int, count: int
) -> bool:
    """Give back numbers reserved by :func:`allocate_task_seqs` for tasks never written,
    if no later reservation came after them (one that did keeps its numbers: a gap)."""
    result = await db[PROJECTS].update_one(
        {"_id": project_id, "task_seq": first + count - 1}, {"$inc": {"task_seq": -count}}
    )
    return result.modified_count == 1


async def set_forecast_days(
    db: AsyncDatabase[Document],
    project_id: str,
    days: dict[str, str],
    *,
    session: AsyncClientSession | None = None,
) -> None:
    """The P50/P85/P95 finish days of the project's latest forecast (no version change:
    the project's representation does not show them)."""
    await db["projects"].update_one(
        {"_id": project_id}, {"$set": {"forecast_days": days}}, session=session
    )
