"""Long-running work (exports, large imports): state in ``jobs``, results in GridFS."""

from __future__ import annotations

from datetime import datetime

from gridfs import AsyncGridFSBucket
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from planboard.store.document import Document

JOBS = "jobs"
RESULTS_BUCKET = "job_results"


async def insert(db: AsyncDatabase[Document], doc: Document) -> None:
    await db[JOBS].insert_one(doc)


async def get(db: AsyncDatabase[Document], job_id: str) -> Document | None:
    return await db[JOBS].find_one({"_id": job_id})


async def start(
    db: AsyncDatabase[Document], job_id: str, owner: str, now: datetime
) -> Document | None:
    """queued → running, once: a redelivered job event finds nothing to start."""
    return await db[JOBS].find_one_and_update(
        {"_id": job_id, "status": "queued"},
        {"$set": {"status": "running", "started_at": now, "updated_at": now, "runner": owner}},
        return_document=ReturnDocument.AFTER,
    )


async def set_progress(
    db: AsyncDatabase[Document], job_id: str, progress: int, now: datetime
) -> None:
    await db[JOBS].update_one(
        {"_id": job_id, "status": "running"}, {"$set": {"progress": progress, "updated_at": now}}
    )


async def finish(
    db: AsyncDatabase[Document],
    job_id: str,
    now: datetime,
    *,
    result: Document | None = None,
    error: str | None = None,
) -> None:
    await db[JOBS].update_one(
        {"_id": job_id},
        {
            "$set": {
                "status": "failed" if error else "succeeded",
                "progress": 100,
                "result": result,
                "error": error,
                "finished_at": now,
                "updated_at": now,
            }
        },
    )


def results(db: AsyncDatabase[Document]) -> AsyncGridFSBucket:
    return AsyncGridFSBucket(db, bucket_name=RESULTS_BUCKET)
