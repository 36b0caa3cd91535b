"""Workspace memberships: (workspace, user) → role."""

from __future__ import annotations

from typing import cast

from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from planboard.store.document import Document
from planboard.store.documents import MembershipDoc

MEMBERSHIPS = "memberships"


def collection(db: AsyncDatabase[Document]) -> AsyncCollection[MembershipDoc]:
    """The ``memberships`` collection, typed by its documents' shape."""
    return cast("AsyncCollection[MembershipDoc]", db[MEMBERSHIPS])


async def insert(db: AsyncDatabase[Document], doc: MembershipDoc) -> None:
    await collection(db).insert_one(doc)


async def get(db: AsyncDatabase[Document], workspace_id: str, user_id: str) -> MembershipDoc | None:
    return await collection(db).find_one({"workspace_id": workspace_id, "user_id": user_id})


async def of_user(db: AsyncDatabase[Document], user_id: str) -> list[MembershipDoc]:
    cursor = collection(db).find({"user_id": user_id}).sort("created_at", ASCENDING)
    return [doc async for doc in cursor]


async def of_workspace(db: AsyncDatabase[Document], workspace_id: str) -> list[MembershipDoc]:
    cursor = collection(db).find({"workspace_id": workspace_id}).sort("created_at", ASCENDING)
    return [doc async for doc in cursor]


async def set_role(
    db: AsyncDatabase[Document],
    workspace_id: str,
    user_id: str,
    role: str,
    *,
    current: str,
    session: AsyncClientSession | None = None,
) -> bool:
    """Change the role from ``current``; False when the member is gone or their role is no
    longer ``current`` (a concurrent change: decide again on a fresh read)."""
    result = await db[MEMBERSHIPS].update_one(
        {"workspace_id": workspace_id, "user_id": user_id, "role": current},
        {"$set": {"role": role}},
        session=session,
    )
    return result.matched_count == 1


async def remove(
    db: AsyncDatabase[Document],
    workspace_id: str,
    user_id: str,
    *,
    current: str,
    session: AsyncClientSession | None = None,
) -> bool:
    """Remove the member if their role is still ``current`` (see :func:`set_role`)."""
    result = await db[MEMBERSHIPS].delete_one(
        {"workspace_id": workspace_id, "user_id": user_id, "role": current}, session=session
    )
    return result.deleted_count == 1
