"""Keyset pagination, the one way every list pages through a collection.

A page is the rows after a position ``(value, id)`` in ``(field, _id)`` order, plus
whether more follow (one row more is read than is returned). The API turns positions
into signed cursors (api/pagination.py) and back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection

from planboard.store.document import Document

Position = tuple[Any, str]


def keyset_filter(
    field: str, descending: bool, after: Position | None, *, unique: bool = False
) -> dict[str, object] | None:
    """The filter for "rows after ``(value, id)``" in ``(field, _id)`` order; a ``unique``
    field (``_id`` always is) orders by itself."""
    if after is None:
        return None
    value, last_id = after
    op = "$lt" if descending else "$gt"
    if field == "_id":
        return {"_id": {op: last_id}}
    if unique:
        return {field: {op: value}}
    return {"$or": [{field: {op: value}}, {field: value, "_id": {op: last_id}}]}


async def keyset_page(
    coll: AsyncCollection[Document],
    query: Mapping[str, object],
    *,
    field: str,
    descending: bool,
    after: Position | None,
    limit: int,
    projection: Mapping[str, int] | None = None,
    unique: bool = False,
) -> tuple[list[Document], bool]:
    """One page in ``(field, _id)`` order plus whether more rows follow."""
    extra = keyset_filter(field, descending, after, unique=unique)
    full = {"$and": [dict(query), extra]} if extra else dict(query)
    direction = DESCENDING if descending else ASCENDING
    if field == "_id" or unique:
        sort = [(field, direction)]
    else:
        sort = [(field, direction), ("_id", direction)]
    cursor = coll.find(full, projection, sort=sort, limit=limit + 1)
    docs = [doc async for doc in cursor]
    return docs[:limit], len(docs) > limit
