"""Periodic housekeeping: forget what has served its purpose."""

from __future__ import annotations

import logging
from datetime import timedelta

from pymongo.asynchronous.database import AsyncDatabase

from planboard.events import outbox
from planboard.store import action_tokens
from planboard.store.document import Document
from planboard.store.ids import utcnow

log = logging.getLogger(__name__)

OUTBOX_RETENTION = timedelta(days=3)  # quarantined and kept published events
PROCESSED_RETENTION = timedelta(days=7)  # longer than any redelivery can take
SENT_MAIL_RETENTION = timedelta(days=7)
TICK_RETENTION = timedelta(days=7)


async def cleanup(db: AsyncDatabase[Document]) -> dict[str, int]:
    """Delete expired tokens, old markers, sent mail and old outbox documents (quarantined,
    or published and kept)."""
    now = utcnow()
    removed = {
        "outbox": await outbox.purge_published(db, OUTBOX_RETENTION),
        "action_tokens": await action_tokens.purge_expired(db, now),
        "processed_events": (
            await db.processed_events.delete_many(
                {"processed_at": {"$lt": now - PROCESSED_RETENTION}}
            )
        ).deleted_count,
        "mail_queue": (
            await db.mail_queue.delete_many(
                {"sent": True, "sent_at": {"$lt": now - SENT_MAIL_RETENTION}}
            )
        ).deleted_count,
        "refresh_tokens": (
            await db.refresh_tokens.delete_many({"expires_at": {"$lt": now}})
        ).deleted_count,
        "scheduler_ticks": (
            await db.scheduler_ticks.delete_many({"tick": {"$lt": now - TICK_RETENTION}})
        ).deleted_count,
    }
    log.info("cleanup done", extra={"removed": removed})
    return removed
