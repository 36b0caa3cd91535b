"""Files attached to tasks: streamed upload with checks by content, thumbnails, deletion.

An upload is judged on its first bytes before anything is stored (type from the bytes,
the name's extension, an image's declared size), then streamed to the storage backend
chunk by chunk with the size limit (and, for text, UTF-8) enforced as it goes; any
failure aborts the write and leaves nothing behind. The metadata document exists from
the first stored byte (``uploading``) so that content whose process died mid-upload
is found and removed by the sweep; it becomes visible (``stored``) together with its
``attachment.added`` event and activity entry.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import tempfile
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from PIL import Image
from pymongo.asynchronous.database import AsyncDatabase

from planboard.config import MIB, Settings
from planboard.domain import files
from planboard.domain.access import Role
from planboard.domain.errors import Conflict, DomainError, NotFound
from planboard.services.access import Access, Caller, authorize
from planboard.services.activity import Actor, entry, event, record_change
from planboard.services.attachment_storage import AttachmentStorage, MissingContent
from planboard.services.context import ServiceContext
from planboard.services.projects import check_id
from planboard.store import attachments, projects, quotas, tasks
from planboard.store.document import Document
from planboard.store.documents import ProjectDoc, TaskDoc
from planboard.store.ids import new_id, utcnow

log = logging.getLogger(__name__)

THUMBNAIL_SUFFIX = ".thumbnail"
ABANDONED_AFTER = timedelta(hours=1)  # an upload still "uploading" after this has died
SWEEP_BATCH = 500
SPOOL_BYTES = 8 * MIB  # the worker keeps originals up to this in memory, larger on disk


@dataclass(frozen=True, slots=True)
class Limits:
    max_bytes: int
    max_pixels: int
    max_per_task: int
    thumbnail_px: int

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(
            max_bytes=settings.attachment_max_bytes,
            max_pixels=settings.attachment_max_pixels,
            max_per_task=settings.attachment_max_per_task,
            thumbnail_px=settings.attachment_thumbnail_px,
        )


def thumbnail_key(attachment_id: str) -> str:
    return attachment_id + THUMBNAIL_SUFFIX


async def attachment_for(
    db: AsyncDatabase[Document],
    caller: Caller,
    attachment_id: str,
    *,
    scope: str,
    role: Role = Role.VIEWER,
) -> tuple[Document, TaskDoc, ProjectDoc, Access]:
    """A stored attachment, its task and project, and the caller's access (404 across
    workspaces and for attachments that are being uploaded or were deleted)."""
    caller.require_scope(scope)
    check_id(attachment_id, "attachment_id")
    attachment = await attachments.get(db, attachment_id)
    if attachment is None:
        raise NotFound("attachment not found")
    task = await tasks.get(db, str(attachment["task_id"]))
    project = await projects.get(db, str(attachment["project_id"]))
    if task is None or project is None:
        raise NotFound("attachment not found")
    access = await authorize(
        db, caller, project["workspace_id"], scope=scope, role=role, what="attachment"
    )
    return attachment, task, project, access


async def _read_head(chunks: AsyncIterator[bytes], limit: int) -> tuple[bytes, bool]:
    """Up to ``files.HEAD_BYTES`` (more if a chunk overshoots) and whether that was all."""
    head = bytearray()
    async for chunk in chunks:
        head += chunk
        if len(head) > limit:
            raise files.TooLarge(limit)
        if len(head) >= files.HEAD_BYTES:
            return bytes(head), False
    return bytes(head), True


async def upload(
    ctx: ServiceContext,
    storage: AttachmentStorage,
    limits: Limits,
    task: TaskDoc,
    project: ProjectDoc,
    actor: Actor,
    *,
    filename: str | None,
    chunks: AsyncIterator[bytes],
) -> Document:
    """Check and store one file for ``task``; returns the stored attachment."""
    db = ctx.db
    name = files.sanitize_filename(filename)
    task_id = task["_id"]
    full = Conflict(f"the task already has {limits.max_per_task} attachments (the limit)")
    if int(str(task.get("attachment_count") or 0)) >= limits.max_per_task:
        raise full  # before reading the body; the count is taken below
    head, complete = await _read_head(chunks, limits.max_bytes)
    file_type = files.sniff(head, complete=complete)
    files.check_extension(name, file_type)
    width = height = None
    if file_type.kind == "image":
        width, height = files.inspect_image(head, file_type, limits.max_pixels)
    text = files.TextCheck() if file_type.kind == "text" else None

    now = utcnow()
    attachment: Document = {
        "_id": new_id(),
        "workspace_id": project["workspace_id"],
        "project_id": project["_id"],
        "task_id": task["_id"],
        "uploaded_by": actor.user_id,
        "filename": name,
        "type": file_type.name,
        "content_type": file_type.media_type,
        "state": attachments.UPLOADING,
        "storage": storage.name,
        "created_at": now,
        "updated_at": now,
    }
    if width is not None:
        attachment |= {"width": width, "height": height}
    # The task's attachment_count is taken by a conditional write before the document
    # exists, so concurrent uploads never pass the limit (store/quotas.py); it is given
    # back when the document stops counting (_uncounted).
    async with quotas.held(
        db, quotas.TASK_ATTACHMENTS, task_id, limit=limits.max_per_task, refusal=full
    ):
        await attachments.insert(db, attachment)
    attachment_id = str(attachment["_id"])
    digest = hashlib.sha256()
    size = 0
    try:
        writer = await storage.open_writer(attachment_id, file_type.media_type)
        try:
            chunk: bytes = head
            pending: AsyncIterator[bytes] | None = None if complete else chunks
            while True:
                size += len(chunk)
                if size > limits.max_bytes:
                    raise files.TooLarge(limits.max_bytes)
                if text is not None:
                    text.feed(chunk)
                digest.update(chunk)
                await writer.write(chunk)
                if pending is None:
                    break
                try:
                    chunk = await anext(pending)
                except StopAsyncIteration:
                    break
            if text is not None:
                text.feed(b"", final=True)
        except BaseException:
            await _quietly(writer.abort(), "abort the upload of", attachment_id)
            raise
        await writer.close()
        values: Document = {
            "size": size,
            "sha256": digest.hexdigest(),
            "thumbnail": "pending" if file_type.kind == "image" else "none",
            "updated_at": utcnow(),
        }
        async with ctx.write() as unit:
            session = unit.session
            if not await attachments.mark_stored(db, attachment_id, values, session=session):
                raise NotFound("the attachment was removed while it was uploaded")
            await record_change(
                db,
                events=[
                    event(
                        "attachment.added",
                        project,
                        actor,
                        attachment_id=attachment_id,
                        task_id=task["_id"],
                        key=task["key"],
                        filename=name,
                        content_type=file_type.media_type,
                        size=size,
                        image=file_type.kind == "image",
                    )
                ],
                entries=[
                    entry(
                        project=project,
                        actor=actor,
                        entity="attachment",
                        entity_id=attachment_id,
                        action="attachment_added",
                        at=now,
                        task=task,
                        data={"attachment_id": attachment_id, "filename": name, "size": size},
                    )
                ],
                session=session,
            )
    except BaseException:
        # Clean up without hiding why the upload failed. When the content cannot be removed
        # (the storage is down) the document stays "uploading": the scheduler's
        # attachment-sweep removes both once the upload is an hour old.
        if await _quietly(storage.delete(attachment_id), "remove the content of", attachment_id):
            await _quietly(_remove(db, attachment_id), "forget", attachment_id)
        raise
    return {**attachment, **values, "state": attachments.STORED}


async def _quietly(step: Awaitable[object], what: str, attachment_id: str) -> bool:
    """Run a clean-up step of a failed upload; log (never raise) its own failure."""
    try:
        await step
    except Exception as exc:
        log.warning(
            "could not %s attachment %s after a failed upload: %s",
            what,
            attachment_id,
            exc,
            extra={"attachment_id": attachment_id},
        )
        return False
    return True


async def _forget(
    db: AsyncDatabase[Document], storage: AttachmentStorage, attachment_id: str
) -> None:
    """Remove an attachment's content, thumbnail and document (safe to repeat)."""
    await storage.delete(attachment_id)
    await storage.delete(thumbnail_key(attachment_id))
    await _remove(db, attachment_id)


