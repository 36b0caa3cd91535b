"""Due-date reminders and the daily digest (run by the scheduler)."""

from __future__ import annotations

import logging
from datetime import timedelta

from pymongo.asynchronous.database import AsyncDatabase

from planboard.domain.model import TaskStatus
from planboard.events.envelope import Event
from planboard.services.mail import queue_mail
from planboard.services.notifications import Notice, deliver, preferences_of
from planboard.store import users
from planboard.store.document import Document
from planboard.store.ids import utcnow

log = logging.getLogger(__name__)

OPEN_STATUSES = [s.value for s in TaskStatus if s.is_open]
MAX_DIGEST_LINES = 20


async def remind_due_soon(db: AsyncDatabase[Document]) -> int:
    """Notify assignees of open tasks due today or tomorrow; once per task and due date."""
    today = utcnow().date()
    window = [today.isoformat(), (today + timedelta(days=1)).isoformat()]
    cursor = db.tasks.find(
        {"due_date": {"$gte": window[0], "$lte": window[1]}, "status": {"$in": OPEN_STATUSES}},
        {"title": 1, "key": 1, "due_date": 1, "assignee_id": 1, "project_id": 1, "workspace_id": 1},
    )
    sent = 0
    async for task in cursor:
        assignee = task.get("assignee_id")
        if not assignee:
            continue
        label = f"{task['key']} {task['title']}"
        when = "today" if task["due_date"] == window[0] else "tomorrow"
        # The event id makes the reminder idempotent: one per task and due date.
        event = Event(
            type="task.due_soon",
            key=str(task["project_id"]),
            workspace_id=str(task["workspace_id"]),
            data={"task_id": task["_id"], "due_date": task["due_date"]},
            id=f"due:{task['_id']}:{task['due_date']}",
        )
        notice = Notice(
            str(assignee), "due_soon", f"Due {when}: {label}", f"{label} is due {when}."
        )
        if await deliver(db, event, notice, task):
            sent += 1
    log.info("due-date reminders sent", extra={"count": sent})
    return sent


async def send_digests(db: AsyncDatabase[Document]) -> int:
    """One mail per user with unread notifications (if they want mail at all)."""
    cursor = db.notifications.find({"read": False}, {"user_id": 1, "title": 1, "created_at": 1})
    unread: dict[str, list[str]] = {}
    async for doc in cursor:
        unread.setdefault(str(doc["user_id"]), []).append(str(doc["title"]))
    sent = 0
    for user_id, titles in unread.items():
        user = await users.get(db, user_id)
        if user is None or not any(p["email"] for p in preferences_of(user).values()):
            continue
        lines = "\n".join(f"- {t}" for t in titles[:MAX_DIGEST_LINES])
        more = (
            f"\n…and {len(titles) - MAX_DIGEST_LINES} more"
            if len(titles) > MAX_DIGEST_LINES
            else ""
        )
        await queue_mail(
            db,
            to=str(user["email"]),
            subject=f"Planboard digest: {len(titles)} unread notification(s)",
            text=f"Hello {user['name']},\n\nWaiting for you:\n{lines}{more}\n",
            kind="digest",
            key=user_id,
        )
        sent += 1
    return sent
