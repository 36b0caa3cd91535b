"""Queue a mail for the notifications worker (body in MongoDB, only its id in Kafka)."""

from __future__ import annotations

from pymongo.asynchronous.database import AsyncDatabase

from planboard.events import outbox
from planboard.events.envelope import Event
from planboard.store import mail_queue
from planboard.store.document import Document
from planboard.store.ids import new_id, utcnow


async def queue_mail(
    db: AsyncDatabase[Document],
    *,
    to: str,
    subject: str,
    text: str,
    kind: str,
    key: str,
    workspace_id: str | None = None,
    request_id: str | None = None,
) -> str:
    """Store the message and its ``mail.queued`` event; returns the mail id."""
    mail_id = new_id()
    await mail_queue.insert(
        db,
        {
            "_id": mail_id,
            "to": to,
            "subject": subject,
            "text": text,
            "kind": kind,
            "created_at": utcnow(),
            "sent": False,
        },
    )
    await outbox.record(
        db,
        [
            Event(
                type="mail.queued",
                key=key,
                workspace_id=workspace_id,
                data={"mail_id": mail_id, "kind": kind},
                request_id=request_id,
            )
        ],
    )
    return mail_id
