"""The MongoDB patterns the search index (``store/search.py``) relies on, in the form
the code uses: ``$text`` over the ``tokens`` text index (``default_language: "none"``)
with every token quoted (all must match), combined with ``$in`` on the workspace and
filters on other fields, newest-first ``limit``, the light projection, and idempotent
re-indexing with ``replace_one(upsert=True)`` (the text index follows replaces and
deletes)."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING, TEXT, IndexModel, ReplaceOne
from pymongo.asynchronous.database import AsyncDatabase

from planboard.services.search import prefixes_of, words
from planboard.store.search import token, tokens_of

Db = AsyncDatabase[dict[str, Any]]


def entry(i: int, ws: str, text: str, **extra: Any) -> dict[str, Any]:
    terms = list(dict.fromkeys(words(text)))
    return {
        "_id": f"task:{i}",
        "type": "task",
        "workspace_id": ws,
        "terms": terms,
        "tokens": tokens_of(terms, prefixes_of(terms)),
        "updated_ms": 1_700_000_000_000 + i,
        **extra,
    }


async def seeded(db: Db) -> None:
    coll = db.search_index
    await coll.create_indexes(
        [
            IndexModel([("tokens", TEXT)], name="tokens", default_language="none"),
            IndexModel([("workspace_id", ASCENDING), ("updated_ms", DESCENDING)]),
        ]
    )
    await coll.insert_many(
        [
            entry(1, "w1", "Deploy the database", labels=["ops", "db"], status="todo"),
            entry(2, "w1", "Database backups nightly", labels=["ops"], status="done"),
            entry(3, "w2", "Deploy database replicas", labels=["db"], status="todo"),
            entry(4, "w1", "Café crème über Straße", labels=[], status="todo"),
        ]
    )


def text(*query_words: str) -> dict[str, Any]:
    return {"$text": {"$search": " ".join(f'"{token(w)}"' for w in query_words)}}


async def ids(db: Db, query: dict[str, Any]) -> list[str]:
    cursor = db.search_index.find(query, {"_id": 1}).sort("updated_ms", DESCENDING)
    return [str(d["_id"]) async for d in cursor]


async def test_all_words_within_the_callers_workspaces(db: Db) -> None:
    await seeded(db)
    mine = {"workspace_id": {"$in": ["w1"]}}
    assert await ids(db, {**mine, **text("datab")}) == ["task:2", "task:1"]
    assert await ids(db, {**mine, **text("dep", "data")}) == ["task:1"]
    assert await ids(db, {**mine, **text("dep", "nightly")}) == []
    both = {"workspace_id": {"$in": ["w1", "w2"]}}
    assert await ids(db, {**both, **text("deploy")}) == ["task:3", "task:1"]
    assert await ids(db, {"workspace_id": {"$in": []}, **text("de")}) == []


async def test_unicode_words_and_filters_on_other_fields(db: Db) -> None:
    await seeded(db)
    mine = {"workspace_id": {"$in": ["w1"]}}
    assert await ids(db, {**mine, **text(*words("Straße crè"))}) == ["task:4"]
    assert await ids(db, {**mine, **text("über")}) == ["task:4"]
    labelled = {**mine, **text("data"), "labels": {"$all": ["ops", "db"]}}
    assert await ids(db, labelled) == ["task:1"]
    status = {**mine, **text("data"), "status": {"$in": ["done"]}}
    assert await ids(db, status) == ["task:2"]
    typed = {**mine, "type": {"$in": ["task", "comment"]}, **text("the")}
    assert await ids(db, typed) == ["task:1"]


async def test_limit_newest_first_and_top_level_projection(db: Db) -> None:
    await seeded(db)
    cursor = (
        db.search_index.find(
            {"workspace_id": {"$in": ["w1", "w2"]}, **text("da")},
            {"_id": 1, "terms": 1, "updated_ms": 1},
        )
        .sort("updated_ms", DESCENDING)
        .limit(2)
    )
    found = [d async for d in cursor]
    assert [d["_id"] for d in found] == ["task:3", "task:2"]
    assert "tokens" not in found[0] and found[0]["terms"][0] == "deploy"


async def test_reindexing_replaces_in_place(db: Db) -> None:
    await seeded(db)
    coll = db.search_index
    again = entry(1, "w1", "Renamed entirely")
    await coll.replace_one({"_id": again["_id"]}, again, upsert=True)
    await coll.bulk_write([ReplaceOne({"_id": again["_id"]}, again, upsert=True)], ordered=False)
    assert await coll.count_documents({"_id": "task:1"}) == 1
    assert await ids(db, {"workspace_id": {"$in": ["w1"]}, **text("deploy")}) == []
    assert await ids(db, {"workspace_id": {"$in": ["w1"]}, **text("renam")}) == ["task:1"]
    await coll.delete_many({"task_id": "nothing"})
    assert await coll.count_documents({}) == 4
    await coll.delete_one({"_id": "task:1"})
    assert await ids(db, {"workspace_id": {"$in": ["w1"]}, **text("renam")}) == []


async def test_one_character_words_and_tokens_that_look_like_syntax(db: Db) -> None:
    await seeded(db)
    await db.search_index.insert_one(entry(5, "w1", 'x AND "OR" NOT -y ("quoted")'))
    mine = {"workspace_id": {"$in": ["w1"]}}
    assert await ids(db, {**mine, **text("x")}) == ["task:5"]  # a whole one-letter word
    assert await ids(db, {**mine, **text("and", "not", "quoted")}) == ["task:5"]
    assert await ids(db, {**mine, **text("x", "deploy")}) == []
    assert await ids(db, {**mine, **text("zz")}) == []
