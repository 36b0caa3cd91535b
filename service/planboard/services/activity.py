"""The activity log (entries built from changes, stored in the change's write unit) and the
shared helpers of the planning services: actors, events, guarded-write retries."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from planboard.domain.errors import Conflict
from planboard.events import outbox
from planboard.events.envelope import Event
from planboard.store import activity
from planboard.store.document import Document
from planboard.store.ids import new_id

Changes = dict[str, tuple[Any, Any]]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is acting, for events and the activity log."""

    user_id: str | None
    request_id: str | None


def diff(before: Mapping[str, Any], after: Mapping[str, Any], fields: list[str]) -> Changes:
    """``field -> (old, new)`` for the fields whose values differ."""
    return {
        field: (before.get(field), after.get(field))
        for field in fields
        if before.get(field) != after.get(field)
    }


def changes_out(changes: Changes) -> dict[str, list[Any]]:
    """The event form: ``{field: [old, new]}``."""
    return {field: [old, new] for field, (old, new) in changes.items()}


def entry(
    *,
    project: Mapping[str, object],
    actor: Actor,
    entity: str,
    entity_id: str,
    action: str,
    at: datetime,
    task: Mapping[str, object] | None = None,
    changes: Changes | None = None,
    data: Mapping[str, Any] | None = None,
) -> Document:
    """One activity entry; ``changes`` become ``[{field, before, after}]``."""
    doc: Document = {
        "_id": new_id(),
        "workspace_id": project["workspace_id"],
        "project_id": project["_id"],
        "entity": entity,
        "entity_id": entity_id,
        "action": action,
        "actor_id": actor.user_id,
        "changes": [
            {"field": field, "before": old, "after": new}
            for field, (old, new) in (changes or {}).items()
        ],
        "at": at,
    }
    if task is not None:
        doc["task_id"] = task["_id"]
        doc["task_key"] = task.get("key")
    if data:
        doc["data"] = dict(data)
    return doc


async def record_change(
    db: AsyncDatabase[Document],
    *,
    events: list[Event],
    entries: list[Document],
    session: AsyncClientSession | None,
) -> None:
    """A change's domain events (outbox) and activity entries, in the change's write unit."""
    await outbox.record(db, events, session=session)
    await activity.insert_many(db, entries, session=session)


def event(kind: str, project: Mapping[str, object], actor: Actor, **data: Any) -> Event:
    """A domain event keyed by the project id (one project's events stay ordered)."""
    return Event(
        type=kind,
        key=str(project["_id"]),
        workspace_id=str(project["workspace_id"]),
        data={"project_id": project["_id"], **data},
        actor_id=actor.user_id,
        request_id=actor.request_id,
    )


async def page_of_task(
    db: AsyncDatabase[Document], task_id: str, *, after: tuple[Any, str] | None, limit: int
) -> tuple[list[Document], bool]:
    return await activity.page(db, {"task_id": task_id}, after=after, limit=limit)


async def page_of_project(
    db: AsyncDatabase[Document], project_id: str, *, after: tuple[Any, str] | None, limit: int
) -> tuple[list[Document], bool]:
    return await activity.page(db, {"project_id": project_id}, after=after, limit=limit)


class Retry(Exception):
    """Raised inside a write attempt whose version guard lost a race: run it again."""


async def with_retries(attempt: Callable[[], Awaitable[T]], tries: int = 8) -> T:
    """Run ``attempt`` until it does not raise Retry (or a transient transaction error).

    Each attempt re-reads what it guards on, so a lost race is simply replayed; after
    ``tries`` lost races the caller gets a 409 instead of waiting forever.
    """
    for number in range(tries):
        try:
            return await attempt()
        except Retry:
            pass
        except PyMongoError as error:
            if not error.has_error_label("TransientTransactionError"):
                raise
        await asyncio.sleep((1 + secrets.randbelow(10)) * 0.001 * min(number + 1, 10))
    raise Conflict("the resource is being changed concurrently; try again")
