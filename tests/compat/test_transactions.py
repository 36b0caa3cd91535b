"""Multi-document transactions: detect support; where supported, commit persists and abort discards.

Planboard uses transactions only where the server is a replica set (store/tx.py);
this test records what the server under test does. It does not check isolation:
the nx-27017 dev server shows a transaction's writes to other readers before the
commit (see docs).
"""

from __future__ import annotations

from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConfigurationError, OperationFailure

Db = AsyncDatabase[dict[str, Any]]


class Rollback(Exception):
    """Raised inside a transaction block to make it abort."""


async def transactions_supported(db: Db) -> str | None:
    """None if a transaction can be started, written in and committed; else why not."""
    probe = db["txn_probe"]
    await db.create_collection("txn_probe")  # no implicit collection creation inside
    try:
        async with db.client.start_session() as session, await session.start_transaction():
            await probe.insert_one({"_id": "probe"}, session=session)
    except (ConfigurationError, OperationFailure) as exc:
        return f"{type(exc).__name__}: {exc}"
    if await probe.find_one({"_id": "probe"}) is None:
        return "a committed transaction left no trace"
    return None


async def transfer_then_fail(db: Db) -> None:
    async with db.client.start_session() as session, await session.start_transaction():
        await db["accounts"].update_one({"_id": "b"}, {"$set": {"balance": -1}}, session=session)
        raise Rollback


async def test_transaction_commit_persists_and_abort_discards(db: Db) -> None:
    reason = await transactions_supported(db)
    if reason is not None:
        pytest.skip(f"transactions not supported by this server: {reason}")

    coll = db["accounts"]
    await coll.insert_many([{"_id": "a", "balance": 100}, {"_id": "b", "balance": 0}])

    async with db.client.start_session() as session, await session.start_transaction():
        await coll.update_one({"_id": "a"}, {"$inc": {"balance": -30}}, session=session)
        await coll.update_one({"_id": "b"}, {"$inc": {"balance": 30}}, session=session)
    assert await coll.find_one({"_id": "a"}) == {"_id": "a", "balance": 70}
    assert await coll.find_one({"_id": "b"}) == {"_id": "b", "balance": 30}

    async with db.client.start_session() as session:
        await session.start_transaction()
        await coll.update_one({"_id": "a"}, {"$inc": {"balance": -50}}, session=session)
        await coll.insert_one({"_id": "c", "balance": 50}, session=session)
        await session.abort_transaction()
    assert await coll.find_one({"_id": "a"}) == {"_id": "a", "balance": 70}
    assert await coll.find_one({"_id": "c"}) is None

    with pytest.raises(Rollback):
        await transfer_then_fail(db)
    assert await coll.find_one({"_id": "b"}) == {"_id": "b", "balance": 30}
