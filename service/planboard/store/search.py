"""The ``search_index`` collection: one entry per task, project and comment.

An entry's ``_id`` is ``<type>:<entity id>``; ``terms`` holds the whole words and
``tokens`` one text-index token per word prefix of 2..``MAX_PREFIX`` characters (and per
one-character word), so a query is ``{"$text": {"$search": '"tok1" "tok2"'}}`` on the
``tokens`` text index (migration 9) — which MongoDB and the dev server's SQLite FTS5
both answer from the index (``tests/compat/test_search_patterns.py``). Times are integer
milliseconds (``updated_ms``), never datetimes (docs/devstack.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pymongo import DESCENDING, ReplaceOne
from pymongo.asynchronous.database import AsyncDatabase

from planboard.store.document import Document

SEARCH_INDEX = "search_index"
MIN_PREFIX = 2  # shorter query words must be whole words

# What the ranking reads back: never the (large) tokens text.
RANK_FIELDS = {
    "_id": 1,
    "type": 1,
    "entity_id": 1,
    "workspace_id": 1,
    "project_id": 1,
    "task_id": 1,
    "key": 1,
    "task_key": 1,
    "title": 1,
    "snippet": 1,
    "status": 1,
    "assignee_id": 1,
    "labels": 1,
    "title_terms": 1,
    "terms": 1,
    "updated_ms": 1,
}


def token(word: str) -> str:
    """The text-index token of a prefix (``p`` + its UTF-8 in hex) or of a short whole
    word (``w`` + hex). Hex keeps every token one plain ASCII word, so MongoDB's text index
    (``default_language: "none"``: no stemming, no stop words) and the dev server's SQLite
    FTS5 split, case and match it the same way, for words of any script."""
    kind = "p" if len(word) >= MIN_PREFIX else "w"
    return kind + word.encode().hex()


def tokens_of(terms: Sequence[str], prefixes: Sequence[str]) -> str:
    """The ``tokens`` text of an entry: every prefix, and every whole word shorter than
    ``MIN_PREFIX`` (the words a query can ask for)."""
    short = [t for t in terms if len(t) < MIN_PREFIX]
    return " ".join(token(w) for w in [*prefixes, *short])


def entry_id(kind: str, entity_id: str) -> str:
    return f"{kind}:{entity_id}"


async def upsert(db: AsyncDatabase[Document], entry: Document) -> None:
    # The replacement carries the _id: the dev server ignores the filter's (devstack.md).
    await db[SEARCH_INDEX].replace_one({"_id": entry["_id"]}, entry, upsert=True)


async def upsert_many(db: AsyncDatabase[Document], entries: Sequence[Document]) -> None:
    if entries:
        await db[SEARCH_INDEX].bulk_write(
            [ReplaceOne({"_id": e["_id"]}, e, upsert=True) for e in entries], ordered=False
        )


async def delete(db: AsyncDatabase[Document], kind: str, entity_id: str) -> None:
    await db[SEARCH_INDEX].delete_one({"_id": entry_id(kind, entity_id)})


async def delete_where(db: AsyncDatabase[Document], query: Document) -> int:
    result = await db[SEARCH_INDEX].delete_many(query)
    return int(result.deleted_count)


async def candidates(db: AsyncDatabase[Document], query: Document, limit: int) -> list[Document]:
    """The newest ``limit`` entries matching ``query`` (the ranking's bounded input)."""
    cursor = db[SEARCH_INDEX].find(query, RANK_FIELDS).sort("updated_ms", DESCENDING).limit(limit)
    return [doc async for doc in cursor]


async def ids_of(db: AsyncDatabase[Document], query: Document) -> set[str]:
    return {str(doc["_id"]) async for doc in db[SEARCH_INDEX].find(query, {"_id": 1})}


def chunks(items: Iterable[Document], size: int) -> Iterable[list[Document]]:
    batch: list[Document] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
