"""The ``attachments`` group: makes the thumbnail of each image attachment (Pillow, in a
thread) when its ``attachment.added`` event arrives; redeliveries find it made."""

from __future__ import annotations

from pymongo.asynchronous.database import AsyncDatabase

from planboard.config import Settings
from planboard.events.consumer import ConsumerGroup
from planboard.events.envelope import Event
from planboard.services import attachments
from planboard.services.attachment_storage import open_storage
from planboard.store.document import Document


def attachments_group(settings: Settings, db: AsyncDatabase[Document]) -> ConsumerGroup:
    storage = open_storage(settings, db)
    limits = attachments.Limits.of(settings)

    async def handle(event: Event) -> None:
        if event.data.get("image"):
            await attachments.make_thumbnail(db, storage, limits, str(event.data["attachment_id"]))

    return ConsumerGroup(
        name="attachments",
        families=("attachment",),
        handle=handle,
        event_types=frozenset({"attachment.added"}),
        concurrency=2,  # decoding images is memory-hungry: two at a time per process
    )
