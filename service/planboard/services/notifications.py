"""Who hears about what: in-app notifications and mail, by each user's preferences."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from planboard.domain.errors import NotFound
from planboard.events.envelope import Event
from planboard.services.mail import queue_mail
from planboard.store import notifications, users
from planboard.store.document import Document
from planboard.store.documents import TaskDoc
from planboard.store.ids import new_id, utcnow
from planboard.store.pagination import Position

KINDS = ("assignment", "mention", "status_change", "due_soon")
DEFAULT_PREFERENCES: dict[str, dict[str, bool]] = {
    "assignment": {"in_app": True, "email": True},
    "mention": {"in_app": True, "email": True},
    "status_change": {"in_app": True, "email": False},
    "due_soon": {"in_app": True, "email": True},
}


def preferences_of(user: Document) -> dict[str, dict[str, bool]]:
    stored: Any = user.get("notification_preferences") or {}
    return {
        kind: {
            channel: bool(stored.get(kind, {}).get(channel, default))
            for channel, default in channels.items()
        }
        for kind, channels in DEFAULT_PREFERENCES.items()
    }


@dataclass(frozen=True, slots=True)
class Notice:
    user_id: str
    kind: str
    title: str
    body: str


def notices_for(event: Event, task: TaskDoc | None) -> list[Notice]:
    """Decide recipients from the event; the actor is never notified of their own change."""
    actor = event.actor_id
    label = f"{task['key']} {task['title']}" if task else str(event.data.get("key", "a task"))
    found: list[Notice] = []
    if event.type == "task.created" and task and task.get("assignee_id"):
        found.append(
            Notice(
                str(task["assignee_id"]),
                "assignment",
                f"Assigned to you: {label}",
                f"You were assigned {label}.",
            )
        )
    elif event.type == "task.updated":
        changes: Any = event.data.get("changes") or {}
        if "assignee_id" in changes and changes["assignee_id"][1]:
            found.append(
                Notice(
                    str(changes["assignee_id"][1]),
                    "assignment",
                    f"Assigned to you: {label}",
                    f"You were assigned {label}.",
                )
            )
        if "status" in changes and task and task.get("assignee_id"):
            old, new = changes["status"]
            found.append(
                Notice(
                    str(task["assignee_id"]),
                    "status_change",
                    f"{label}: {old} → {new}",
                    f"{label} moved from {old} to {new}.",
                )
            )
    elif event.type == "comment.created":
        for user_id in event.data.get("mentions") or []:
            found.append(
                Notice(
                    str(user_id),
                    "mention",
                    f"You were mentioned on {label}",
                    f"You were mentioned in a comment on {label}.",
                )
            )
    return [n for n in found if n.user_id != actor]


async def deliver(
    db: AsyncDatabase[Document], event: Event, notice: Notice, task: Mapping[str, object] | None
) -> bool:
    """Store the in-app notification and queue the mail, each per preference, once."""
    user = await users.get(db, notice.user_id)
    if user is None:
        return False
    wanted = preferences_of(user)[notice.kind]
    now = utcnow()
    created = await notifications.insert_once(
        db,
        {
            "_id": f"{event.id}:{notice.user_id}",
            "seq": new_id(),  # time-ordered, for newest-first pages
            "user_id": notice.user_id,
            "workspace_id": event.workspace_id,
            "kind": notice.kind,
            "title": notice.title,
            "body": notice.body,
            "event_type": event.type,
            "task_id": task["_id"] if task else event.data.get("task_id"),
            "project_id": event.key,
            "actor_id": event.actor_id,
            "created_at": now,
            "read": not wanted["in_app"],  # kept for the record, never shown as unread
            "hidden": not wanted["in_app"],
        },
    )
    if created and wanted["email"]:
        await queue_mail(
            db,
            to=str(user["email"]),
            subject=notice.title,
            text=f"Hello {user['name']},\n\n{notice.body}\n",
            kind=notice.kind,
            key=notice.user_id,
            workspace_id=event.workspace_id,
        )
    return created


# --------------------------------------------------------------------------- the inbox (API)


async def inbox_page(
    db: AsyncDatabase[Document],
    user_id: str,
    *,
    unread_only: bool,
    after: Position | None,
    limit: int,
) -> tuple[list[Document], bool, int]:
    """A page of the user's visible notifications (newest first), whether more follow, and
    how many are unread."""
    found, more = await notifications.page(
        db, user_id, unread_only=unread_only, after=after, limit=limit
    )
    return found, more, await notifications.unread_count(db, user_id)


async def mark_read(db: AsyncDatabase[Document], user_id: str, notification_id: str) -> None:
    """Mark one of the user's notifications read (404 for anyone else's)."""
    if not await notifications.mark_read(db, user_id, notification_id, utcnow()):
        raise NotFound("notification not found")


async def mark_all_read(db: AsyncDatabase[Document], user_id: str) -> int:
    """Mark every notification of the user read; how many were unread."""
    return await notifications.mark_all_read(db, user_id, utcnow())


async def preferences(db: AsyncDatabase[Document], user_id: str) -> dict[str, dict[str, bool]]:
    user = await users.get(db, user_id)
    if user is None:
        raise NotFound("user not found")
    return preferences_of(user)


async def change_preferences(
    db: AsyncDatabase[Document], user_id: str, changes: Mapping[str, Mapping[str, bool]]
) -> dict[str, dict[str, bool]]:
    """Merge ``changes`` (kind -> channel -> on) into the user's preferences."""
    merged = await preferences(db, user_id)
    for kind, channels in changes.items():
        merged[kind].update(channels)
    await users.set_preferences(db, user_id, merged, utcnow())
    return {k: merged[k] for k in DEFAULT_PREFERENCES}
