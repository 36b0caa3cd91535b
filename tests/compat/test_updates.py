"""Update operators, upserts, replace, find-and-modify (counters, version guards), deletes."""

from __future__ import annotations

import asyncio
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

Db = AsyncDatabase[dict[str, Any]]


async def test_set_including_dotted_paths(db: Db) -> None:
    coll = db["c"]
    await coll.insert_one({"_id": 1, "name": "a", "meta": {"x": 1, "y": 2}})
    result = await coll.update_one(
        {"_id": 1}, {"$set": {"name": "b", "meta.y": 20, "meta.z.deep": True, "new": [1]}}
    )
    assert (result.matched_count, result.modified_count, result.upserted_id) == (1, 1, None)
    assert await coll.find_one({"_id": 1}) == {
        "_id": 1,
        "name": "b",
        "meta": {"x": 1, "y": 20, "z": {"deep": True}},
        "new": [1],
    }


async def test_update_counts_for_no_match_and_no_change(db: Db) -> None:
    coll = db["c"]
    await coll.insert_one({"_id": 1, "name": "a"})
    missing = await coll.update_one({"_id": 2}, {"$set": {"name": "b"}})
    assert (missing.matched_count, missing.modified_count, missing.upserted_id) == (0, 0, None)
    same = await coll.update_one({"_id": 1}, {"$set": {"name": "a"}})
    assert (same.matched_count, same.modified_count) == (1, 0)


async def test_unset(db: Db) -> None:
    coll = db["c"]
    await coll.insert_one({"_id": 1, "a": 1, "b": {"c": 1, "d": 2}, "keep": True})
    await coll.update_one({"_id": 1}, {"$unset": {"a": "", "b.c": "", "absent": ""}})
    assert await coll.find_one({"_id": 1}) == {"_id": 1, "b": {"d": 2}, "keep": True}


async def test_inc_creates_and_adds(db: Db) -> None:
    coll = db["c"]
    await coll.insert_one({"_id": 1, "n": 5, "stats": {"hits": 1}})
    await coll.update_one({"_id": 1}, {"$inc": {"n": -2, "stats.hits": 10, "fresh": 1, "f": 0.5}})
    assert await coll.find_one({"_id": 1}) == {
        "_id": 1,
        "n": 3,
        "stats": {"hits": 11},
        "fresh": 1,
        "f": 0.5,
    }


async def test_push_and_push_each(db: Db) -> None:
    coll = db["c"]
    await coll.insert_one({"_id": 1, "log": ["a"]})
    await coll.update_one({"_id": 1}, {"$push": {"log": "b"}})
    await coll.update_one({"_id": 1}, {"$push": {"log": {"$each": ["c", "d"]}}})
    await coll.update_one({"_id": 1}, {"$push": {"created": 7}})
    assert await coll.find_one({"_id": 1}) == {
        "_id": 1,
        "log": ["a", "b", "c", "d"],
        "created": [7],
    }


async def test_array_of_subdocuments_replaced_whole_and_add_to_set(db: Db) -> None:
    # Subdocuments go into arrays by $set of the whole array or $addToSet, not $push (docs).
    coll = db["c"]
    await coll.insert_one({"_id": 1, "members": [{"user": "u1"}]})
    await coll.update_one({"_id": 1}, {"$set": {"members": [{"user": "u1"}, {"user": "u2"}]}})
    await coll.update_one({"_id": 1}, {"$addToSet": {"members": {"user": "u3"}}})
    await coll.update_one({"_id": 1}, {"$addToSet": {"members": {"user": "u1"}}})
    doc = await coll.find_one({"_id": 1})
    assert doc == {"_id": 1, "members": [{"user": "u1"}, {"user": "u2"}, {"user": "u3"}]}
    assert await coll.count_documents({"members.user": "u3"}) == 1


async def test_pull(db: Db) -> None:
    coll = db["c"]
    await coll.insert_one({"_id": 1, "tags": ["a", "b", "a", "c"], "nums": [1, 5, 9]})
    result = await coll.update_one({"_id": 1}, {"$pull": {"tags": "a"}})
    assert result.modified_count == 1
    await coll.update_one({"_id": 1}, {"$pull": {"nums": {"$gte": 5}}})
    assert await coll.find_one({"_id": 1}) == {"_id": 1, "tags": ["b", "c"], "nums": [1]}


async def test_pull_subdocument_by_field(db: Db) -> None:
    coll = db["c"]
    await coll.insert_one({"_id": 1, "members": [{"user": "u1", "role": "a"}, {"user": "u2"}]})
    await coll.update_one({"_id": 1}, {"$pull": {"members": {"user": "u1"}}})
    assert await coll.find_one({"_id": 1}) == {"_id": 1, "members": [{"user": "u2"}]}


async def test_add_to_set_and_add_to_set_each(db: Db) -> None:
    coll = db["c"]
    await coll.insert_one({"_id": 1, "tags": ["a"]})
    await coll.update_one({"_id": 1}, {"$addToSet": {"tags": "a"}})
    await coll.update_one({"_id": 1}, {"$addToSet": {"tags": "b"}})
    await coll.update_one({"_id": 1}, {"$addToSet": {"tags": {"$each": ["b", "c", "c", "d"]}}})
    doc = await coll.find_one({"_id": 1})
    assert doc is not None
    assert doc["tags"] == ["a", "b", "c", "d"]


