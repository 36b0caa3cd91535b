"""Write units: a transaction where the server supports one, else plain writes.

MongoDB serves multi-document transactions only on a replica set or sharded
cluster; the embedded dev server is a single node. ``PLANBOARD_MONGODB_TRANSACTIONS``
(auto|on|off) overrides the detection.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession

from planboard.store.document import Document

_support: dict[int, bool] = {}


async def transactions_supported(client: AsyncMongoClient[Document]) -> bool:
    mode = os.environ.get("PLANBOARD_MONGODB_TRANSACTIONS", "auto").lower()
    if mode in {"on", "off"}:
        return mode == "on"
    key = id(client)
    if key not in _support:
        hello = await client.admin.command("hello")
        _support[key] = bool(hello.get("setName")) or hello.get("msg") == "isdbgrid"
    return _support[key]


@asynccontextmanager
async def write_unit(
    client: AsyncMongoClient[Document],
) -> AsyncIterator[AsyncClientSession | None]:
    """Yield a session inside a transaction (committed on success), or None."""
    if not await transactions_supported(client):
        yield None
        return
    async with client.start_session() as session, await session.start_transaction():
        yield session
