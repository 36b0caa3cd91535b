"""Inserts, queries, sort/skip/limit, projection, counting and distinct."""

from __future__ import annotations

from typing import Any

import pytest
from bson import ObjectId
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

Db = AsyncDatabase[dict[str, Any]]
Coll = AsyncCollection[dict[str, Any]]

ITEMS: list[dict[str, Any]] = [
    {
        "_id": 1,
        "name": "alpha",
        "status": "open",
        "qty": 5,
        "tags": ["red", "blue"],
        "dims": {"w": 2, "h": 10},
        "lines": [{"sku": "a", "n": 1}, {"sku": "b", "n": 5}],
        "note": "x",
        "owner": "u1",
    },
    {
        "_id": 2,
        "name": "beta",
        "status": "open",
        "qty": 15,
        "tags": ["blue"],
        "dims": {"w": 8, "h": 10},
        "lines": [{"sku": "a", "n": 7}],
    },
    {
        "_id": 3,
        "name": "gamma",
        "status": "done",
        "qty": 15,
        "tags": ["red", "green"],
        "dims": {"w": 6, "h": 3},
        "lines": [{"sku": "c", "n": 2}],
        "note": "z",
        "owner": None,
    },
    {
        "_id": 4,
        "name": "delta",
        "status": "done",
        "qty": 0,
        "tags": [],
        "dims": {"w": 1, "h": 1},
        "lines": [],
    },
    {
        "_id": 5,
        "name": "eps",
        "status": "archived",
        "qty": 30,
        "tags": ["green", "red", "blue"],
        "dims": {"w": 9, "h": 7},
        "lines": [{"sku": "b", "n": 1}, {"sku": "a", "n": 3}],
        "note": "y",
    },
]


@pytest.fixture
async def items(db: Db) -> Coll:
    coll = db["items"]
    await coll.insert_many([dict(doc) for doc in ITEMS])
    return coll


async def ids(coll: Coll, query: dict[str, Any]) -> set[Any]:
    return {doc["_id"] async for doc in coll.find(query, {"_id": 1})}


async def test_insert_one_assigns_object_id_and_find_one_reads_it(db: Db) -> None:
    result = await db["c"].insert_one({"name": "x", "n": 1})
    assert result.acknowledged
    assert isinstance(result.inserted_id, ObjectId)
    doc = await db["c"].find_one({"_id": result.inserted_id})
    assert doc == {"_id": result.inserted_id, "name": "x", "n": 1}
    assert await db["c"].find_one({"name": "missing"}) is None


async def test_insert_many_returns_ids_in_order(db: Db) -> None:
    result = await db["c"].insert_many([{"i": i} for i in range(10)])
    assert len(result.inserted_ids) == 10
    docs = [doc async for doc in db["c"].find({}, sort=[("i", ASCENDING)])]
    assert [d["_id"] for d in docs] == result.inserted_ids
    assert [d["i"] for d in docs] == list(range(10))


async def test_insert_many_ordered_stops_at_first_duplicate(db: Db) -> None:
    with pytest.raises(BulkWriteError) as info:
        await db["c"].insert_many([{"_id": 1}, {"_id": 2}, {"_id": 1}, {"_id": 3}], ordered=True)
    details = info.value.details
    assert details["nInserted"] == 2
    assert [(e["index"], e["code"]) for e in details["writeErrors"]] == [(2, 11000)]
    assert await ids(db["c"], {}) == {1, 2}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"status": "open"}, {1, 2}),
        ({"status": {"$eq": "done"}}, {3, 4}),
        ({"status": {"$ne": "open"}}, {3, 4, 5}),
        ({"status": {"$in": ["open", "archived"]}}, {1, 2, 5}),
        ({"status": {"$nin": ["open", "archived"]}}, {3, 4}),
        ({"qty": {"$gt": 15}}, {5}),
        ({"qty": {"$gte": 15}}, {2, 3, 5}),
        ({"qty": {"$lt": 5}}, {4}),
        ({"qty": {"$lte": 5}}, {1, 4}),
        ({"qty": {"$gt": 0, "$lt": 30}}, {1, 2, 3}),
        ({"note": {"$exists": True}}, {1, 3, 5}),
        ({"note": {"$exists": False}}, {2, 4}),
        # null matches null and missing; "$ne": None only together with a range (see docs)
        ({"owner": None}, {2, 3, 4, 5}),
        ({"owner": {"$ne": None, "$gte": "u"}}, {1}),
        ({"$and": [{"status": "open"}, {"qty": {"$gt": 5}}]}, {2}),
        ({"$or": [{"status": "archived"}, {"qty": 0}]}, {4, 5}),
        ({"status": "open", "$or": [{"qty": 5}, {"qty": 30}]}, {1}),
        ({"_id": {"$in": [2, 4, 99]}}, {2, 4}),
    ],
)
async def test_comparison_and_logical_operators(
    items: Coll, query: dict[str, Any], expected: set[int]
) -> None:
    assert await ids(items, query) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"dims.w": {"$gt": 5}}, {2, 3, 5}),
        ({"dims.h": 10}, {1, 2}),
        ({"dims.w": 6, "dims.h": 3}, {3}),
        ({"lines.sku": "b"}, {1, 5}),
    ],
)
async def test_dotted_paths_into_subdocuments(
    items: Coll, query: dict[str, Any], expected: set[int]
) -> None:
    assert await ids(items, query) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"tags": "red"}, {1, 3, 5}),
        ({"tags": {"$in": ["green"]}}, {3, 5}),
        ({"tags": {"$all": ["red", "blue"]}}, {1, 5}),
        ({"tags": {"$all": ["red", "green", "blue"]}}, {5}),
        ({"lines": {"$elemMatch": {"sku": "a", "n": {"$gte": 3}}}}, {2, 5}),
        ({"lines": {"$elemMatch": {"sku": "b", "n": 5}}}, {1}),
    ],
)
async def test_array_element_matching(
    items: Coll, query: dict[str, Any], expected: set[int]
) -> None:
    assert await ids(items, query) == expected


