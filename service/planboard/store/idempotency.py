"""The ``idempotency_keys`` collection: the first response to a keyed POST.

A record is inserted as ``running`` before the handler runs (the ``_id`` makes a
concurrent duplicate fail), then completed with the response, or deleted when the
request failed. ``expires_at`` (24 h) is honoured by the code; a TTL index purges
old records where the server sweeps them.
"""

from __future__ import annotations

from datetime import datetime

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from planboard.store.document import Document

IDEMPOTENCY = "idempotency_keys"


async def claim(db: AsyncDatabase[Document], doc: Document) -> bool:
    """Insert a ``running`` record; False when the key is already taken."""
    try:
        await db[IDEMPOTENCY].insert_one(doc)
    except DuplicateKeyError:
        return False
    return True


async def get(db: AsyncDatabase[Document], record_id: str) -> Document | None:
    return await db[IDEMPOTENCY].find_one({"_id": record_id})


async def take_over(db: AsyncDatabase[Document], record: Document, values: Document) -> bool:
    """Replace an expired or abandoned record, if nobody else did first."""
    result = await db[IDEMPOTENCY].update_one(
        {"_id": record["_id"], "claim": record["claim"]}, {"$set": values}
    )
    return result.matched_count == 1


async def complete(
    db: AsyncDatabase[Document], record_id: str, claim: str, response: Document, now: datetime
) -> None:
    await db[IDEMPOTENCY].update_one(
        {"_id": record_id, "claim": claim},
        {"$set": {"state": "done", "response": response, "completed_at": now}},
    )


async def release(db: AsyncDatabase[Document], record_id: str, claim: str) -> None:
    await db[IDEMPOTENCY].delete_one({"_id": record_id, "claim": claim})
