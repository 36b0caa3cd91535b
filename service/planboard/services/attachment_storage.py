"""Where attachment content lives: one interface, two backends.

- ``gridfs`` (default): a GridFS bucket ``attachments`` in the service's own database,
  written chunk by chunk (255 KiB chunks) as the upload arrives.
- ``s3``: an S3-compatible bucket (AWS, MinIO, Ceph...), through boto3 in a thread;
  content is sent as a multipart upload in ``S3_PART_BYTES`` parts, so an upload never
  holds more than one part in memory, and small files go up in one ``PutObject``.

Keys are chosen by the service (``<attachment id>`` and ``<attachment id>.thumbnail``);
a writer is either closed (the content is stored) or aborted (nothing is left behind).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from typing import Any, Protocol

from gridfs import AsyncGridFSBucket
from gridfs.asynchronous.grid_file import AsyncGridIn
from gridfs.errors import NoFile
from pymongo.asynchronous.database import AsyncDatabase

from planboard.config import MIB, Settings
from planboard.services.backup import s3_client
from planboard.store.document import Document

GRIDFS_BUCKET = "attachments"
GRIDFS_CHUNK_BYTES = 255 * 1024
S3_PART_BYTES = 8 * MIB  # S3 wants parts of at least 5 MiB (all but the last)
READ_CHUNK_BYTES = 256 * 1024


class MissingContent(Exception):
    """The storage holds nothing under the key."""


class ContentWriter(Protocol):
    async def write(self, chunk: bytes) -> None: ...

    async def close(self) -> None:
        """Commit: the content becomes readable under the key."""

    async def abort(self) -> None:
        """Give up: whatever was written is removed."""


class AttachmentStorage(Protocol):
    name: str

    async def open_writer(self, key: str, content_type: str) -> ContentWriter: ...

    def read(
        self, key: str, start: int = 0, length: int | None = None
    ) -> AsyncGenerator[bytes, None]:
        """The content (from byte ``start``, ``length`` bytes), in chunks; raises
        MissingContent before the first chunk when there is none."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the content (nothing happens when there is none)."""

    async def keys(self) -> list[str]:
        """Every key stored (audits and tests)."""
        ...


# --------------------------------------------------------------------------- GridFS


class _GridFSWriter:
    def __init__(self, stream: AsyncGridIn) -> None:
        self._stream = stream

    async def write(self, chunk: bytes) -> None:
        await self._stream.write(chunk)

    async def close(self) -> None:
        await self._stream.close()

    async def abort(self) -> None:
        await self._stream.abort()


class GridFSStorage:
    name = "gridfs"

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.bucket = AsyncGridFSBucket(
            db, bucket_name=GRIDFS_BUCKET, chunk_size_bytes=GRIDFS_CHUNK_BYTES
        )

    async def open_writer(self, key: str, content_type: str) -> ContentWriter:
        await self.delete(key)  # a leftover of an interrupted attempt would clash on _id
        stream = self.bucket.open_upload_stream_with_id(
            key, key, metadata={"contentType": content_type}
        )
        return _GridFSWriter(stream)

    async def read(
        self, key: str, start: int = 0, length: int | None = None
    ) -> AsyncGenerator[bytes, None]:
        try:
            stream = await self.bucket.open_download_stream(key)
        except NoFile:
            raise MissingContent(key) from None
        try:
            if start:
                await stream.seek(start)
            left = stream.length - start if length is None else length
            while left > 0:
                chunk = await stream.read(min(READ_CHUNK_BYTES, left))
                if not chunk:
                    break
                left -= len(chunk)
                yield chunk
        finally:
            await stream.close()

    async def delete(self, key: str) -> None:
        # Look first: a missing file is NoFile on MongoDB but another error on the dev server.
        if not [f async for f in self.bucket.find({"_id": key}, limit=1)]:
            return
        with contextlib.suppress(NoFile):
            await self.bucket.delete(key)

    async def keys(self) -> list[str]:
        return [str(grid_out._id) async for grid_out in self.bucket.find({})]


