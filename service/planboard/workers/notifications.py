"""The ``notifications`` group: sends queued mail over SMTP, once per message."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import aiosmtplib
from pymongo.asynchronous.database import AsyncDatabase

from planboard.config import Settings
from planboard.events.consumer import ConsumerGroup
from planboard.events.envelope import Event
from planboard.services.notifications import deliver, notices_for, ready_notices
from planboard.store import mail_queue, tasks
from planboard.store.document import Document
from planboard.store.documents import TaskDoc
from planboard.store.ids import utcnow

log = logging.getLogger(__name__)


def compose(settings: Settings, mail: Document) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = str(mail["to"])
    message["Subject"] = str(mail["subject"])
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="planboard.local")
    message["X-Planboard-Mail-Id"] = mail["_id"]
    message.set_content(str(mail["text"]))
    return message


NOTIFYING_EVENTS = frozenset(
    {"task.created", "task.updated", "task.slack_exhausted", "comment.created"}
)


def notifications_group(settings: Settings, db: AsyncDatabase[Document]) -> ConsumerGroup:
    async def notify(event: Event, task: TaskDoc | None) -> None:
        for notice in notices_for(event, task):
            await deliver(db, event, notice, task)
        for notice, dependent in await ready_notices(db, event, task):
            await deliver(db, event, notice, dependent)

    async def handle(event: Event) -> None:
        await handle_batch([event])

    async def handle_batch(events: Sequence[Event]) -> None:
        """In poll order; the tasks of the poll's task and comment events read at once."""
        task_ids = [
            str(e.data["task_id"])
            for e in events
            if e.type in NOTIFYING_EVENTS and e.data.get("task_id")
        ]
        found = await tasks.many(db, task_ids)
        for event in events:
            if event.type in NOTIFYING_EVENTS:
                task_id = event.data.get("task_id")
                await notify(event, found.get(str(task_id)) if task_id else None)
            else:
                await send(event)

    async def send(event: Event) -> None:
        mail_id = str(event.data.get("mail_id", ""))
        mail = await mail_queue.get(db, mail_id)
        if mail is None or mail.get("sent"):
            return  # already sent (a redelivery) or purged
        await aiosmtplib.send(
            compose(settings, mail),
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            timeout=settings.dependency_timeout_s * 5,
        )
        await mail_queue.mark_sent(db, mail_id, utcnow())
        log.info("mail sent", extra={"mail_id": mail_id, "kind": mail.get("kind")})

    return ConsumerGroup(
        name="notifications",
        families=("mail", "task", "comment"),
        handle=handle,
        handle_batch=handle_batch,
        event_types=frozenset({"mail.queued"}) | NOTIFYING_EVENTS,
        # a notification's id is its event's (or its once-key): stored once, queued once;
        # mail is sent only while the queued message is not marked sent
        markers=False,
    )
