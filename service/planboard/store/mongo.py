"""The MongoDB client, created the same way by every process."""

from __future__ import annotations

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from planboard.config import Settings
from planboard.store.document import Document


def create_client(settings: Settings, appname: str) -> AsyncMongoClient[Document]:
    """A lazily connecting client: processes start even while MongoDB is down."""
    timeout_ms = int(settings.dependency_timeout_s * 1000)
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        settings.mongodb_uri,
        tz_aware=True,
        appname=appname,
        uuidRepresentation="standard",
        serverSelectionTimeoutMS=max(timeout_ms, 1000) * 3,
        connectTimeoutMS=timeout_ms,
        retryWrites=True,
    )
    return client


def database(client: AsyncMongoClient[Document], settings: Settings) -> AsyncDatabase[Document]:
    return client[settings.mongodb_db]
