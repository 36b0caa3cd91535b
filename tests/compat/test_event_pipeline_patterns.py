"""The MongoDB patterns the event pipeline (outbox relay, consumer runner, webhook fan-out
and delivery loop, leases) relies on, each in the form the code uses.

Gaps found while building it (nx-27017 0.8.1), and how the code avoids them:
- Fields beside an ``$or`` in an **update or delete** filter apply to the first ``$or``
  branch only (``{a, $or: [b, c]}`` runs as ``(a AND b) OR c``): it updated documents
  that match ``c`` alone, e.g. another lease's document (``find`` and ``count`` are
  right). The code nests such filters in ``$and`` (``store/locks.acquire``) or avoids
  ``$or`` (the delivery claim runs one ``update_many`` per kind).
- Only single-field indexes are used by its planner: a query on the leading field of a
  compound index scans the collection. The polled fields have single-field indexes of
  their own (migration 13).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from planboard.store import locks
from planboard.store.bulk import insert_new

Db = AsyncDatabase[dict[str, Any]]


async def test_unordered_insert_many_skips_duplicates_and_names_them(db: Db) -> None:
    coll = db["markers"]
    await coll.insert_one({"_id": "g:1"})
    docs = [{"_id": "g:0"}, {"_id": "g:1"}, {"_id": "g:2"}, {"_id": "g:0"}, {"_id": "g:3"}]
    with pytest.raises(BulkWriteError) as info:
        await coll.insert_many([dict(d) for d in docs], ordered=False)
    details = info.value.details
    assert details["nInserted"] == 3
    assert sorted((e["index"], e["code"]) for e in details["writeErrors"]) == [
        (1, 11000),
        (3, 11000),
    ]
    ids = [d["_id"] async for d in coll.find({}, sort=[("_id", ASCENDING)])]
    assert ids == ["g:0", "g:1", "g:2", "g:3"]


async def test_unordered_insert_many_on_a_unique_secondary_key(db: Db) -> None:
    coll = db["deliveries"]
    await coll.create_index([("dedupe_key", ASCENDING)], unique=True)
    await coll.insert_one({"_id": "d0", "dedupe_key": "h:e0"})
    docs = [
        {"_id": "d1", "dedupe_key": "h:e0"},  # taken by d0
        {"_id": "d2", "dedupe_key": "h:e1"},
        {"_id": "d3", "dedupe_key": "h:e1"},  # taken by d2, in the same call
        {"_id": "d4", "dedupe_key": "h:e2"},
    ]
    assert await insert_new(coll, docs) == [1, 3]  # positions 1 and 3 of docs: d2, d4
    stored = {d["_id"]: d["dedupe_key"] async for d in coll.find({})}
    assert stored == {"d0": "h:e0", "d2": "h:e1", "d4": "h:e2"}
    assert await insert_new(coll, [{"_id": "d5", "dedupe_key": "h:e2"}]) == []
    assert await insert_new(coll, []) == []


async def test_find_by_many_ids_with_a_projection(db: Db) -> None:
    coll = db["markers"]
    await coll.insert_many([{"_id": f"g:{n}", "group": "g", "at": n} for n in range(50)])
    wanted = [f"g:{n}" for n in range(0, 100, 3)]  # half of them do not exist
    found = [d async for d in coll.find({"_id": {"$in": wanted}}, {"_id": 1})]
    assert sorted(d["_id"] for d in found) == sorted(w for w in wanted if int(w[2:]) < 50)
    assert all(set(d) == {"_id"} for d in found)


async def test_update_many_by_ids_and_state_counts_only_the_matching(db: Db) -> None:
    coll = db["deliveries"]
    await coll.insert_many(
        [{"_id": f"d{n}", "status": "pending" if n % 2 else "delivered"} for n in range(10)]
    )
    result = await coll.update_many(
        {"_id": {"$in": ["d1", "d2", "d3", "d4", "missing"]}, "status": "pending"},
        {"$set": {"status": "delivering", "claim": "t1"}, "$inc": {"attempts": 1}},
    )
    assert result.modified_count == 2
    claimed = [d async for d in coll.find({"status": "delivering", "claim": "t1"})]
    assert sorted(d["_id"] for d in claimed) == ["d1", "d3"]
    assert all(d["attempts"] == 1 for d in claimed)


async def test_bulk_write_of_guarded_updates_counts_those_still_held(db: Db) -> None:
    coll = db["deliveries"]
    await coll.insert_many(
        [{"_id": f"d{n}", "status": "delivering", "claim": f"c{n}"} for n in range(4)]
    )
    result = await coll.bulk_write(
        [
            UpdateOne(
                {"_id": f"d{n}", "claim": "c0" if n == 1 else f"c{n}", "status": "delivering"},
                {"$set": {"status": "delivered", "duration_ms": float(n)}},
            )
            for n in range(4)
        ],
        ordered=False,
    )
    assert result.matched_count == 3 and result.modified_count == 3  # d1's claim moved on
    states = {d["_id"]: d["status"] async for d in coll.find({})}
    assert states == {"d0": "delivered", "d1": "delivering", "d2": "delivered", "d3": "delivered"}


async def test_an_or_nested_in_and_applies_to_the_whole_update_filter(db: Db) -> None:
    coll = db["c"]
    await coll.insert_many([{"_id": "a", "x": 1}, {"_id": "b", "y": 1}, {"_id": "c", "x": 1}])
    result = await coll.update_many(
        {"$and": [{"_id": {"$in": ["a"]}}, {"$or": [{"x": 1}, {"y": 1}]}]},
        {"$set": {"hit": True}},
    )
    assert result.modified_count == 1
    assert [d["_id"] async for d in coll.find({"hit": True})] == ["a"]


async def test_a_held_lease_is_not_taken_while_another_lease_has_expired(db: Db) -> None:
    ttl = timedelta(seconds=30)
    await db["locks"].insert_one(
        {"_id": "other", "owner": "x", "expires_at": datetime.now(UTC) - timedelta(minutes=5)}
    )
    assert await locks.acquire(db, "relay", "first", ttl)
    assert await locks.acquire(db, "relay", "first", ttl)  # a renewal
    contenders = await asyncio.gather(*(locks.acquire(db, "relay", f"r{n}", ttl) for n in range(5)))
    assert contenders == [False] * 5
    held = {d["_id"]: d["owner"] async for d in db["locks"].find({})}
    assert held == {"other": "x", "relay": "first"}  # the expired lease left alone
    assert await locks.acquire(db, "other", "r1", ttl)  # an expired lease is taken over
