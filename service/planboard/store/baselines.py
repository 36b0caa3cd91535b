"""The ``baselines`` collection: frozen schedules of a project (issue 19).

A baseline keeps each task's early start and finish and the project's start and finish
when it was taken (domain/baseline.py). A project holds at most ``MAX_PER_PROJECT``; the
count is taken on the project (``baseline_count``) in one conditional update before the
baseline is written, so the limit holds under concurrent requests (store/quotas.py's
rule; a project written before issue 19 has no count yet, which counts as 0).
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from planboard.store.document import Document
from planboard.store.pagination import Position, keyset_page

BASELINES = "baselines"
MAX_PER_PROJECT = 50
COUNT = "baseline_count"
SUMMARY = {"tasks": 0}


async def take_place(db: AsyncDatabase[Document], project_id: str) -> bool:
    """Count one more baseline on the project unless it holds ``MAX_PER_PROJECT``."""
    # a project from before issue 19 starts at 0 (a racing twin finds it set and skips)
    await db["projects"].update_one(
        {"_id": project_id, COUNT: {"$exists": False}}, {"$set": {COUNT: 0}}
    )
    result = await db["projects"].update_one(
        {"_id": project_id, COUNT: {"$lte": MAX_PER_PROJECT - 1}}, {"$inc": {COUNT: 1}}
    )
    return result.modified_count == 1


async def give_back(db: AsyncDatabase[Document], project_id: str) -> None:
    await db["projects"].update_one({"_id": project_id, COUNT: {"$gte": 1}}, {"$inc": {COUNT: -1}})


async def insert(
    db: AsyncDatabase[Document], doc: Document, *, session: AsyncClientSession | None = None
) -> None:
    await db[BASELINES].insert_one(doc, session=session)


async def get(db: AsyncDatabase[Document], project_id: str, baseline_id: str) -> Document | None:
    return await db[BASELINES].find_one({"_id": baseline_id, "project_id": project_id})


async def page(
    db: AsyncDatabase[Document], project_id: str, *, after: Position | None, limit: int
) -> tuple[list[Document], bool]:
    """Newest first, without the task dates."""
    return await keyset_page(
        db[BASELINES],
        {"project_id": project_id},
        field="_id",
        descending=True,
        after=after,
        limit=limit,
        projection=SUMMARY,
    )


async def delete_of_project(
    db: AsyncDatabase[Document], project_id: str, *, session: AsyncClientSession | None = None
) -> Any:
    return await db[BASELINES].delete_many({"project_id": project_id}, session=session)
