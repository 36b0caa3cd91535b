"""The ``tasks`` collection.

Edges are stored on both ends: ``blocked_by`` (ids this task waits for) and ``blocks``
(ids waiting for this task). Sort shadows (``due_sort``, ``estimate_sort``,
``title_sort``, ``created_ms``, ``updated_ms``) are never null, so keyset pagination
never compares against null (the dev server's null equality is unreliable); string
shadows carry a prefix so that a value looking like an ISO date is never compared as
a date, and times are integer milliseconds because the dev server compares datetimes
only to the second (docs/devstack.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from planboard.store.counting import count
from planboard.store.document import Document
from planboard.store.documents import LinkDoc, TaskDoc, TaskShadows
from planboard.store.pagination import keyset_page

TASKS = "tasks"

NO_DUE_DATE = "d:"  # sorts before every "d:YYYY-MM-DD"
NO_ESTIMATE = -1.0  # sorts before every real estimate (estimates are >= 0)

# The light projection DAG and progress computations read for a whole project.
GRAPH_FIELDS = {
    "_id": 1,
    "seq": 1,
    "key": 1,
    "plan_ref": 1,
    "title": 1,
    "status": 1,
    "estimate_hours": 1,
    "phase_id": 1,
    "blocked_by": 1,
}
# ... and what a schedule needs besides (services/scheduling.py).
SCHEDULE_FIELDS = {
    **GRAPH_FIELDS,
    "link_types": 1,
    "start_date": 1,
    "due_date": 1,
    "milestone": 1,
    "complexity": 1,
}


def id_list(doc: Mapping[str, object], field: str) -> list[str]:
    """A stored list of ids (``blocked_by``, ``blocks``) as strings; [] when absent."""
    value = doc.get(field)
    return [str(v) for v in value] if isinstance(value, list) else []


def millis(when: datetime) -> int:
    """Milliseconds since the epoch: the dev server compares datetimes only to the second,
    so keyset pagination by time uses these integers (docs/devstack.md)."""
    return int(when.timestamp() * 1000)


def stamped(now: datetime) -> Document:
    """``updated_at`` with its sortable shadow."""
    return {"updated_at": now, "updated_ms": millis(now)}


def sort_shadows(doc: Mapping[str, object]) -> TaskShadows:
    """The sort-shadow fields for a task's current values."""
    due = doc.get("due_date")
    estimate = doc.get("estimate_hours")
    shadows: TaskShadows = {
        "due_sort": f"d:{due}" if isinstance(due, str) else NO_DUE_DATE,
        "estimate_sort": float(estimate) if isinstance(estimate, int | float) else NO_ESTIMATE,
        "title_sort": "t:" + str(doc.get("title", "")).casefold(),
    }
    created, updated = doc.get("created_at"), doc.get("updated_at")
    if isinstance(created, datetime):
        shadows["created_ms"] = millis(created)
    if isinstance(updated, datetime):
        shadows["updated_ms"] = millis(updated)
    return shadows


def shadow(doc: TaskDoc) -> None:
    """Set ``doc``'s sort shadows from its current values."""
    shadows = sort_shadows(doc)
    doc["due_sort"] = shadows["due_sort"]
    doc["estimate_sort"] = shadows["estimate_sort"]
    doc["title_sort"] = shadows["title_sort"]
    if "created_ms" in shadows:
        doc["created_ms"] = shadows["created_ms"]
    if "updated_ms" in shadows:
        doc["updated_ms"] = shadows["updated_ms"]


def collection(db: AsyncDatabase[Document]) -> AsyncCollection[TaskDoc]:
    """The ``tasks`` collection, typed by its documents' shape."""
    return cast("AsyncCollection[TaskDoc]", db[TASKS])


async def insert_many(
    db: AsyncDatabase[Document],
    docs: Sequence[TaskDoc],
    *,
    session: AsyncClientSession | None = None,
) -> None:
    if docs:
        await collection(db).insert_many(docs, ordered=True, session=session)


