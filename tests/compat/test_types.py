"""BSON types round trip unchanged; large documents round trip."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from bson import Int64, ObjectId
from pymongo.asynchronous.database import AsyncDatabase

Db = AsyncDatabase[dict[str, Any]]


async def test_tz_aware_datetime_round_trips_as_utc_milliseconds(db: Db) -> None:
    coll = db["c"]
    moment = datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=UTC)
    plus_two = timezone(timedelta(hours=2))
    same_instant_elsewhere = datetime(2024, 3, 1, 1, 59, 58, 123999, tzinfo=plus_two)
    await coll.insert_one({"_id": 1, "at": moment, "local": same_instant_elsewhere})
    doc = await coll.find_one({"_id": 1})
    assert doc is not None
    assert doc["at"] == datetime(2024, 2, 29, 23, 59, 58, 123000, tzinfo=UTC)
    assert doc["at"].utcoffset() == timedelta(0)
    assert doc["local"] == doc["at"]
    assert doc["local"].utcoffset() == timedelta(0)


async def test_datetime_range_queries_and_sort(db: Db) -> None:
    coll = db["c"]
    base = datetime(2025, 1, 1, tzinfo=UTC)
    await coll.insert_many(
        [{"_id": i, "at": base + timedelta(hours=i, milliseconds=i)} for i in range(10)]
    )
    query = {"at": {"$gte": base + timedelta(hours=3), "$lt": base + timedelta(hours=6)}}
    assert [d["_id"] async for d in coll.find(query, sort=[("at", -1)])] == [5, 4, 3]
    latest = await coll.find_one({}, sort=[("at", -1)])
    assert latest is not None
    assert latest["at"] == base + timedelta(hours=9, milliseconds=9)


async def test_scalar_and_container_types_round_trip(db: Db) -> None:
    coll = db["c"]
    oid = ObjectId()
    original: dict[str, Any] = {
        "_id": oid,
        "ref": ObjectId("65a1b2c3d4e5f60718293a4b"),
        "none": None,
        "yes": True,
        "no": False,
        "int32": 2_147_483_647,
        "negative": -42,
        "int64": Int64(2**62 + 7),
        "float": 3.141592653589793,
        "tiny": 1e-300,
        "list": [1, "two", 3.0, None, [4, 5], {"six": 6}],
        "empty_list": [],
        "empty_doc": {},
        "nested": {"a": {"b": {"c": {"d": [{"e": "deep"}]}}}},
        "unicode": "Grüße, Привет, こんにちは, 你好, 🚀✨👩‍💻",
        "emoji_key_🙂": "ok",
        "cjk_键": "值",
        "bytes": b"\x00\x01\xff binary \x00",  # Binary subtype 0; other subtypes are not kept
    }
    await coll.insert_one(original)
    doc = await coll.find_one({"_id": oid})
    assert doc == original
    assert isinstance(doc["int64"], int)
    assert doc["int64"] == 2**62 + 7
    assert isinstance(doc["bytes"], bytes)
    assert isinstance(doc["float"], float)
    assert doc["yes"] is True
    assert doc["none"] is None


async def test_query_by_typed_values(db: Db) -> None:
    coll = db["c"]
    first, second = ObjectId(), ObjectId()
    await coll.insert_many(
        [
            {
                "_id": first,
                "ref": str(second),
                "big": Int64(2**40),
                "name": "東京 🗼",
                "flag": True,
            },
            {"_id": second, "ref": str(first), "big": 5, "name": "Zürich", "flag": False},
        ]
    )
    # ObjectIds are queried as _id; references to other documents are id strings (docs)
    assert [d["_id"] async for d in coll.find({"_id": first})] == [first]
    assert [d["_id"] async for d in coll.find({"_id": {"$in": [second]}})] == [second]
    assert [d["_id"] async for d in coll.find({"ref": str(first)})] == [second]
    assert [d["_id"] async for d in coll.find({"big": {"$gt": 2**32}})] == [first]
    assert [d["_id"] async for d in coll.find({"name": "東京 🗼"})] == [first]
    assert [d["_id"] async for d in coll.find({"flag": False})] == [second]


async def test_one_megabyte_document_round_trips(db: Db) -> None:
    coll = db["c"]
    blob = os.urandom(512 * 1024)
    text = "ä€𝄞x" * 40_000  # ~0.4 MB of multi-byte UTF-8
    items = [{"i": i, "label": f"item {i}"} for i in range(2_000)]
    await coll.insert_one({"_id": "big", "blob": blob, "text": text, "items": items})
    doc = await coll.find_one({"_id": "big"})
    assert doc is not None
    assert doc["blob"] == blob
    assert doc["text"] == text
    assert doc["items"] == items
    await coll.update_one({"_id": "big"}, {"$set": {"text": text[::-1]}})
    doc = await coll.find_one({"_id": "big"}, {"text": 1})
    assert doc == {"_id": "big", "text": text[::-1]}


async def test_datetime_written_by_updates_keeps_its_type(db: Db) -> None:
    """Timestamps are set by updates everywhere (updated_at, revoked_at, last_used_at)."""
    from pymongo import ReturnDocument

    coll = db["stamps"]
    start = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    await coll.insert_one({"_id": 1, "n": 0})
    await coll.update_one({"_id": 1}, {"$set": {"updated_at": start}, "$inc": {"n": 1}})
    later = start + timedelta(hours=1)
    after = await coll.find_one_and_update(
        {"_id": 1}, {"$set": {"seen_at": later}}, return_document=ReturnDocument.AFTER
    )
    assert after is not None
    assert after["updated_at"] == start and isinstance(after["updated_at"], datetime)
    assert after["seen_at"] == later
    await coll.update_many({}, {"$set": {"bulk_at": start}})
    assert await coll.count_documents({"updated_at": {"$lt": later}}) == 1
    assert await coll.count_documents({"seen_at": {"$gt": later}}) == 0
    assert await coll.count_documents({"bulk_at": {"$gte": start, "$lte": start}}) == 1