# --------------------------------------------------------------------------- S3


class _S3Writer:
    def __init__(self, storage: S3Storage, key: str, content_type: str) -> None:
        self._storage = storage
        self._key = key
        self._content_type = content_type
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []

    async def write(self, chunk: bytes) -> None:
        self._buffer += chunk
        while len(self._buffer) >= S3_PART_BYTES:
            part = bytes(self._buffer[:S3_PART_BYTES])
            del self._buffer[:S3_PART_BYTES]
            await self._send_part(part)

    async def _send_part(self, part: bytes) -> None:
        client, bucket, key = self._storage.client, self._storage.bucket, self._full_key
        if self._upload_id is None:
            created = await asyncio.to_thread(
                client.create_multipart_upload,
                Bucket=bucket,
                Key=key,
                ContentType=self._content_type,
            )
            self._upload_id = str(created["UploadId"])
        number = len(self._parts) + 1
        answer = await asyncio.to_thread(
            client.upload_part,
            Bucket=bucket,
            Key=key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=part,
        )
        self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})

    @property
    def _full_key(self) -> str:
        return self._storage.prefix + self._key

    async def close(self) -> None:
        client, bucket, key = self._storage.client, self._storage.bucket, self._full_key
        if self._upload_id is None:
            await asyncio.to_thread(
                client.put_object,
                Bucket=bucket,
                Key=key,
                Body=bytes(self._buffer),
                ContentType=self._content_type,
            )
        else:
            if self._buffer:
                await self._send_part(bytes(self._buffer))
            await asyncio.to_thread(
                client.complete_multipart_upload,
                Bucket=bucket,
                Key=key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
        self._buffer.clear()

    async def abort(self) -> None:
        self._buffer.clear()
        if self._upload_id is not None:
            await asyncio.to_thread(
                self._storage.client.abort_multipart_upload,
                Bucket=self._storage.bucket,
                Key=self._full_key,
                UploadId=self._upload_id,
            )
            self._upload_id = None


class S3Storage:
    name = "s3"

    def __init__(
        self, bucket: str, prefix: str, *, endpoint_url: str | None, region: str | None
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self.client = s3_client(endpoint_url, region)

    async def open_writer(self, key: str, content_type: str) -> ContentWriter:
        return _S3Writer(self, key, content_type)

    async def read(
        self, key: str, start: int = 0, length: int | None = None
    ) -> AsyncGenerator[bytes, None]:
        from botocore.exceptions import ClientError

        extra: dict[str, str] = {}
        if start or length is not None:
            end = "" if length is None else str(start + length - 1)
            extra["Range"] = f"bytes={start}-{end}"
        try:
            answer = await asyncio.to_thread(
                self.client.get_object, Bucket=self.bucket, Key=self.prefix + key, **extra
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise MissingContent(key) from None
            raise
        body = answer["Body"]
        try:
            while chunk := await asyncio.to_thread(body.read, READ_CHUNK_BYTES):
                yield chunk
        finally:
            body.close()

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(
            self.client.delete_object, Bucket=self.bucket, Key=self.prefix + key
        )

    async def keys(self) -> list[str]:
        def listing() -> list[str]:
            found: list[str] = []
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                found += [str(o["Key"])[len(self.prefix) :] for o in page.get("Contents", [])]
            return found

        return await asyncio.to_thread(listing)


def open_storage(settings: Settings, db: AsyncDatabase[Document]) -> AttachmentStorage:
    """The backend ``PLANBOARD_ATTACHMENT_STORAGE`` selects."""
    if settings.attachment_storage == "s3":
        return S3Storage(
            settings.attachment_s3_bucket,
            settings.attachment_s3_prefix,
            endpoint_url=settings.attachment_s3_endpoint or None,
            region=settings.attachment_s3_region or None,
        )
    return GridFSStorage(db)
