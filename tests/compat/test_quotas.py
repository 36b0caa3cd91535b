"""The patterns store/quotas.py depends on: counters of live children on a parent
document, moved by conditional single-document updates that must stay atomic under
concurrency (limits that 30 parallel requests cannot pass, a floor of one owner that two
parallel demotions cannot break), without transactions."""

from __future__ import annotations

import asyncio
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

Db = AsyncDatabase[dict[str, Any]]


async def take(db: Db, parent: str, limit: int, n: int = 1) -> bool:
    result = await db["parents"].update_one(
        {"_id": parent, "count": {"$lte": limit - n}}, {"$inc": {"count": n}}
    )
    return result.modified_count == 1


async def test_a_capped_counter_lets_exactly_the_limit_through_under_concurrency(db: Db) -> None:
    for round_ in range(5):
        parent = f"w{round_}"
        await db["parents"].insert_one({"_id": parent, "count": 0})
        won = await asyncio.gather(*(take(db, parent, 25) for _ in range(30)))
        assert sum(won) == 25
        assert (await db["parents"].find_one({"_id": parent}) or {})["count"] == 25


async def test_a_capped_counter_takes_several_at_once_or_none(db: Db) -> None:
    await db["parents"].insert_one({"_id": "p", "count": 7})
    assert not await take(db, "p", 10, n=4)
    assert await take(db, "p", 10, n=3)
    assert not await take(db, "p", 10)
    assert not await take(db, "missing", 10)  # no parent, nothing taken or created
    assert await db["parents"].find_one({"_id": "missing"}) is None
    # given back, never below zero
    back = await db["parents"].update_one(
        {"_id": "p", "count": {"$gte": 10}}, {"$inc": {"count": -10}}
    )
    assert back.modified_count == 1
    floor = await db["parents"].update_one(
        {"_id": "p", "count": {"$gte": 1}}, {"$inc": {"count": -1}}
    )
    assert floor.modified_count == 0
    assert (await db["parents"].find_one({"_id": "p"}) or {})["count"] == 0


async def test_a_counter_without_the_field_matches_no_range(db: Db) -> None:
    """A parent written before its counter existed is refused, not counted from zero: a
    migration initialises counters (store/migrations.py, migration 12)."""
    await db["parents"].insert_one({"_id": "legacy"})
    assert not await take(db, "legacy", 10)
    assert await db["parents"].find_one({"_id": "legacy"}) == {"_id": "legacy"}


async def test_a_floor_of_one_holds_under_concurrent_decrements(db: Db) -> None:
    for round_ in range(5):
        parent = f"ws{round_}"
        await db["parents"].insert_one({"_id": parent, "owners": 3})

        async def leave(parent: str = parent) -> bool:
            result = await db["parents"].update_one(
                {"_id": parent, "owners": {"$gt": 1}}, {"$inc": {"owners": -1}}
            )
            return result.modified_count == 1

        won = await asyncio.gather(*(leave() for _ in range(6)))
        assert sum(won) == 2
        assert (await db["parents"].find_one({"_id": parent}) or {})["owners"] == 1


async def test_numbers_and_count_in_one_capped_find_one_and_update(db: Db) -> None:
    """Task numbers are handed out with the project's count, only while it has room."""
    await db["projects"].insert_one({"_id": "p", "task_seq": 100, "task_count": 8})

    async def allocate(n: int) -> int | None:
        doc = await db["projects"].find_one_and_update(
            {"_id": "p", "task_count": {"$lte": 10 - n}},
            {"$inc": {"task_seq": n, "task_count": n}},
            projection={"task_seq": 1},
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else int(doc["task_seq"]) - n + 1

    firsts = await asyncio.gather(*(allocate(1) for _ in range(5)))
    assert sorted(f for f in firsts if f is not None) == [101, 102]
    assert await allocate(1) is None
    assert await db["projects"].find_one({"_id": "p"}) == {
        "_id": "p",
        "task_seq": 102,
        "task_count": 10,
    }


async def test_a_change_conditional_on_the_value_read(db: Db) -> None:
    """Role changes match on the role that was read: a concurrent change makes them miss."""
    members = db["members"]
    await members.insert_one({"_id": 1, "ws": "w", "user": "u", "role": "admin"})
    changed = await members.update_one(
        {"ws": "w", "user": "u", "role": "admin"}, {"$set": {"role": "owner"}}
    )
    assert changed.matched_count == 1
    stale = await members.update_one(
        {"ws": "w", "user": "u", "role": "admin"}, {"$set": {"role": "viewer"}}
    )
    assert stale.matched_count == 0
    gone = await members.delete_one({"ws": "w", "user": "u", "role": "admin"})
    assert gone.deleted_count == 0
    assert (await members.find_one({"_id": 1}) or {})["role"] == "owner"


async def test_a_delete_returns_what_it_deleted_once(db: Db) -> None:
    """An attachment's place is given back by the one delete that found it counted."""
    await db["files"].insert_one({"_id": "a", "task_id": "t", "state": "uploading"})
    results = await asyncio.gather(
        *(db["files"].find_one_and_delete({"_id": "a"}) for _ in range(5))
    )
    assert [r for r in results if r is not None] == [
        {"_id": "a", "task_id": "t", "state": "uploading"}
    ]


async def test_counts_per_parent_for_the_migration(db: Db) -> None:
    await db["children"].insert_many(
        [
            {"_id": i, "parent": f"p{i % 3}", "state": "gone" if i in (0, 3, 6) else "live"}
            for i in range(12)
        ]
    )
    cursor = await db["children"].aggregate(
        [
            {"$match": {"state": {"$in": ["live"]}}},
            {"$group": {"_id": "$parent", "n": {"$sum": 1}}},
        ]
    )
    counts = {str(row["_id"]): int(row["n"]) async for row in cursor}
    assert counts == {"p0": 1, "p1": 4, "p2": 4}