async def in_project(db: AsyncDatabase[Document], project_id: str) -> list[TaskDoc]:
    cursor = collection(db).find({"project_id": project_id}).sort("seq", ASCENDING)
    return [doc async for doc in cursor]


async def schedule_of(db: AsyncDatabase[Document], project_id: str) -> list[Document]:
    """Every task of a project with what a schedule needs, in key order."""
    cursor = db[TASKS].find({"project_id": project_id}, SCHEDULE_FIELDS).sort("seq", ASCENDING)
    return [doc async for doc in cursor]


async def graph_of(db: AsyncDatabase[Document], project_id: str) -> list[Document]:
    """Every task of a project, light fields only, in key order."""
    cursor = db[TASKS].find({"project_id": project_id}, GRAPH_FIELDS).sort("seq", ASCENDING)
    return [doc async for doc in cursor]


async def get(db: AsyncDatabase[Document], task_id: str) -> TaskDoc | None:
    return await collection(db).find_one({"_id": task_id})


async def by_key(db: AsyncDatabase[Document], key: str, workspace_ids: list[str]) -> list[TaskDoc]:
    """Tasks with this human key in any of the workspaces (keys are unique per workspace)."""
    if not workspace_ids:
        return []
    cursor = collection(db).find({"key": key, "workspace_id": {"$in": workspace_ids}})
    return [doc async for doc in cursor]


async def many(
    db: AsyncDatabase[Document], task_ids: list[str], projection: Mapping[str, int] | None = None
) -> dict[str, TaskDoc]:
    """Tasks by id (only the ``projection``'s fields, when given)."""
    if not task_ids:
        return {}
    cursor = collection(db).find({"_id": {"$in": list(dict.fromkeys(task_ids))}}, projection)
    return {doc["_id"]: doc async for doc in cursor}


async def in_project_by_keys(
    db: AsyncDatabase[Document], project_id: str, keys: list[str]
) -> dict[str, TaskDoc]:
    if not keys:
        return {}
    cursor = collection(db).find({"project_id": project_id, "key": {"$in": keys}})
    return {doc["key"]: doc async for doc in cursor}


async def plan_refs_taken(
    db: AsyncDatabase[Document], project_id: str, refs: list[str]
) -> dict[str, str]:
    """``plan_ref -> task id`` for the refs already used in the project."""
    if not refs:
        return {}
    cursor = db[TASKS].find(
        {"project_id": project_id, "plan_ref": {"$in": refs}}, {"_id": 1, "plan_ref": 1}
    )
    return {str(doc["plan_ref"]): str(doc["_id"]) async for doc in cursor}


async def count_in_project(db: AsyncDatabase[Document], project_id: str) -> int:
    return await count(db[TASKS], {"project_id": project_id})


async def count_ids(db: AsyncDatabase[Document], task_ids: list[str]) -> int:
    """How many of these tasks exist."""
    return await count(db[TASKS], {"_id": {"$in": task_ids}})


async def counts_by_phase(db: AsyncDatabase[Document], project_id: str) -> dict[str, int]:
    """``phase_id -> number of tasks``: one ``$group`` key, ``$sum`` (compat-tested)."""
    pipeline: list[dict[str, Any]] = [
        {"$match": {"project_id": project_id}},
        {"$group": {"_id": "$phase_id", "n": {"$sum": 1}}},
    ]
    cursor = await db[TASKS].aggregate(pipeline)
    return {str(doc["_id"]): int(str(doc["n"])) async for doc in cursor if doc["_id"] is not None}


