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
from datetime import datetime, timedelta

from pymongo import ASCENDING, DESCENDING, TEXT, IndexModel, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from planboard.store import locks, quotas
from planboard.store.attachments import COUNTED
from planboard.store.document import Document
from planboard.store.ids import utcnow
from planboard.store.search import tokens_of

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


async def _planning(db: AsyncDatabase[Document]) -> None:
    """Projects, phases, tasks, dependencies, comments, activity, idempotency keys."""
    await ensure_collections(db, ["comments", "activity", "idempotency_keys"])
    await db.projects.create_indexes(
        [
            IndexModel([("workspace_id", ASCENDING), ("name_sort", ASCENDING)], name="by_name"),
            IndexModel([("workspace_id", ASCENDING), ("updated_ms", ASCENDING)], name="by_updated"),
            IndexModel([("workspace_id", ASCENDING), ("created_ms", ASCENDING)], name="by_created"),
            IndexModel([("workspace_id", ASCENDING), ("status", ASCENDING)], name="by_status"),
        ]
    )
    await db.tasks.create_indexes(
        [
            IndexModel(
                [("project_id", ASCENDING), ("plan_ref", ASCENDING)],
                name="project_plan_ref",
                unique=True,
                # plan_ref is optional: never stored as null, absent when unset
                partialFilterExpression={"plan_ref": {"$exists": True}},
            ),
            IndexModel([("project_id", ASCENDING), ("due_sort", ASCENDING)], name="by_due"),
            IndexModel(
                [("project_id", ASCENDING), ("estimate_sort", ASCENDING)], name="by_estimate"
            ),
            IndexModel([("project_id", ASCENDING), ("updated_ms", ASCENDING)], name="by_updated"),
            IndexModel([("project_id", ASCENDING), ("created_ms", ASCENDING)], name="by_created"),
            IndexModel([("project_id", ASCENDING), ("title_sort", ASCENDING)], name="by_title"),
            IndexModel([("project_id", ASCENDING), ("phase_id", ASCENDING)], name="by_phase"),
            IndexModel([("project_id", ASCENDING), ("assignee_id", ASCENDING)], name="by_assignee"),
            IndexModel([("project_id", ASCENDING), ("labels", ASCENDING)], name="by_label"),
            IndexModel([("workspace_id", ASCENDING), ("key", ASCENDING)], name="by_key"),
        ]
    )
    await db.comments.create_indexes(
        [
            IndexModel([("task_id", ASCENDING)], name="task"),
            IndexModel([("project_id", ASCENDING)], name="project"),
        ]
    )
    await db.activity.create_indexes(
        [
            IndexModel([("project_id", ASCENDING)], name="project"),
            IndexModel([("task_id", ASCENDING)], name="task"),
        ]
    )
    await db.idempotency_keys.create_indexes(
        [IndexModel([("expires_at", ASCENDING)], name="expires", expireAfterSeconds=0)]
    )
    await _backfill_planning_fields(db)


def _ms(doc: Document) -> Document:
    """Datetimes as sortable integer milliseconds (the dev server compares datetimes only
    to the second)."""
    out: Document = {}
    for field in ("created_at", "updated_at"):
        value = doc.get(field)
        if isinstance(value, datetime):
            out[field.replace("_at", "_ms")] = int(value.timestamp() * 1000)
    return out


async def _backfill_planning_fields(db: AsyncDatabase[Document]) -> None:
    """Counters and sort shadows for documents written before this migration."""
    async for project in db.projects.find({"name_sort": {"$exists": False}}):
        await db.projects.update_one(
            {"_id": project["_id"]},
            {"$set": {"name_sort": "n:" + str(project.get("name", "")).casefold(), **_ms(project)}},
        )
    for counter_field in ("graph_version", "phases_version"):
        await db.projects.update_many(
            {counter_field: {"$exists": False}}, {"$set": {counter_field: 0}}
        )
    async for task in db.tasks.find({"due_sort": {"$exists": False}}):
        due, estimate = task.get("due_date"), task.get("estimate_hours")
        await db.tasks.update_one(
            {"_id": task["_id"]},
            {
                "$set": {
                    "due_sort": f"d:{due}" if isinstance(due, str) else "d:",
                    "estimate_sort": (
                        float(estimate) if isinstance(estimate, int | float) else -1.0
                    ),
                    "title_sort": "t:" + str(task.get("title", "")).casefold(),
                    **_ms(task),
                }
            },
        )


async def _webhooks(db: AsyncDatabase[Document]) -> None:
    """Webhooks and their delivery log (store/webhooks.py)."""
    await ensure_collections(db, ["webhooks", "webhook_deliveries"])
    await db.webhooks.create_indexes(
        [IndexModel([("workspace_id", ASCENDING), ("active", ASCENDING)], name="workspace_active")]
    )
    await db.webhook_deliveries.create_indexes(
        [
            # one delivery per (webhook, event): a redelivered event creates no second one
            IndexModel([("dedupe_key", ASCENDING)], name="dedupe_key", unique=True),
            IndexModel([("status", ASCENDING), ("next_attempt_ms", ASCENDING)], name="due"),
            IndexModel([("status", ASCENDING), ("lease_until_ms", ASCENDING)], name="leases"),
            IndexModel([("webhook_id", ASCENDING)], name="webhook"),
            IndexModel([("workspace_id", ASCENDING)], name="workspace"),
            IndexModel([("created_at", ASCENDING)], name="created"),
        ]
    )