async def _remove(db: AsyncDatabase[Document], attachment_id: str) -> None:
    """Delete the document; one that still counted (an upload that failed or died) gives
    its place back to its task, exactly once (only the delete that found it does)."""
    removed = await attachments.remove(db, attachment_id)
    if removed is not None and removed.get("state") in attachments.COUNTED:
        await quotas.TASK_ATTACHMENTS.give_back(db, str(removed["task_id"]))


async def delete_attachment(
    ctx: ServiceContext,
    storage: AttachmentStorage,
    attachment: Document,
    task: TaskDoc,
    project: ProjectDoc,
    actor: Actor,
) -> None:
    """Hide the attachment with its event and activity entry, then remove its content;
    should the storage fail, the sweep finishes the job."""
    db = ctx.db
    attachment_id = str(attachment["_id"])
    now = utcnow()
    async with ctx.write() as unit:
        session = unit.session
        if not await attachments.mark_deleted(db, attachment_id, now, session=session):
            raise NotFound("attachment not found")
        await record_change(
            db,
            events=[
                event(
                    "attachment.deleted",
                    project,
                    actor,
                    attachment_id=attachment_id,
                    task_id=task["_id"],
                    key=task["key"],
                    filename=attachment["filename"],
                )
            ],
            entries=[
                entry(
                    project=project,
                    actor=actor,
                    entity="attachment",
                    entity_id=attachment_id,
                    action="attachment_deleted",
                    at=now,
                    task=task,
                    data={"attachment_id": attachment_id, "filename": attachment["filename"]},
                )
            ],
            session=session,
        )
    # after the commit: stored -> deleted happened once, so its place is given back once
    await quotas.TASK_ATTACHMENTS.give_back(db, str(task["_id"]))
    try:
        await _forget(db, storage, attachment_id)
    except Exception:  # the document stays "deleted": the next sweep retries
        log.warning("attachment %s: content not removed yet", attachment_id, exc_info=True)


