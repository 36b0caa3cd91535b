"""Aggregation pipeline stages and accumulators.

Documents have string ids, as Planboard's do. Not used (see docs): the ``$push``
accumulator, compound ``$group`` keys, ``$sort`` right after ``$unwind``+``$group``,
the ``$set`` stage (use ``$addFields``),
``$lookup``, ``$facet``, ``$sortByCount`` and ``$count`` over an empty input.
"""

from __future__ import annotations

from typing import Any

import pytest
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

Db = AsyncDatabase[dict[str, Any]]
Coll = AsyncCollection[dict[str, Any]]

TASKS: list[dict[str, Any]] = [
    {"_id": "t1", "project": "p1", "state": "open", "points": 3, "tags": ["ui", "bug"]},
    {"_id": "t2", "project": "p1", "state": "done", "points": 5, "tags": ["api"]},
    {"_id": "t3", "project": "p1", "state": "open", "points": 8, "tags": []},
    {"_id": "t4", "project": "p2", "state": "open", "points": 1, "tags": ["bug"]},
    {"_id": "t5", "project": "p2", "state": "done", "points": 2, "tags": ["ui", "api", "bug"]},
    {"_id": "t6", "project": "p3", "state": "done", "points": 13, "tags": ["ops"]},
]


@pytest.fixture
async def tasks(db: Db) -> Coll:
    coll = db["tasks"]
    await coll.insert_many([dict(doc) for doc in TASKS])
    return coll


async def run(coll: Coll, pipeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [doc async for doc in await coll.aggregate(pipeline)]


async def test_match_group_accumulators_sort(tasks: Coll) -> None:
    result = await run(
        tasks,
        [
            {"$match": {"project": {"$in": ["p1", "p2"]}}},
            {
                "$group": {
                    "_id": "$project",
                    "total": {"$sum": "$points"},
                    "n": {"$sum": 1},
                    "counted": {"$count": {}},
                    "lowest": {"$min": "$points"},
                    "highest": {"$max": "$points"},
                }
            },
            {"$sort": {"total": -1}},
        ],
    )
    assert result == [
        {"_id": "p1", "total": 16, "n": 3, "counted": 3, "lowest": 3, "highest": 8},
        {"_id": "p2", "total": 3, "n": 2, "counted": 2, "lowest": 1, "highest": 2},
    ]


async def test_group_by_null_totals_everything(tasks: Coll) -> None:
    result = await run(tasks, [{"$group": {"_id": None, "points": {"$sum": "$points"}}}])
    assert result == [{"_id": None, "points": 32}]


async def test_sort_skip_limit(tasks: Coll) -> None:
    result = await run(
        tasks,
        [{"$sort": {"points": -1}}, {"$skip": 1}, {"$limit": 2}, {"$project": {"points": 1}}],
    )
    assert result == [{"_id": "t3", "points": 8}, {"_id": "t2", "points": 5}]


async def test_project_include_exclude_and_computed(tasks: Coll) -> None:
    included = await run(
        tasks,
        [{"$match": {"_id": "t1"}}, {"$project": {"project": 1, "pts": "$points", "_id": 0}}],
    )
    assert included == [{"project": "p1", "pts": 3}]
    excluded = await run(tasks, [{"$match": {"_id": "t1"}}, {"$project": {"tags": 0, "state": 0}}])
    assert excluded == [{"_id": "t1", "project": "p1", "points": 3}]


async def test_add_fields(tasks: Coll) -> None:
    result = await run(
        tasks,
        [
            {"$match": {"_id": "t2"}},
            {"$addFields": {"copy": "$points", "const": "x"}},
            {"$addFields": {"nested.flag": True}},
            {"$project": {"tags": 0}},
        ],
    )
    assert result == [
        {
            "_id": "t2",
            "project": "p1",
            "state": "done",
            "points": 5,
            "copy": 5,
            "const": "x",
            "nested": {"flag": True},
        }
    ]


async def test_unwind_then_group(tasks: Coll) -> None:
    # A $sort right after $unwind+$group is ignored by the dev server: sort in Python.
    result = await run(
        tasks, [{"$unwind": "$tags"}, {"$group": {"_id": "$tags", "n": {"$sum": 1}}}]
    )
    assert sorted(result, key=lambda doc: (-doc["n"], doc["_id"])) == [
        {"_id": "bug", "n": 3},
        {"_id": "api", "n": 2},
        {"_id": "ui", "n": 2},
        {"_id": "ops", "n": 1},
    ]


async def test_unwind_keeps_fields(tasks: Coll) -> None:
    result = await run(
        tasks,
        [{"$match": {"_id": "t5"}}, {"$unwind": "$tags"}, {"$project": {"tags": 1, "points": 1}}],
    )
    assert sorted(result, key=lambda doc: doc["tags"]) == [
        {"_id": "t5", "points": 2, "tags": "api"},
        {"_id": "t5", "points": 2, "tags": "bug"},
        {"_id": "t5", "points": 2, "tags": "ui"},
    ]


async def test_count_stage(tasks: Coll) -> None:
    assert await run(tasks, [{"$match": {"state": "open"}}, {"$count": "open"}]) == [{"open": 3}]
    # Over an empty input MongoDB returns no document, the dev server {"n": 0}: read it so.
    empty = await run(tasks, [{"$match": {"state": "nope"}}, {"$count": "n"}])
    assert (empty[0]["n"] if empty else 0) == 0


async def test_aggregate_on_empty_collection(db: Db) -> None:
    assert await run(db["empty"], [{"$match": {}}, {"$group": {"_id": "$x"}}]) == []
