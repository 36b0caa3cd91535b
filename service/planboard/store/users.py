"""The ``users`` collection (emails stored lower-cased, unique)."""

from __future__ import annotations

from datetime import datetime

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from planboard.store.document import Document

USERS = "users"


def normalize_email(email: str) -> str:
    return email.strip().lower()


async def insert(db: AsyncDatabase[Document], doc: Document) -> None:
    await db[USERS].insert_one(doc)


async def get(db: AsyncDatabase[Document], user_id: str) -> Document | None:
    return await db[USERS].find_one({"_id": user_id})


async def exists(db: AsyncDatabase[Document], user_id: str) -> bool:
    return await db[USERS].find_one({"_id": user_id}, {"_id": 1}) is not None


async def by_email(db: AsyncDatabase[Document], email: str) -> Document | None:
    return await db[USERS].find_one({"email": normalize_email(email)})


async def many(db: AsyncDatabase[Document], user_ids: list[str]) -> dict[str, Document]:
    cursor = db[USERS].find({"_id": {"$in": user_ids}}, {"password_hash": 0})
    return {str(doc["_id"]): doc async for doc in cursor}


async def set_password(
    db: AsyncDatabase[Document], user_id: str, password_hash: str, now: datetime
) -> None:
    await db[USERS].update_one(
        {"_id": user_id},
        {"$set": {"password_hash": password_hash, "updated_at": now, "password_changed_at": now}},
    )


async def mark_verified(
    db: AsyncDatabase[Document], user_id: str, now: datetime
) -> Document | None:
    return await db[USERS].find_one_and_update(
        {"_id": user_id},
        {"$set": {"email_verified": True, "email_verified_at": now, "updated_at": now}},
        return_document=ReturnDocument.AFTER,
    )


async def set_preferences(
    db: AsyncDatabase[Document],
    user_id: str,
    preferences: dict[str, dict[str, bool]],
    now: datetime,
) -> None:
    await db[USERS].update_one(
        {"_id": user_id}, {"$set": {"notification_preferences": preferences, "updated_at": now}}
    )
