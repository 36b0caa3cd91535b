"""Versioned, idempotent schema migrations (collections and indexes).

Each migration runs once, in order, under a lease so that two ``planboard migrate``
runs (two pods starting) never apply the same step twice. Every step is written to
be safe to re-run anyway.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from planboard.store import locks
from planboard.store.document import Document
from planboard.store.ids import utcnow

log = logging.getLogger(__name__)

MIGRATIONS_COLLECTION = "schema_migrations"
LEASE = "migrations"

Step = Callable[[AsyncDatabase[Document]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    apply: Step


async def ensure_collections(db: AsyncDatabase[Document], names: list[str]) -> None:
    existing = set(await db.list_collection_names())
    for name in names:
        if name not in existing:
            await db.create_collection(name)


async def _core(db: AsyncDatabase[Document]) -> None:
    await ensure_collections(
        db, ["outbox", "processed_events", "locks", "workspaces", "projects", "tasks"]
    )
    await db.outbox.create_indexes(
        [
            IndexModel([("published", ASCENDING), ("occurred_at", ASCENDING)], name="pending"),
        ]
    )
    # No TTL index: the dev server purges expired documents only lazily (and FerretDB
    # not at all, docs/devstack.md); the scheduler's cleanup removes old markers.
    await db.processed_events.create_indexes(
        [IndexModel([("processed_at", ASCENDING)], name="processed_at")]
    )
    await db.projects.create_indexes(
        [
            IndexModel(
                [("workspace_id", ASCENDING), ("key", ASCENDING)], name="workspace_key", unique=True
            ),
            IndexModel([("workspace_id", ASCENDING), ("created_at", DESCENDING)], name="recent"),
        ]
    )
    await db.tasks.create_indexes(
        [
            IndexModel(
                [("project_id", ASCENDING), ("seq", ASCENDING)], name="project_seq", unique=True
            ),
            IndexModel(
                [("workspace_id", ASCENDING), ("key", ASCENDING)], name="workspace_key", unique=True
            ),
            IndexModel([("project_id", ASCENDING), ("status", ASCENDING)], name="project_status"),
            IndexModel([("blocked_by", ASCENDING)], name="blocked_by"),
        ]
    )


async def _identity(db: AsyncDatabase[Document]) -> None:
    await ensure_collections(
        db,
        [
            "users",
            "sessions",
            "refresh_tokens",
            "action_tokens",
            "personal_access_tokens",
            "memberships",
            "invitations",
            "mail_queue",
        ],
    )
    await db.users.create_indexes([IndexModel([("email", ASCENDING)], name="email", unique=True)])
    await db.sessions.create_indexes([IndexModel([("user_id", ASCENDING)], name="user")])
    await db.refresh_tokens.create_indexes(
        [IndexModel([("session_id", ASCENDING)], name="session")]
    )
    await db.action_tokens.create_indexes(
        [
            IndexModel([("user_id", ASCENDING), ("kind", ASCENDING)], name="user_kind"),
            IndexModel([("expires_at", ASCENDING)], name="expires"),
        ]
    )
    await db.personal_access_tokens.create_indexes(
        [IndexModel([("user_id", ASCENDING)], name="user")]
    )
    await db.memberships.create_indexes(
        [
            IndexModel(
                [("workspace_id", ASCENDING), ("user_id", ASCENDING)], name="member", unique=True
            ),
            IndexModel([("user_id", ASCENDING)], name="user"),
        ]
    )
    await db.invitations.create_indexes(
        [IndexModel([("workspace_id", ASCENDING), ("status", ASCENDING)], name="workspace")]
    )


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "core collections and indexes", _core),
    Migration(2, "identity: users, sessions, tokens, memberships, invitations, mail", _identity),
)


async def applied_versions(db: AsyncDatabase[Document]) -> set[int]:
    return {int(str(doc["_id"])) async for doc in db[MIGRATIONS_COLLECTION].find({}, {"_id": 1})}


async def pending_migrations(db: AsyncDatabase[Document]) -> list[Migration]:
    done = await applied_versions(db)
    return [m for m in MIGRATIONS if m.version not in done]


class MigrationLocked(RuntimeError):
    """Another process holds the migration lease."""


async def migrate(db: AsyncDatabase[Document], *, wait_s: float = 0.0) -> list[Migration]:
    """Apply pending migrations in order; returns the ones applied now.

    With ``wait_s``, a run that finds another one in progress waits for it (then
    usually has nothing left to do) instead of failing: pods may start together.
    """
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    deadline = asyncio.get_running_loop().time() + wait_s
    while not await locks.acquire(db, LEASE, owner, timedelta(minutes=10)):
        if asyncio.get_running_loop().time() >= deadline:
            raise MigrationLocked("another process is migrating; try again when it has finished")
        await asyncio.sleep(0.25)
    applied: list[Migration] = []
    try:
        for migration in await pending_migrations(db):
            log.info("applying migration %d: %s", migration.version, migration.name)
            await migration.apply(db)
            await db[MIGRATIONS_COLLECTION].update_one(
                {"_id": migration.version},
                {"$set": {"name": migration.name, "applied_at": utcnow()}},
                upsert=True,
            )
            applied.append(migration)
    finally:
        await locks.release(db, LEASE, owner)
    return applied
