"""bulk_write with mixed operations, ordered and unordered."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo import DeleteOne, InsertOne, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

Db = AsyncDatabase[dict[str, Any]]


@pytest.mark.parametrize("ordered", [True, False])
async def test_bulk_write_mixed_operations(db: Db, ordered: bool) -> None:
    coll = db["c"]
    await coll.insert_many([{"_id": 1, "n": 0}, {"_id": 2, "n": 0}])
    result = await coll.bulk_write(
        [
            InsertOne({"_id": 3, "n": 0}),
            UpdateOne({"_id": 1}, {"$inc": {"n": 5}}),
            UpdateOne({"_id": 4}, {"$set": {"n": 9}}, upsert=True),
            DeleteOne({"_id": 2}),
        ],
        ordered=ordered,
    )
    assert result.inserted_count == 1
    assert result.matched_count == 1
    assert result.modified_count == 1
    assert result.upserted_count == 1
    assert result.upserted_ids == {2: 4}
    assert result.deleted_count == 1
    docs = [doc async for doc in coll.find({}, sort=[("_id", 1)])]
    assert docs == [{"_id": 1, "n": 5}, {"_id": 3, "n": 0}, {"_id": 4, "n": 9}]


async def test_ordered_bulk_write_stops_at_first_error(db: Db) -> None:
    coll = db["c"]
    await coll.insert_one({"_id": 1})
    with pytest.raises(BulkWriteError) as info:
        await coll.bulk_write(
            [InsertOne({"_id": 2}), InsertOne({"_id": 1}), InsertOne({"_id": 3})], ordered=True
        )
    details = info.value.details
    assert details["nInserted"] == 1
    assert [(e["index"], e["code"]) for e in details["writeErrors"]] == [(1, 11000)]
    assert [doc["_id"] async for doc in coll.find({}, sort=[("_id", 1)])] == [1, 2]


async def test_unordered_bulk_write_continues_past_errors(db: Db) -> None:
    coll = db["c"]
    await coll.insert_one({"_id": 1})
    with pytest.raises(BulkWriteError) as info:
        await coll.bulk_write(
            [
                InsertOne({"_id": 2}),
                InsertOne({"_id": 1}),
                InsertOne({"_id": 3}),
                UpdateOne({"_id": 3}, {"$set": {"x": 1}}),
            ],
            ordered=False,
        )
    details = info.value.details
    assert details["nInserted"] == 2
    assert [(e["index"], e["code"]) for e in details["writeErrors"]] == [(1, 11000)]
    assert [doc["_id"] async for doc in coll.find({}, sort=[("_id", 1)])] == [1, 2, 3]
