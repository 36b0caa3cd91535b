"""Counters on a parent document that make limits and invariants hold under races.

A check that reads a count and then writes ("fewer than 25 webhooks? insert one") lets
every concurrent request pass the check before any of them writes: 30 parallel creates
made 30 webhooks. Here the parent document (the workspace, project, task or user)
carries the count of its live children, and a child is only written after a
**conditional single-document update** of that count succeeded:
``{_id: parent, <count>: {$lte: limit - n}}`` with ``$inc: {<count>: n}``. MongoDB applies
a single-document update atomically, so of concurrent requests exactly as many win as
the limit leaves room for; the dev server does the same (tests/compat/test_quotas.py).
No transaction is needed, which matters because the dev server's transactions do not
isolate (docs/devstack.md).

The rules that keep a count correct:

- **Taken before the write, given back after the removal.** A child is counted from
  before it is written until after it is gone, so the count is never below the number of
  live children (it is an upper bound, and the limit can never be passed).
- **Given back only when the write certainly did not happen**: after an error that is
  not a lost connection or an unknown commit result (then the write may have happened,
  and the count stays taken). A crash between the two steps also leaves a count one too
  high: the limit is then reached one child early, never passed.
- **Given back exactly once**: by the write that ends the child's counted state and
  reports that it did (a delete that deleted, a transition that matched).

``owner_count`` on a workspace is the same idea as a floor: an owner is un-counted
(``{owner_count: {$gt: 1}}``, ``$inc: -1``) before the membership stops being an owner, and
counted after a membership becomes one, so the count is never above the number of owners
and can never reach 0.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConnectionFailure, PyMongoError

from planboard.store.document import Document


@dataclass(frozen=True, slots=True)
class Counter:
    """The count ``field`` of live children on the documents of ``collection``."""

    collection: str
    field: str

    async def take(
        self,
        db: AsyncDatabase[Document],
        parent_id: str,
        *,
        limit: int,
        n: int = 1,
        session: AsyncClientSession | None = None,
    ) -> bool:
        """Count ``n`` more children if the count stays within ``limit``; False when it
        would not (or the parent does not exist)."""
        result = await db[self.collection].update_one(
            {"_id": parent_id, self.field: {"$lte": limit - n}},
            {"$inc": {self.field: n}},
            session=session,
        )
        return result.modified_count == 1

    async def give_back(
        self,
        db: AsyncDatabase[Document],
        parent_id: str,
        n: int = 1,
        *,
        session: AsyncClientSession | None = None,
    ) -> None:
        """Count ``n`` fewer children (never below 0)."""
        await db[self.collection].update_one(
            {"_id": parent_id, self.field: {"$gte": n}},
            {"$inc": {self.field: -n}},
            session=session,
        )

    async def add(
        self,
        db: AsyncDatabase[Document],
        parent_id: str,
        n: int = 1,
        *,
        session: AsyncClientSession | None = None,
    ) -> None:
        """Count ``n`` more, unconditionally (a floor's count after the child exists)."""
        await db[self.collection].update_one(
            {"_id": parent_id}, {"$inc": {self.field: n}}, session=session
        )

    async def take_unless_last(
        self,
        db: AsyncDatabase[Document],
        parent_id: str,
        *,
        session: AsyncClientSession | None = None,
    ) -> bool:
        """Count one fewer unless it is the last one (a floor of 1); False when it is."""
        result = await db[self.collection].update_one(
            {"_id": parent_id, self.field: {"$gt": 1}},
            {"$inc": {self.field: -1}},
            session=session,
        )
        return result.modified_count == 1


def outcome_unknown(error: BaseException) -> bool:
    """Whether a write that raised ``error`` may still have happened: the connection was
    lost, the commit's result is unknown, or the request was cancelled mid-way."""
    if isinstance(error, ConnectionFailure):
        return True
    if isinstance(error, PyMongoError) and error.has_error_label("UnknownTransactionCommitResult"):
        return True
    return not isinstance(error, Exception)  # cancelled, or the process is stopping


@asynccontextmanager
async def held(
    db: AsyncDatabase[Document],
    counter: Counter,
    parent_id: str,
    *,
    limit: int,
    refusal: Exception,
    n: int = 1,
) -> AsyncIterator[None]:
    """Take ``n`` of ``counter`` on ``parent_id`` (raise ``refusal`` when the limit leaves
    no room) for the writes in the block; give them back if the block fails before its
    writes can have happened."""
    if not await counter.take(db, parent_id, limit=limit, n=n):
        raise refusal
    try:
        yield
    except BaseException as error:
        if not outcome_unknown(error):
            await counter.give_back(db, parent_id, n)
        raise


WORKSPACE_OWNERS = Counter("workspaces", "owner_count")
WORKSPACE_WEBHOOKS = Counter("workspaces", "webhook_count")
WORKSPACE_INVITATIONS = Counter("workspaces", "invitation_count")  # pending ones
PROJECT_TASKS = Counter("projects", "task_count")
TASK_ATTACHMENTS = Counter("tasks", "attachment_count")  # uploading or stored
USER_TOKENS = Counter("users", "token_count")  # personal access tokens not revoked

COUNTERS = (
    WORKSPACE_OWNERS,
    WORKSPACE_WEBHOOKS,
    WORKSPACE_INVITATIONS,
    PROJECT_TASKS,
    TASK_ATTACHMENTS,
    USER_TOKENS,
)
