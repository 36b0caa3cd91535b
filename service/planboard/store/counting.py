"""Counting documents by an indexed filter with the ``count`` command.

``count_documents`` is an aggregation (``$match`` + ``$group``); the dev MongoDB server
evaluates that stage by stage in Python and reads every matching document, so a count
over a 2,000-task project took 66 ms there, against 3 ms for the ``count`` command, which
it answers from SQLite (measured in docs/benchmarks.md, "Tuning log"). On MongoDB the
``count`` command with a query is index-backed (a COUNT_SCAN) and exact on a replica set;
on a sharded cluster it can also count orphaned documents during chunk migrations, which
is acceptable for what it is used for here: limits (tasks per project, webhooks per
workspace), badges (unread notifications) and the outbox backlog gauge. Limits and
invariants that must hold under concurrent writes are not checked by counting at all:
they are counters on the parent document moved by conditional writes (store/quotas.py).
"""

from __future__ import annotations

from collections.abc import Mapping

from pymongo.asynchronous.collection import AsyncCollection

from planboard.store.document import Document


async def count(coll: AsyncCollection[Document], query: Mapping[str, object]) -> int:
    """How many documents of ``coll`` match ``query`` (see the module docstring)."""
    reply = await coll.database.command("count", coll.name, query=dict(query))
    return int(reply["n"])
