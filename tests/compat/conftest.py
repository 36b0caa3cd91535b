"""Fixtures of the MongoDB compatibility suite.

``mongo_uri`` comes from the top-level conftest: the dev server the session
started, or ``PLANBOARD_MONGODB_URI`` (a real MongoDB).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase


@pytest.fixture(scope="session")
async def compat_client(mongo_uri: str) -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    """One client for the whole suite; datetimes come back tz-aware (UTC)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongo_uri, tz_aware=True, serverSelectionTimeoutMS=10_000
    )
    yield client
    await client.close()


@pytest.fixture
async def db(
    compat_client: AsyncMongoClient[dict[str, Any]],
) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    """A fresh, uniquely named database, dropped after the test."""
    name = f"compat_{uuid.uuid4().hex[:16]}"
    yield compat_client[name]
    await compat_client.drop_database(name)
