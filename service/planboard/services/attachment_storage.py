"""Where attachment content lives: one interface, two backends.

- ``gridfs`` (default): a GridFS bucket ``attachments`` in the service's own database,
  written chunk by chunk (255 KiB chunks) as the upload arrives, readable by any GridFS
  client.
- ``s3``: an S3-compatible bucket (AWS, MinIO, Ceph...), through boto3 in a thread;
  content is sent as a multipart upload in ``S3_PART_BYTES`` parts, so an upload never
  holds more than one part in memory, and small files go up in one ``PutObject``.

Keys are chosen by the service (``<attachment id>`` and ``<attachment id>.thumbnail``);
a writer is either closed (the content is stored) or aborted (nothing is left behind).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from bson import Binary
from gridfs import AsyncGridFSBucket
from gridfs.errors import NoFile
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from planboard.config import MIB, Settings
from planboard.domain.errors import Unavailable
from planboard.services.backup import s3_client
from planboard.store.document import Document

GRIDFS_BUCKET = "attachments"
GRIDFS_CHUNK_BYTES = 255 * 1024
S3_PART_BYTES = 8 * MIB  # S3 wants parts of at least 5 MiB (all but the last)
READ_CHUNK_BYTES = 256 * 1024
READ_BATCH_CHUNKS = 4

T = TypeVar("T")


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
    """Writes a GridFS file (the standard ``files``/``chunks`` layout) one chunk at a time.

    PyMongo's own upload stream batches chunks into ``insert_many`` calls of up to 48 MB
    before sending them, which would hold most of an upload in memory; this writer holds
    at most one chunk. The ``files`` document is written last, so a reader never sees a
    file whose chunks are incomplete.
    """

    def __init__(self, storage: GridFSStorage, key: str, content_type: str) -> None:
        self._storage = storage
        self._key = key
        self._content_type = content_type
        self._buffer = bytearray()
        self._number = 0
        self._length = 0

    async def write(self, chunk: bytes) -> None:
        self._buffer += chunk
        while len(self._buffer) >= GRIDFS_CHUNK_BYTES:
            await self._flush(bytes(self._buffer[:GRIDFS_CHUNK_BYTES]))
            del self._buffer[:GRIDFS_CHUNK_BYTES]

    async def _flush(self, data: bytes) -> None:
        await self._storage.chunks.insert_one(
            {"files_id": self._key, "n": self._number, "data": Binary(data)}
        )
        self._number += 1
        self._length += len(data)

    async def close(self) -> None:
        if self._buffer:
            await self._flush(bytes(self._buffer))
            self._buffer.clear()
        await self._storage.files.insert_one(
            {
                "_id": self._key,
                "length": self._length,
                "chunkSize": GRIDFS_CHUNK_BYTES,
                "uploadDate": datetime.now(UTC),
                "filename": self._key,
                "metadata": {"contentType": self._content_type},
            }
        )

    async def abort(self) -> None:
        # Finish the file, then delete it: deleting chunks without their file fails on the
        # dev server (docs/devstack.md); deleting a whole file works on every server.
        self._buffer.clear()
        await self.close()
        await self._storage.delete(self._key)


class GridFSStorage:
    name = "gridfs"

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.bucket = AsyncGridFSBucket(
            db, bucket_name=GRIDFS_BUCKET, chunk_size_bytes=GRIDFS_CHUNK_BYTES
        )
        self.files = db[f"{GRIDFS_BUCKET}.files"]
        self.chunks = db[f"{GRIDFS_BUCKET}.chunks"]

    async def open_writer(self, key: str, content_type: str) -> ContentWriter:
        await self.delete(key)  # a leftover of an interrupted attempt would clash on _id
        return _GridFSWriter(self, key, content_type)

    async def read(
        self, key: str, start: int = 0, length: int | None = None
    ) -> AsyncGenerator[bytes, None]:
        # Chunks are fetched a few at a time, by range: PyMongo's download stream lets the
        # server fill a first batch with 101 chunks (25 MB), and the dev server ignores
        # batch sizes altogether.
        found = await self.files.find_one({"_id": key})
        if found is None:
            raise MissingContent(key)
        size, chunk_size = int(str(found["length"])), int(str(found["chunkSize"]))
        end = size if length is None else min(size, start + length)
        number, last = start // chunk_size, (end - 1) // chunk_size
        while start < end and number <= last:
            upto = min(number + READ_BATCH_CHUNKS, last + 1)
            cursor = self.chunks.find(
                {"files_id": key, "n": {"$gte": number, "$lt": upto}}, sort=[("n", 1)]
            )
            async for chunk in cursor:
                if chunk["n"] != number:
                    raise MissingContent(f"{key}: chunk {number} is missing")
                offset = number * chunk_size
                data = chunk["data"]
                assert isinstance(data, bytes)
                yield data[max(start - offset, 0) : end - offset]
                number += 1
            if number < upto:
                raise MissingContent(f"{key}: chunk {number} is missing")

    async def delete(self, key: str) -> None:
        # Look first: a missing file is NoFile on MongoDB but another error on the dev server.
        if not await self._exists(key):
            return
        try:
            await self.bucket.delete(key)
        except NoFile:
            return
        except OperationFailure:
            # Deleted meanwhile by someone else (the thumbnail worker cleaning up after a
            # race with a delete): the dev server reports that as a failure, not NoFile.
            if await self._exists(key):
                raise

    async def _exists(self, key: str) -> bool:
        return bool([f async for f in self.bucket.find({"_id": key}, limit=1)])

    async def keys(self) -> list[str]:
        return [str(grid_out._id) async for grid_out in self.bucket.find({})]


# --------------------------------------------------------------------------- S3


async def _s3(call: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run a boto3 call in a thread; an unreachable or failing S3 service is Unavailable
    (503 to the client: the request may succeed on a retry), other errors propagate."""
    from botocore.exceptions import ClientError, HTTPClientError
    from botocore.exceptions import ConnectionError as S3ConnectionError

    try:
        return await asyncio.to_thread(call, *args, **kwargs)
    except (S3ConnectionError, HTTPClientError) as exc:
        raise Unavailable("the file storage is unreachable; retry shortly") from exc
    except ClientError as exc:
        if int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0) >= 500:
            raise Unavailable("the file storage is failing; retry shortly") from exc
        raise


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
            created = await _s3(
                client.create_multipart_upload,
                Bucket=bucket,
                Key=key,
                ContentType=self._content_type,
            )
            self._upload_id = str(created["UploadId"])
        number = len(self._parts) + 1
        answer = await _s3(
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
            await _s3(
                client.put_object,
                Bucket=bucket,
                Key=key,
                Body=bytes(self._buffer),
                ContentType=self._content_type,
            )
        else:
            if self._buffer:
                await self._send_part(bytes(self._buffer))
            await _s3(
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
            await _s3(
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
            answer = await _s3(
                self.client.get_object, Bucket=self.bucket, Key=self.prefix + key, **extra
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise MissingContent(key) from None
            raise
        body = answer["Body"]
        try:
            while chunk := await _s3(body.read, READ_CHUNK_BYTES):
                yield chunk
        finally:
            body.close()

    async def delete(self, key: str) -> None:
        await _s3(self.client.delete_object, Bucket=self.bucket, Key=self.prefix + key)

    async def keys(self) -> list[str]:
        def listing() -> list[str]:
            found: list[str] = []
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                found += [str(o["Key"])[len(self.prefix) :] for o in page.get("Contents", [])]
            return found

        return await _s3(listing)


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