async def latest_update_by_project(
    db: AsyncDatabase[Document], project_ids: list[str]
) -> dict[str, int]:
    """``project_id -> updated_ms`` of its most recently written task (one ``$group`` key,
    ``$max``: compat-tested); projects without tasks are absent."""
    if not project_ids:
        return {}
    pipeline: list[dict[str, Any]] = [
        {"$match": {"project_id": {"$in": project_ids}}},
        {"$group": {"_id": "$project_id", "latest": {"$max": "$updated_ms"}}},
    ]
    cursor = await db[TASKS].aggregate(pipeline)
    out: dict[str, int] = {}
    async for doc in cursor:
        latest = doc.get("latest")
        if doc["_id"] is not None and isinstance(latest, int | float):
            out[str(doc["_id"])] = int(latest)
    return out


async def recently_updated(db: AsyncDatabase[Document], project_id: str, limit: int) -> list[str]:
    """Ids of the project's ``limit`` most recently written tasks, newest first."""
    if limit <= 0:
        return []
    cursor = db[TASKS].find(
        {"project_id": project_id},
        {"_id": 1},
        sort=[("updated_ms", DESCENDING), ("_id", DESCENDING)],
        limit=limit,
    )
    return [str(doc["_id"]) async for doc in cursor]


async def count_in_phase(db: AsyncDatabase[Document], project_id: str, phase_id: str) -> int:
    return await count(db[TASKS], {"project_id": project_id, "phase_id": phase_id})


async def page(
    db: AsyncDatabase[Document],
    query: dict[str, object],
    *,
    field: str,
    descending: bool,
    after: tuple[Any, str] | None,
    limit: int,
) -> tuple[list[TaskDoc], bool]:
    found, more = await keyset_page(
        db[TASKS], query, field=field, descending=descending, after=after, limit=limit
    )
    return cast("list[TaskDoc]", found), more


async def update_guarded(
    db: AsyncDatabase[Document],
    task_id: str,
    version: int,
    values: Document,
    *,
    unset: list[str] | None = None,
    session: AsyncClientSession | None = None,
) -> bool:
    """Apply ``values`` and bump ``version`` if the task is still at ``version``.

    ``update_one``, not ``find_one_and_update``: ``plan_ref`` is under a unique index
    and only ``update_one`` raises DuplicateKeyError on the dev server.
    """
    update: dict[str, Any] = {"$inc": {"version": 1}}
    if values:
        update["$set"] = values
    if unset:
        update["$unset"] = dict.fromkeys(unset, "")
    result = await db[TASKS].update_one(
        {"_id": task_id, "version": version}, update, session=session
    )
    return result.matched_count == 1


async def set_start(
    db: AsyncDatabase[Document],
    task_id: str,
    start_date: str,
    now: datetime,
    *,
    session: AsyncClientSession | None = None,
) -> None:
    """A rescheduled task's new start day (services/tasks.py: automatic projects)."""
    await db[TASKS].update_one(
        {"_id": task_id},
        {"$set": {"start_date": start_date, **stamped(now)}, "$inc": {"version": 1}},
        session=session,
    )


async def add_blocker(
    db: AsyncDatabase[Document],
    task_id: str,
    blocker_id: str,
    now: datetime,
    link: LinkDoc,
    *,
    session: AsyncClientSession | None = None,
) -> None:
    """Add ``blocker_id`` to ``blocked_by`` with the link's type and lag in ``link_types``
    (the caller holds the edge reservation)."""
    await db[TASKS].update_one(
        {"_id": task_id},
        {
            "$addToSet": {"blocked_by": blocker_id},
            "$inc": {"version": 1},
            "$set": {**stamped(now), f"link_types.{blocker_id}": dict(link)},
        },
        session=session,
    )


async def set_link(
    db: AsyncDatabase[Document],
    task_id: str,
    blocker_id: str,
    version: int,
    link: LinkDoc,
    now: datetime,
    *,
    session: AsyncClientSession | None = None,
) -> bool:
    """Change the type and lag of an existing link, if the task is still at ``version``."""
    result = await db[TASKS].update_one(
        {"_id": task_id, "version": version, "blocked_by": blocker_id},
        {
            "$inc": {"version": 1},
            "$set": {**stamped(now), f"link_types.{blocker_id}": dict(link)},
        },
        session=session,
    )
    return result.matched_count == 1


