"""Outgoing mail waiting for the notifications worker.

Mail bodies may carry secrets (reset links), so they never travel through Kafka:
the event names the queued message, the worker reads it here, sends it once, and
blanks the body.
"""

from __future__ import annotations

from datetime import datetime

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from planboard.store.document import Document

MAIL_QUEUE = "mail_queue"


async def insert(
    db: AsyncDatabase[Document], doc: Document, *, session: AsyncClientSession | None = None
) -> None:
    await db[MAIL_QUEUE].insert_one(doc, session=session)


async def get(db: AsyncDatabase[Document], mail_id: str) -> Document | None:
    return await db[MAIL_QUEUE].find_one({"_id": mail_id})


async def mark_sent(db: AsyncDatabase[Document], mail_id: str, now: datetime) -> None:
    await db[MAIL_QUEUE].update_one(
        {"_id": mail_id}, {"$set": {"sent": True, "sent_at": now, "text": ""}}
    )