async def _notifications(db: AsyncDatabase[Document]) -> None:
    await ensure_collections(db, ["notifications", "scheduler_ticks"])
    await db.notifications.create_indexes(
        [
            IndexModel([("user_id", ASCENDING), ("seq", DESCENDING)], name="user_recent"),
            IndexModel([("user_id", ASCENDING), ("read", ASCENDING)], name="user_unread"),
        ]
    )


async def _jobs(db: AsyncDatabase[Document]) -> None:
    await ensure_collections(db, ["jobs"])
    await db.jobs.create_indexes(
        [IndexModel([("workspace_id", ASCENDING), ("created_at", DESCENDING)], name="workspace")]
    )


async def _search(db: AsyncDatabase[Document]) -> None:
    await ensure_collections(db, ["search_index"])
    await db.search_index.create_indexes(
        [
            IndexModel([("workspace_id", ASCENDING), ("prefixes", ASCENDING)], name="prefixes"),
            IndexModel([("workspace_id", ASCENDING), ("updated_ms", DESCENDING)], name="recent"),
            IndexModel([("project_id", ASCENDING)], name="project"),
            IndexModel([("task_id", ASCENDING)], name="task"),
        ]
    )


async def _attachments(db: AsyncDatabase[Document]) -> None:
    """Attachment metadata (store/attachments.py); content is in GridFS or S3."""
    await ensure_collections(db, ["attachments"])
    await db.attachments.create_indexes(
        [
            IndexModel([("task_id", ASCENDING), ("state", ASCENDING)], name="task"),
            IndexModel([("project_id", ASCENDING)], name="project"),
            IndexModel([("workspace_id", ASCENDING)], name="workspace"),
            IndexModel([("state", ASCENDING), ("created_at", ASCENDING)], name="state_created"),
            IndexModel([("created_at", DESCENDING)], name="created"),
        ]
    )


