"""GridFS: chunked upload, byte-identical download, delete.

Only the bucket API is used; the ``<bucket>.files``/``.chunks`` collections are
not queried directly (the dev server keeps them elsewhere, see docs).
"""

from __future__ import annotations

import hashlib
import io
import os
from typing import Any

import pytest
from gridfs import AsyncGridFSBucket
from gridfs.errors import NoFile
from pymongo.asynchronous.database import AsyncDatabase

Db = AsyncDatabase[dict[str, Any]]

CHUNK = 255 * 1024


async def test_upload_download_delete_three_megabytes(db: Db) -> None:
    bucket = AsyncGridFSBucket(db, bucket_name="attachments", chunk_size_bytes=CHUNK)
    data = os.urandom(3 * 1024 * 1024 + 12_345)
    file_id = await bucket.upload_from_stream(
        "plan.bin", io.BytesIO(data), metadata={"contentType": "application/octet-stream"}
    )
    files = [doc async for doc in bucket.find({"filename": "plan.bin"})]
    assert len(files) == 1
    assert files[0]._id == file_id
    assert files[0].length == len(data)
    assert files[0].chunk_size == CHUNK
    assert files[0].metadata == {"contentType": "application/octet-stream"}

    stream = await bucket.open_download_stream(file_id)
    downloaded = await stream.read()
    assert len(downloaded) == len(data)
    assert hashlib.sha256(downloaded).digest() == hashlib.sha256(data).digest()

    by_name = await bucket.open_download_stream_by_name("plan.bin")
    assert await by_name.read() == data

    await bucket.delete(file_id)
    with pytest.raises(NoFile):
        await bucket.open_download_stream(file_id)
    assert [f async for f in bucket.find({})] == []


async def test_upload_written_in_pieces(db: Db) -> None:
    bucket = AsyncGridFSBucket(db, chunk_size_bytes=CHUNK)
    pieces = [os.urandom(100_000) for _ in range(31)]  # ~3 MB in uneven writes
    upload = bucket.open_upload_stream("pieces.bin")
    for piece in pieces:
        await upload.write(piece)
    await upload.close()
    stream = await bucket.open_download_stream(upload._id)
    assert await stream.read() == b"".join(pieces)


async def test_attachment_patterns_string_ids_seek_and_abort(db: Db) -> None:
    """What the attachment storage relies on: caller-chosen string ids, lookup by _id,
    reading from an offset, and an abandoned upload (closed, then deleted: the dev server
    fails ``GridIn.abort()``) leaving no file behind."""
    bucket = AsyncGridFSBucket(db, bucket_name="attachments", chunk_size_bytes=CHUNK)
    data = os.urandom(600_000)
    upload = bucket.open_upload_stream_with_id("6b06f7948e8e5938a1fa7bbd", "original")
    await upload.write(data[:300_000])
    await upload.write(data[300_000:])
    await upload.close()
    found = [f async for f in bucket.find({"_id": "6b06f7948e8e5938a1fa7bbd"}, limit=1)]
    assert [f.length for f in found] == [len(data)]
    stream = await bucket.open_download_stream("6b06f7948e8e5938a1fa7bbd")
    await stream.seek(CHUNK + 10)
    assert await stream.read(1000) == data[CHUNK + 10 : CHUNK + 1010]
    await stream.close()

    aborted = bucket.open_upload_stream_with_id("6b06f7948e8e5938a1fa7bbd.thumbnail", "t")
    await aborted.write(os.urandom(CHUNK * 2 + 5))  # two full chunks are flushed already
    await aborted.close()
    await bucket.delete("6b06f7948e8e5938a1fa7bbd.thumbnail")
    assert [f async for f in bucket.find({"_id": "6b06f7948e8e5938a1fa7bbd.thumbnail"})] == []
    with pytest.raises(NoFile):
        await bucket.open_download_stream("6b06f7948e8e5938a1fa7bbd.thumbnail")

    await bucket.delete("6b06f7948e8e5938a1fa7bbd")
    assert [f async for f in bucket.find({})] == []
