"""Admin and database commands: ping, listing, creating and dropping collections."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import CollectionInvalid

Db = AsyncDatabase[dict[str, Any]]


async def test_ping(db: Db) -> None:
    assert (await db.client.admin.command("ping"))["ok"] == 1
    assert (await db.command("ping"))["ok"] == 1


async def test_list_collections(db: Db) -> None:
    await db["b"].insert_one({})
    await db.create_collection("a")
    assert sorted(await db.list_collection_names()) == ["a", "b"]
    reply = await db.command("listCollections")
    assert reply["ok"] == 1
    assert sorted(spec["name"] for spec in reply["cursor"]["firstBatch"]) == ["a", "b"]


async def test_create_collection_twice_raises_collection_invalid(db: Db) -> None:
    created = await db.create_collection("things")
    assert created.name == "things"
    with pytest.raises(CollectionInvalid):
        await db.create_collection("things")
    assert await db.list_collection_names() == ["things"]


async def test_create_collection_if_missing_by_checking_the_list(db: Db) -> None:
    for _ in range(2):
        if "things" not in await db.list_collection_names():
            await db.create_collection("things")
    assert await db.list_collection_names() == ["things"]


async def test_drop_collection(db: Db) -> None:
    await db["gone"].insert_many([{"i": i} for i in range(3)])
    await db["gone"].create_index("i")
    await db.drop_collection("gone")
    assert "gone" not in await db.list_collection_names()
    assert await db["gone"].count_documents({}) == 0
    await db.drop_collection("never_existed")  # dropping a missing collection is no error
    await db["gone"].insert_one({"i": 9})
    assert [spec["name"] async for spec in await db["gone"].list_indexes()] == ["_id_"]


async def test_list_database_names_includes_database_with_data(db: Db) -> None:
    await db["c"].insert_one({})
    assert db.name in await db.client.list_database_names()


async def test_count_command_with_a_query(db: Db) -> None:
    """``store.counting.count``: the ``count`` command, index-backed on both servers."""
    await db.c.create_index([("project_id", 1)])
    await db.c.insert_many(
        [{"project_id": "a" if i % 3 else "b", "read": i % 2 == 0} for i in range(30)]
    )
    assert (await db.command("count", "c", query={"project_id": "a"}))["n"] == 20
    assert (await db.command("count", "c", query={"project_id": "b", "read": False}))["n"] == 5
    assert (await db.command("count", "c", query={"project_id": "zzz"}))["n"] == 0
    assert (await db.command("count", "missing", query={"x": 1}))["n"] == 0
