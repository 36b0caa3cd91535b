"""Write units: a transaction where the server supports one, else plain writes.

MongoDB serves multi-document transactions only on a replica set or sharded
cluster; the embedded dev server is a single node. ``PLANBOARD_MONGODB_TRANSACTIONS``
(auto|on|off, ``settings.mongodb_transactions``, passed in by the service context:
services/context.py) overrides the detection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession

from planboard.store.document import Document

Mode = Literal["auto", "on", "off"]

_support: dict[int, bool] = {}


async def transactions_supported(client: AsyncMongoClient[Document], mode: Mode = "auto") -> bool:
    """``on``/``off`` as configured; ``auto``: the server is a replica set or mongos."""
    if mode != "auto":
        return mode == "on"
    key = id(client)
    if key not in _support:
        hello = await client.admin.command("hello")
        _support[key] = bool(hello.get("setName")) or hello.get("msg") == "isdbgrid"
    return _support[key]


@asynccontextmanager
async def write_unit(
    client: AsyncMongoClient[Document], mode: Mode = "auto"
) -> AsyncIterator[AsyncClientSession | None]:
    """Yield a session inside a transaction (committed on success), or None."""
    if not await transactions_supported(client, mode):
        yield None
        return
    async with client.start_session() as session, await session.start_transaction():
        yield session