async def list_attachments(
    db: AsyncDatabase[Document], task: TaskDoc, *, after: tuple[Any, str] | None, limit: int
) -> tuple[list[Document], bool]:
    """Oldest first."""
    return await attachments.page_of_task(db, task["_id"], after=after, limit=limit)


async def downloadable(db: AsyncDatabase[Document], attachment_id: str, variant: str) -> Document:
    """A stored attachment whose ``variant`` can be served (404 otherwise)."""
    attachment = await attachments.get(db, attachment_id)
    if attachment is None or (variant == "thumbnail" and attachment.get("thumbnail") != "ready"):
        raise NotFound("file not found")
    return attachment


def open_content(
    storage: AttachmentStorage,
    attachment: Document,
    variant: str,
    start: int = 0,
    length: int | None = None,
) -> AsyncGenerator[bytes, None]:
    key = str(attachment["_id"])
    return storage.read(thumbnail_key(key) if variant == "thumbnail" else key, start, length)


# --------------------------------------------------------------------------- worker side


async def make_thumbnail(
    db: AsyncDatabase[Document], storage: AttachmentStorage, limits: Limits, attachment_id: str
) -> str:
    """Make the thumbnail of an image attachment once; returns what happened.

    A redelivered event finds the thumbnail ``ready`` and does nothing; one that finds it
    still ``pending`` (a crash between writing and marking) overwrites the same key.
    """
    attachment = await attachments.get(db, attachment_id)
    if attachment is None:
        return "gone"
    if attachment.get("thumbnail") != "pending":
        return "skipped"
    file_type = files.TYPES_BY_NAME.get(str(attachment["type"]))
    if file_type is None or file_type.kind != "image":
        return "skipped"
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        try:
            async for chunk in storage.read(attachment_id):
                spool.write(chunk)
        except MissingContent:
            return "gone"
        spool.seek(0)
        try:
            data, width, height = await asyncio.to_thread(
                files.make_thumbnail, spool, file_type, limits.thumbnail_px, limits.max_pixels
            )
        except (DomainError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            log.warning("attachment %s: no thumbnail (%r)", attachment_id, exc)
            await attachments.set_thumbnail(db, attachment_id, {"thumbnail": "failed"}, utcnow())
            return "failed"
    key = thumbnail_key(attachment_id)
    writer = await storage.open_writer(key, files.THUMBNAIL_TYPE)
    try:
        await writer.write(data)
    except BaseException:
        await writer.abort()
        raise
    await writer.close()
    values = {
        "thumbnail": "ready",
        "thumbnail_size": len(data),
        "thumbnail_width": width,
        "thumbnail_height": height,
    }
    if not await attachments.set_thumbnail(db, attachment_id, values, utcnow()):
        await storage.delete(key)  # deleted meanwhile: leave nothing behind
        return "gone"
    return "ready"


async def sweep(
    db: AsyncDatabase[Document], storage: AttachmentStorage, now: datetime | None = None
) -> int:
    """Remove the content and documents of deleted attachments (their task, project or
    workspace is gone too) and of uploads that died midway; returns how many."""
    cutoff = (now or utcnow()) - ABANDONED_AFTER
    removed = 0
    while batch := await attachments.sweepable(db, cutoff, SWEEP_BATCH):
        for attachment in batch:
            await _forget(db, storage, str(attachment["_id"]))
            removed += 1
        if len(batch) < SWEEP_BATCH:
            break
    if removed:
        log.info("attachment sweep", extra={"removed": removed})
    return removed
