"""Index creation, uniqueness, TTL option, listing and dropping.

Index names and key directions as *listed* by the server are not relied on (the
dev server renames indexes and reports every key as ascending, see docs);
indexes are found by their key fields. Only single-field indexes are dropped, by
the generated name (the dev server silently keeps a custom-named index).
"""

from __future__ import annotations

from typing import Any

import pytest
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

Db = AsyncDatabase[dict[str, Any]]


async def listed(db: Db, coll: str) -> dict[tuple[str, ...], dict[str, Any]]:
    """Key fields (in order) -> index spec, as ``list_indexes`` reports them."""
    return {tuple(spec["key"]): dict(spec) async for spec in await db[coll].list_indexes()}


async def test_create_single_and_compound_indexes_idempotently(db: Db) -> None:
    coll = db["c"]
    single = await coll.create_index("owner")
    compound = await coll.create_index([("project", ASCENDING), ("updated", DESCENDING)])
    assert await coll.create_index("owner") == single
    assert await coll.create_index([("project", ASCENDING), ("updated", DESCENDING)]) == compound
    keys = await listed(db, "c")
    assert set(keys) == {("_id",), ("owner",), ("project", "updated")}


async def test_create_indexes_with_names(db: Db) -> None:
    coll = db["c"]
    models = [
        IndexModel([("a", ASCENDING)], name="by_a"),
        IndexModel([("b", ASCENDING), ("c", DESCENDING)], name="by_b_c", unique=True),
    ]
    assert await coll.create_indexes(models) == ["by_a", "by_b_c"]
    assert await coll.create_indexes(models) == ["by_a", "by_b_c"]  # idempotent
    assert set(await listed(db, "c")) == {("_id",), ("a",), ("b", "c")}


async def test_unique_index_rejects_duplicates_on_insert_and_update(db: Db) -> None:
    coll = db["users"]
    await coll.create_index("email", unique=True)
    await coll.insert_one({"_id": 1, "email": "a@example.com"})
    await coll.insert_one({"_id": 2, "email": "b@example.com"})
    with pytest.raises(DuplicateKeyError) as on_insert:
        await coll.insert_one({"_id": 3, "email": "a@example.com"})
    assert on_insert.value.code == 11000
    with pytest.raises(DuplicateKeyError) as on_update:
        await coll.update_one({"_id": 2}, {"$set": {"email": "a@example.com"}})
    assert on_update.value.code == 11000
    assert await coll.find_one({"_id": 2}) == {"_id": 2, "email": "b@example.com"}
    assert await coll.count_documents({}) == 2
    assert (await listed(db, "users"))[("email",)]["unique"] is True


async def test_duplicate_id_is_a_duplicate_key_error(db: Db) -> None:
    coll = db["c"]
    await coll.insert_one({"_id": "x"})
    with pytest.raises(DuplicateKeyError) as info:
        await coll.insert_one({"_id": "x"})
    assert info.value.code == 11000


async def test_upsert_into_an_existing_id_is_a_duplicate_key_error(db: Db) -> None:
    """The lease pattern: upsert with _id plus a condition; a held lease raises 11000."""
    coll = db["locks"]
    mine = {"$or": [{"owner": "me"}, {"expires_at": {"$lt": 10}}]}
    await coll.update_one(
        {"_id": "lease", **mine}, {"$set": {"owner": "me", "expires_at": 50}}, upsert=True
    )
    theirs = {"$or": [{"owner": "you"}, {"expires_at": {"$lt": 10}}]}
    with pytest.raises(DuplicateKeyError) as info:
        await coll.update_one(
            {"_id": "lease", **theirs}, {"$set": {"owner": "you", "expires_at": 60}}, upsert=True
        )
    assert info.value.code == 11000
    assert await coll.find_one({"_id": "lease"}) == {
        "_id": "lease",
        "owner": "me",
        "expires_at": 50,
    }


async def test_unique_index_rejects_duplicate_upsert(db: Db) -> None:
    coll = db["c"]
    await coll.create_index("slug", unique=True)
    await coll.insert_one({"_id": 1, "slug": "taken"})
    with pytest.raises(DuplicateKeyError):
        await coll.update_one({"_id": 2}, {"$set": {"slug": "taken"}}, upsert=True)
    assert await coll.count_documents({}) == 1


async def test_unique_compound_index(db: Db) -> None:
    coll = db["members"]
    await coll.create_index([("project", ASCENDING), ("user", ASCENDING)], unique=True)
    await coll.insert_many(
        [
            {"project": "p1", "user": "u1"},
            {"project": "p1", "user": "u2"},
            {"project": "p2", "user": "u1"},
        ]
    )
    with pytest.raises(DuplicateKeyError):
        await coll.insert_one({"project": "p1", "user": "u1"})
    with pytest.raises(DuplicateKeyError):
        await coll.update_one({"project": "p2"}, {"$set": {"project": "p1"}})
    assert await coll.count_documents({}) == 3


async def test_partial_unique_index(db: Db) -> None:
    coll = db["accounts"]
    await coll.create_index(
        "email", unique=True, partialFilterExpression={"email": {"$exists": True}}
    )
    await coll.insert_many([{"_id": 1}, {"_id": 2}, {"_id": 3, "email": "a@example.com"}])
    with pytest.raises(DuplicateKeyError):
        await coll.insert_one({"_id": 4, "email": "a@example.com"})
    assert await coll.count_documents({}) == 3


async def test_ttl_index_is_accepted(db: Db) -> None:
    coll = db["sessions"]
    await coll.create_index("expires_at", expireAfterSeconds=3600)
    spec = (await listed(db, "sessions"))[("expires_at",)]
    assert spec["expireAfterSeconds"] == 3600


async def test_drop_single_field_index_by_generated_name(db: Db) -> None:
    coll = db["c"]
    name = await coll.create_index("code", unique=True)
    await coll.insert_one({"code": 1})
    await coll.drop_index(name)
    assert ("code",) not in await listed(db, "c")
    await coll.insert_one({"code": 1})
    assert await coll.count_documents({"code": 1}) == 2
