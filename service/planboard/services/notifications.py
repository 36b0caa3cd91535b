"""Who hears about what: in-app notifications and mail, by each user's preferences."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from planboard.domain.errors import NotFound
from planboard.domain.model import TaskStatus
from planboard.events.envelope import Event
from planboard.services.mail import queue_mail
from planboard.store import notifications, tasks, users
from planboard.store.document import Document
from planboard.store.documents import TaskDoc
from planboard.store.ids import new_id, utcnow
from planboard.store.pagination import Position

KINDS = ("assignment", "mention", "status_change", "due_soon", "task_ready", "slack_zero")
DEFAULT_PREFERENCES: dict[str, dict[str, bool]] = {
    "assignment": {"in_app": True, "email": True},
    "mention": {"in_app": True, "email": True},
    "status_change": {"in_app": True, "email": False},
    "due_soon": {"in_app": True, "email": True},
    "task_ready": {"in_app": True, "email": False},
    "slack_zero": {"in_app": True, "email": False},
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
    once: str | None = None  # the notification's id when it must not repeat across events


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
    elif event.type == "task.slack_exhausted" and task and task.get("assignee_id"):
        cause = event.data.get("cause_key")
        found.append(
            Notice(
                str(task["assignee_id"]),
                "slack_zero",
                f"No slack left: {label}",
                f"{label} has no slack left after a change to {cause}: any delay now moves "
                "the project's finish.",
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


async def ready_notices(
    db: AsyncDatabase[Document], event: Event, task: TaskDoc | None
) -> list[tuple[Notice, TaskDoc]]:
    """A ``task.updated`` that closed ``task`` (done or cancelled): the assignees of its
    dependents that wait for nothing else now hear that they can start."""
    changes: Any = event.data.get("changes") or {}
    if task is None or event.type != "task.updated" or "status" not in changes:
        return []
    old, new = changes["status"]
    try:
        closed_now = TaskStatus(str(old)).is_open and not TaskStatus(str(new)).is_open
    except ValueError:  # not a status change this version knows
        return []
    if not closed_now:
        return []
    dependents = await tasks.many(db, tasks.id_list(task, "blocks"))
    blockers = await tasks.many(
        db,
        [b for d in dependents.values() for b in tasks.id_list(d, "blocked_by")],
        {"status": 1},
    )
    found: list[tuple[Notice, TaskDoc]] = []
    for dependent in dependents.values():
        assignee = dependent.get("assignee_id")
        if not assignee or assignee == event.actor_id:
            continue
        if not TaskStatus(dependent["status"]).is_open:
            continue
        waiting = [
            b
            for b in tasks.id_list(dependent, "blocked_by")
            if b in blockers and TaskStatus(str(blockers[b]["status"])).is_open
        ]
        if waiting:
            continue
        label = f"{dependent['key']} {dependent['title']}"
        # Events of blockers closed close together may each find the dependent ready (the
        # worker reads the current state): it becomes ready once per set of blockers.
        waited = hashlib.sha256(
            ",".join(sorted(tasks.id_list(dependent, "blocked_by"))).encode()
        ).hexdigest()[:16]
        found.append(
            (
                Notice(
                    str(assignee),
                    "task_ready",
                    f"Ready to start: {label}",
                    f"{task['key']} is {new}; {label} waits for nothing now.",
                    once=f"ready:{dependent['_id']}:{assignee}:{waited}",
                ),
                dependent,
            )
        )
    return found


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
            "_id": notice.once or f"{event.id}:{notice.user_id}",
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