async def remove_blocker(
    db: AsyncDatabase[Document],
    task_id: str,
    blocker_id: str,
    now: datetime,
    *,
    version: int | None = None,
    session: AsyncClientSession | None = None,
) -> bool:
    guard: dict[str, object] = {"_id": task_id}
    if version is not None:
        guard["version"] = version
    result = await db[TASKS].update_one(
        guard,
        {"$pull": {"blocked_by": blocker_id}, "$inc": {"version": 1}, "$set": stamped(now)},
        session=session,
    )
    if result.matched_count != 1:
        return False
    # a separate write: the dev server drops an ``$unset`` that comes with these operators
    await db[TASKS].update_one(
        {"_id": task_id}, {"$unset": {f"link_types.{blocker_id}": ""}}, session=session
    )
    return True


async def add_blocks(
    db: AsyncDatabase[Document],
    blocker_id: str,
    task_id: str,
    now: datetime,
    *,
    session: AsyncClientSession | None = None,
) -> None:
    await db[TASKS].update_one(
        {"_id": blocker_id},
        {"$addToSet": {"blocks": task_id}, "$inc": {"version": 1}, "$set": stamped(now)},
        session=session,
    )


async def remove_blocks(
    db: AsyncDatabase[Document],
    blocker_id: str,
    task_id: str,
    now: datetime,
    *,
    session: AsyncClientSession | None = None,
) -> None:
    await db[TASKS].update_one(
        {"_id": blocker_id},
        {"$pull": {"blocks": task_id}, "$inc": {"version": 1}, "$set": stamped(now)},
        session=session,
    )


async def detach(
    db: AsyncDatabase[Document],
    project_id: str,
    task_id: str,
    now: datetime,
    *,
    session: AsyncClientSession | None = None,
) -> None:
    """Remove every edge to ``task_id`` from the other tasks of the project."""
    await db[TASKS].update_many(  # first: the query finds them by their blocked_by
        {"project_id": project_id, "blocked_by": task_id},
        {"$unset": {f"link_types.{task_id}": ""}},
        session=session,
    )
    for field in ("blocked_by", "blocks"):
        await db[TASKS].update_many(
            {"project_id": project_id, field: task_id},
            {"$pull": {field: task_id}, "$inc": {"version": 1}, "$set": stamped(now)},
            session=session,
        )


async def delete_guarded(
    db: AsyncDatabase[Document],
    task_id: str,
    version: int,
    *,
    session: AsyncClientSession | None = None,
) -> bool:
    result = await db[TASKS].delete_one({"_id": task_id, "version": version}, session=session)
    return result.deleted_count == 1


async def delete_ids(db: AsyncDatabase[Document], task_ids: list[str]) -> int:
    """Take back tasks whose create failed half-way (no transaction rolled them back)."""
    result = await db[TASKS].delete_many({"_id": {"$in": task_ids}})
    return result.deleted_count


async def delete_in_project(
    db: AsyncDatabase[Document], project_id: str, *, session: AsyncClientSession | None = None
) -> int:
    result = await db[TASKS].delete_many({"project_id": project_id}, session=session)
    return result.deleted_count


async def move_phase(
    db: AsyncDatabase[Document],
    project_id: str,
    from_phase: str,
    to_phase: str,
    now: datetime,
    *,
    session: AsyncClientSession | None = None,
) -> int:
    result = await db[TASKS].update_many(
        {"project_id": project_id, "phase_id": from_phase},
        {"$set": {"phase_id": to_phase, **stamped(now)}, "$inc": {"version": 1}},
        session=session,
    )
    return result.modified_count


async def ids_in_phase(db: AsyncDatabase[Document], project_id: str, phase_id: str) -> list[str]:
    cursor = db[TASKS].find({"project_id": project_id, "phase_id": phase_id}, {"_id": 1})
    return [str(doc["_id"]) async for doc in cursor]