async def test_sort_on_several_keys_with_id_tie_break(items: Coll) -> None:
    cursor = items.find({}, sort=[("qty", DESCENDING), ("status", ASCENDING), ("_id", ASCENDING)])
    assert [doc["_id"] async for doc in cursor] == [5, 3, 2, 1, 4]
    cursor = items.find({}, sort=[("status", ASCENDING), ("qty", ASCENDING), ("_id", DESCENDING)])
    assert [doc["_id"] async for doc in cursor] == [5, 4, 3, 1, 2]


async def test_sort_ties_broken_by_id(db: Db) -> None:
    coll = db["c"]
    await coll.insert_many([{"_id": i, "group": i % 2} for i in (7, 3, 9, 1, 4, 2)])
    asc = [d["_id"] async for d in coll.find({}, sort=[("group", ASCENDING), ("_id", ASCENDING)])]
    assert asc == [2, 4, 1, 3, 7, 9]
    desc = [d["_id"] async for d in coll.find({}, sort=[("group", ASCENDING), ("_id", DESCENDING)])]
    assert desc == [4, 2, 9, 7, 3, 1]


async def test_skip_and_limit_page_through_a_sorted_result(db: Db) -> None:
    coll = db["c"]
    await coll.insert_many([{"_id": i, "n": i} for i in range(25)])
    pages = []
    for page in range(3):
        cursor = coll.find({}, sort=[("n", ASCENDING)], skip=page * 10, limit=10)
        pages.append([doc["n"] async for doc in cursor])
    assert pages == [list(range(10)), list(range(10, 20)), list(range(20, 25))]
    chained = coll.find({"n": {"$gte": 5}}).sort("n", DESCENDING).skip(2).limit(3)
    assert [doc["n"] async for doc in chained] == [22, 21, 20]
    assert len(await coll.find({}).limit(4).to_list()) == 4


async def test_projection_include(items: Coll) -> None:
    doc = await items.find_one({"_id": 1}, {"name": 1, "dims": 1})
    assert doc == {"_id": 1, "name": "alpha", "dims": {"w": 2, "h": 10}}
    doc = await items.find_one({"_id": 1}, {"name": 1, "_id": 0})
    assert doc == {"name": "alpha"}


async def test_projection_exclude(items: Coll) -> None:
    doc = await items.find_one({"_id": 2}, {"lines": 0, "tags": 0, "dims": 0})
    assert doc == {"_id": 2, "name": "beta", "status": "open", "qty": 15}


async def test_find_one_with_sort_returns_first(items: Coll) -> None:
    doc = await items.find_one(
        {"status": {"$ne": "archived"}}, sort=[("qty", DESCENDING), ("_id", ASCENDING)]
    )
    assert doc is not None
    assert doc["_id"] == 2


async def test_count_documents_and_estimated_count(items: Coll, db: Db) -> None:
    assert await items.count_documents({}) == 5
    assert await items.count_documents({"status": "open"}) == 2
    assert await items.count_documents({"tags": "red", "qty": {"$gt": 5}}) == 2
    assert await items.count_documents({"status": "nope"}) == 0
    assert await items.count_documents({}, limit=3) == 3
    assert await items.count_documents({}, skip=4) == 1
    assert await items.estimated_document_count() == 5
    assert await db["never_created"].estimated_document_count() == 0
    assert await db["never_created"].count_documents({}) == 0


async def test_distinct(items: Coll) -> None:
    assert sorted(await items.distinct("status")) == ["archived", "done", "open"]
    assert sorted(await items.distinct("status", {"qty": {"$gte": 15}})) == [
        "archived",
        "done",
        "open",
    ]
    assert sorted(await items.distinct("status", {"qty": {"$lt": 10}})) == ["done", "open"]
    # distinct unwinds arrays
    assert sorted(await items.distinct("tags")) == ["blue", "green", "red"]
    assert sorted(await items.distinct("dims.h")) == [1, 3, 7, 10]


@pytest.mark.parametrize(
    "query",
    [
        {"status": "open"},
        {"status": {"$ne": "open"}},
        {"status": {"$in": ["open", "archived"]}},
        {"qty": {"$gt": 0, "$lt": 30}},
        {"note": {"$exists": False}},
        {"$or": [{"status": "archived"}, {"qty": 0}]},
    ],
)
async def test_count_documents_agrees_with_find(items: Coll, query: dict[str, Any]) -> None:
    """Counts (backlogs, totals) must match what find returns for the same filter."""
    assert await items.count_documents(query) == len(await ids(items, query))


async def test_boolean_flag_equality_in_find_count_and_update(db: Db) -> None:
    """The outbox's pending flag: equality on a boolean, counted and flipped in bulk."""
    coll = db["flags"]
    await coll.insert_many([{"_id": n, "published": False, "at": None} for n in range(10)])
    await coll.update_many({"_id": {"$in": [1, 2, 3]}}, {"$set": {"published": True, "at": 5}})
    assert await coll.count_documents({"published": False}) == 7
    assert await ids(coll, {"published": False}) == {0, 4, 5, 6, 7, 8, 9}
    assert await coll.count_documents({"published": True, "at": {"$lt": 10}}) == 3