def _strings(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else []


async def _search_text(db: AsyncDatabase[Document]) -> None:
    """Search by a text index: each entry's ``prefixes`` array becomes its ``tokens`` text
    (store/search.py ``tokens_of``). ``$all`` over the array had no index support on the
    dev server (every query read the whole collection); ``$text`` is answered from the
    index by MongoDB and by the dev server's SQLite FTS5 alike."""
    await db.search_index.create_index(
        [("tokens", TEXT)], name="tokens", default_language="none", language_override="_lang"
    )
    batch: list[UpdateOne] = []
    async for doc in db.search_index.find(
        {"prefixes": {"$exists": True}}, {"prefixes": 1, "terms": 1}
    ):
        terms = [str(t) for t in _strings(doc.get("terms"))]
        prefixes = [str(p) for p in _strings(doc.get("prefixes"))]
        batch.append(
            UpdateOne(
                {"_id": doc["_id"]},
                {"$set": {"tokens": tokens_of(terms, prefixes)}, "$unset": {"prefixes": ""}},
            )
        )
        if len(batch) >= 500:
            await db.search_index.bulk_write(batch, ordered=False)
            batch = []
    if batch:
        await db.search_index.bulk_write(batch, ordered=False)
    async for ix in await db.search_index.list_indexes():
        if "prefixes" in dict(ix.get("key") or {}):  # by key: the dev server renames indexes
            await db.search_index.drop_index(ix["name"])


async def _revoked_sessions(db: AsyncDatabase[Document]) -> None:
    """An index for the revocation denylist's reload after Redis lost its data: only
    revoked sessions carry ``revoked_at``, so the index holds those alone. (The denylist
    is gone since sessions are checked in MongoDB on a near-cache miss; the index stays,
    small, as this migration's history.)"""
    await db.sessions.create_index(
        [("revoked_at", ASCENDING)],
        name="revoked_at",
        partialFilterExpression={"revoked_at": {"$exists": True}},
    )


async def _visible_notifications(db: AsyncDatabase[Document]) -> None:
    """A user's visible notifications newest first (store/notifications.py ``page``
    filters out the hidden ones in the query, before its limit)."""
    await db.notifications.create_index(
        [("user_id", ASCENDING), ("hidden", ASCENDING), ("seq", DESCENDING)], name="user_visible"
    )


# What each counter of store/quotas.py counts: (counter, children, their parent field,
# which children are live).
COUNTED_CHILDREN: tuple[tuple[quotas.Counter, str, str, Document], ...] = (
    (quotas.WORKSPACE_OWNERS, "memberships", "workspace_id", {"role": "owner"}),
    (quotas.WORKSPACE_WEBHOOKS, "webhooks", "workspace_id", {}),
    (quotas.WORKSPACE_INVITATIONS, "invitations", "workspace_id", {"status": "pending"}),
    (quotas.PROJECT_TASKS, "tasks", "project_id", {}),
    (quotas.TASK_ATTACHMENTS, "attachments", "task_id", {"state": {"$in": list(COUNTED)}}),
    (quotas.USER_TOKENS, "personal_access_tokens", "user_id", {"revoked": False}),
)


async def _quota_counters(db: AsyncDatabase[Document]) -> None:
    """Initialise the counters of store/quotas.py from the data: owners, webhooks and
    pending invitations per workspace, tasks per project, attachments per task, tokens
    per user. Parents without children get 0 (a missing counter refuses every write)."""
    for counter, children, parent_field, live in COUNTED_CHILDREN:
        cursor = await db[children].aggregate(
            [{"$match": live}, {"$group": {"_id": f"${parent_field}", "n": {"$sum": 1}}}]
        )
        counts = {row["_id"]: int(str(row["n"])) async for row in cursor}
        await db[counter.collection].update_many({}, {"$set": {counter.field: 0}})
        updates = [
            UpdateOne({"_id": parent}, {"$set": {counter.field: n}}) for parent, n in counts.items()
        ]
        for start in range(0, len(updates), 500):
            await db[counter.collection].bulk_write(updates[start : start + 500], ordered=False)
        log.info("counted %s.%s of %d parents", counter.collection, counter.field, len(counts))


async def _pipeline_single_field_indexes(db: AsyncDatabase[Document]) -> None:
    """Single-field indexes on the event pipeline's polled fields.

    nx-27017 (the dev server) plans a query on one index field only: the leading field of
    a compound index is not used, so every relay poll and delivery-loop poll scanned the
    whole collection (measured at 10,000 outbox documents: 13 ms of server CPU per empty
    poll; with these indexes 0.3-0.7 ms). On MongoDB the compound indexes serve these
    queries; these cost one more index key per write there.
    """
    await db.outbox.create_indexes([IndexModel([("published", ASCENDING)], name="published")])
    await db.webhook_deliveries.create_indexes([IndexModel([("status", ASCENDING)], name="status")])


FS_NO_LAG: Document = {"type": "FS", "lag": 0.0, "lag_unit": "h"}


async def _typed_links(db: AsyncDatabase[Document]) -> None:
    """Issue 19: every existing dependency becomes finish-to-start without lag, written
    in ``link_types`` next to ``blocked_by``; tasks without dependencies get an empty
    map. A link that already has an entry keeps it (a rerun changes nothing)."""
    updates: list[UpdateOne] = []
    cursor = db["tasks"].find({}, {"_id": 1, "blocked_by": 1, "link_types": 1})
    async for doc in cursor:
        links = doc.get("link_types")
        known = links if isinstance(links, dict) else {}
        listed = doc.get("blocked_by")
        missing = [b for b in (listed if isinstance(listed, list) else []) if str(b) not in known]
        if not isinstance(links, dict):
            values: Document = {"link_types": {str(b): dict(FS_NO_LAG) for b in missing}}
        elif missing:
            values = {f"link_types.{b}": dict(FS_NO_LAG) for b in missing}
        else:
            continue
        updates.append(UpdateOne({"_id": doc["_id"]}, {"$set": values}))
        if len(updates) >= 500:
            await db["tasks"].bulk_write(updates, ordered=False)
            updates = []
    if updates:
        await db["tasks"].bulk_write(updates, ordered=False)


async def _baselines(db: AsyncDatabase[Document]) -> None:
    # by project (pages go by _id, which the dev server cannot hold in a compound index)
    await db["baselines"].create_indexes([IndexModel([("project_id", ASCENDING)])])


async def _status_history(db: AsyncDatabase[Document]) -> None:
    # the task status changes of a project or workspace: the forecast's history and
    # the schedule's actual dates (store/activity.status_changes)
    await db["activity"].create_indexes(
        [
            IndexModel(
                [("project_id", ASCENDING), ("changes.field", ASCENDING)], name="by_project_status"
            ),
            IndexModel(
                [("workspace_id", ASCENDING), ("changes.field", ASCENDING)],
                name="by_workspace_status",
            ),
        ]
    )


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "core collections and indexes", _core),
    Migration(2, "identity: users, sessions, tokens, memberships, invitations, mail", _identity),
    Migration(3, "planning: phases, sort shadows, comments, activity, idempotency", _planning),
    Migration(4, "webhooks and webhook deliveries", _webhooks),
    Migration(5, "in-app notifications and scheduler ticks", _notifications),
    Migration(6, "jobs", _jobs),
    Migration(7, "search index", _search),
    Migration(8, "attachments", _attachments),
    Migration(9, "search by a text index on tokens", _search_text),
    Migration(10, "sessions: index of revocation times", _revoked_sessions),
    Migration(11, "notifications: index of the visible ones per user", _visible_notifications),
    Migration(12, "counters of live children for limits and the last owner", _quota_counters),
    Migration(13, "event pipeline: single-field indexes", _pipeline_single_field_indexes),
    Migration(14, "typed dependencies: existing links become FS with lag 0", _typed_links),
    Migration(15, "baselines: index by project", _baselines),
    Migration(16, "activity: index of task status changes", _status_history),
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