async def test_upsert_with_set_on_insert(db: Db) -> None:
    coll = db["c"]
    first = await coll.update_one(
        {"key": "k1"},
        {"$set": {"seen": 1}, "$setOnInsert": {"created": "first"}},
        upsert=True,
    )
    assert first.matched_count == 0
    assert first.modified_count == 0
    assert first.upserted_id is not None
    second = await coll.update_one(
        {"key": "k1"},
        {"$set": {"seen": 2}, "$setOnInsert": {"created": "second"}},
        upsert=True,
    )
    assert (second.matched_count, second.modified_count, second.upserted_id) == (1, 1, None)
    docs = [doc async for doc in coll.find({})]
    assert docs == [{"_id": first.upserted_id, "key": "k1", "seen": 2, "created": "first"}]


async def test_upsert_with_explicit_id(db: Db) -> None:
    coll = db["c"]
    result = await coll.update_one({"_id": "fixed"}, {"$inc": {"n": 1}}, upsert=True)
    assert result.upserted_id == "fixed"
    assert await coll.find_one({"_id": "fixed"}) == {"_id": "fixed", "n": 1}


async def test_update_many(db: Db) -> None:
    coll = db["c"]
    await coll.insert_many([{"_id": i, "g": i % 2, "n": 0} for i in range(6)])
    result = await coll.update_many({"g": 1}, {"$set": {"flag": True}, "$inc": {"n": 2}})
    assert (result.matched_count, result.modified_count) == (3, 3)
    assert await coll.count_documents({"flag": True, "n": 2}) == 3
    none = await coll.update_many({"g": 7}, {"$set": {"flag": False}})
    assert (none.matched_count, none.modified_count) == (0, 0)


async def test_replace_one(db: Db) -> None:
    coll = db["c"]
    await coll.insert_one({"_id": 1, "a": 1, "b": 2})
    result = await coll.replace_one({"_id": 1}, {"c": 3})
    assert (result.matched_count, result.modified_count) == (1, 1)
    assert await coll.find_one({"_id": 1}) == {"_id": 1, "c": 3}
    # an upserting replace names the _id in the replacement too (see docs)
    upserted = await coll.replace_one({"_id": 2}, {"_id": 2, "d": 4}, upsert=True)
    assert upserted.upserted_id == 2
    assert await coll.find_one({"_id": 2}) == {"_id": 2, "d": 4}


async def next_value(db: Db, name: str) -> int:
    doc = await db["counters"].find_one_and_update(
        {"_id": name},
        {"$inc": {"seq": 1}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
    )
    assert doc is not None
    value: int = doc["seq"]
    return value


async def test_find_one_and_update_as_atomic_counter(db: Db) -> None:
    assert [await next_value(db, "tickets") for _ in range(3)] == [1, 2, 3]
    assert await next_value(db, "other") == 1
    assert await db["counters"].find_one({"_id": "tickets"}) == {"_id": "tickets", "seq": 3}


async def test_counter_under_concurrency_gives_distinct_values(db: Db) -> None:
    await next_value(db, "c")  # create it, so the concurrent calls don't race the upsert
    values = await asyncio.gather(*(next_value(db, "c") for _ in range(50)))
    assert sorted(values) == list(range(2, 52))


async def test_find_one_and_update_returns_before_by_default(db: Db) -> None:
    coll = db["c"]
    await coll.insert_one({"_id": 1, "n": 1})
    before = await coll.find_one_and_update({"_id": 1}, {"$inc": {"n": 1}})
    assert before == {"_id": 1, "n": 1}
    missing = await coll.find_one_and_update({"_id": 2}, {"$inc": {"n": 1}})
    assert missing is None
    projected = await coll.find_one_and_update(
        {"_id": 1},
        {"$inc": {"n": 1}},
        projection={"n": 1, "_id": 0},
        return_document=ReturnDocument.AFTER,
    )
    assert projected == {"n": 3}


async def test_optimistic_concurrency_with_version_guard(db: Db) -> None:
    coll = db["c"]
    await coll.insert_one({"_id": 1, "title": "v1", "version": 1})
    updated = await coll.find_one_and_update(
        {"_id": 1, "version": 1},
        {"$set": {"title": "v2"}, "$inc": {"version": 1}},
        return_document=ReturnDocument.AFTER,
    )
    assert updated == {"_id": 1, "title": "v2", "version": 2}
    stale = await coll.find_one_and_update(
        {"_id": 1, "version": 1},
        {"$set": {"title": "lost update"}, "$inc": {"version": 1}},
        return_document=ReturnDocument.AFTER,
    )
    assert stale is None
    stale_update = await coll.update_one({"_id": 1, "version": 1}, {"$set": {"title": "x"}})
    assert stale_update.matched_count == 0
    assert await coll.find_one({"_id": 1}) == {"_id": 1, "title": "v2", "version": 2}


async def test_find_one_and_delete(db: Db) -> None:
    coll = db["c"]
    await coll.insert_many([{"_id": i, "prio": p} for i, p in ((1, 5), (2, 1), (3, 3))])
    first = await coll.find_one_and_delete({}, sort=[("prio", ASCENDING)])
    assert first == {"_id": 2, "prio": 1}
    assert await coll.find_one_and_delete({"_id": 99}) is None
    assert await coll.count_documents({}) == 2


async def test_delete_one_and_delete_many(db: Db) -> None:
    coll = db["c"]
    await coll.insert_many([{"_id": i, "g": i % 3} for i in range(9)])
    one = await coll.delete_one({"g": 0})
    assert one.deleted_count == 1
    many = await coll.delete_many({"g": 1})
    assert many.deleted_count == 3
    none = await coll.delete_many({"g": 42})
    assert none.deleted_count == 0
    assert await coll.count_documents({}) == 5
    everything = await coll.delete_many({})
    assert everything.deleted_count == 5
