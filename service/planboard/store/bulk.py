"""Unordered bulk inserts that tolerate documents which exist already."""

from __future__ import annotations

from collections.abc import Sequence

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

from planboard.store.document import Document

# E11000 and its legacy variants: a duplicate ``_id`` or unique-index key.
DUPLICATE_KEY_CODES = frozenset({11000, 11001, 12582})


async def insert_new(collection: AsyncCollection[Document], docs: Sequence[Document]) -> list[int]:
    """Insert ``docs`` in one unordered ``insert_many``; the positions of those stored now.

    A document whose ``_id`` or unique key is taken (stored before by a redelivery or
    another replica, or by an earlier document of ``docs``) is left out; every other
    document is still inserted. Any other error is raised.
    """
    if not docs:
        return []
    try:
        await collection.insert_many(list(docs), ordered=False)
    except BulkWriteError as exc:
        details = exc.details
        errors = details.get("writeErrors") or []
        if details.get("writeConcernErrors") or any(
            e.get("code") not in DUPLICATE_KEY_CODES for e in errors
        ):
            raise
        taken = {int(e["index"]) for e in errors}
        return [n for n in range(len(docs)) if n not in taken]
    return list(range(len(docs)))
