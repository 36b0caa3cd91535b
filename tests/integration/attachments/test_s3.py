"""The S3-compatible backend, end to end against moto's standalone server (real HTTP)."""

from __future__ import annotations

import hashlib
import uuid

import pytest
from aiohttp.test_utils import TestClient, TestServer

from planboard.app import create_app
from planboard.config import MIB
from planboard.services import attachments as service
from planboard.services.attachment_storage import S3_PART_BYTES, S3Storage, open_storage
from tests.integration.attachments.conftest import (
    MULTIPART_HEADERS,
    streamed_multipart,
    upload,
)
from tests.utils.api import expect, expect_problem
from tests.utils.files import ELF, PDF, image_bytes

pytestmark = pytest.mark.integration

LIMIT = 24 * MIB  # room for three 8 MiB parts


@pytest.fixture(scope="module")
def s3_settings(settings, s3_endpoint):
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
        }.items():
            patch.setenv(name, value)
        s3 = settings.replace(
            attachment_storage="s3",
            attachment_s3_bucket=f"pb-att-{uuid.uuid4().hex[:8]}",
            attachment_s3_prefix="stack/files/",
            attachment_s3_endpoint=s3_endpoint,
            attachment_max_bytes=LIMIT,
        )
        s3.check()
        yield s3


@pytest.fixture(scope="module")
def bucket(s3_settings, db) -> S3Storage:
    storage = open_storage(s3_settings, db)
    assert isinstance(storage, S3Storage)
    storage.client.create_bucket(Bucket=storage.bucket)
    return storage


@pytest.fixture(scope="module")
async def s3_client(s3_settings, bucket, db, pipeline):
    test_client: TestClient[object, object] = TestClient(TestServer(create_app(s3_settings)))
    await test_client.start_server()
    yield test_client
    await test_client.close()


def objects(storage: S3Storage) -> list[str]:
    answer = storage.client.list_objects_v2(Bucket=storage.bucket, Prefix=storage.prefix)
    return sorted(str(o["Key"]) for o in answer.get("Contents", []))


def pending_multipart(storage: S3Storage) -> list[str]:
    answer = storage.client.list_multipart_uploads(Bucket=storage.bucket)
    return [str(u["Key"]) for u in answer.get("Uploads", [])]


async def test_upload_download_thumbnail_delete(s3_client, bucket, db, team, s3_settings):
    owner = team["owner"]
    png = image_bytes("PNG", (900, 300))
    created = await expect(await upload(s3_client, owner, team["task"]["id"], png, "s3.png"), 201)
    assert objects(bucket) == [f"stack/files/{created['id']}"]
    doc = await db.attachments.find_one({"_id": created["id"]})
    assert doc["storage"] == "s3"
    head = bucket.client.head_object(Bucket=bucket.bucket, Key=f"stack/files/{created['id']}")
    assert head["ContentType"] == "image/png"

    download = await s3_client.get(created["download_url"])
    assert (download.status, await download.read()) == (200, png)
    part = await s3_client.get(created["download_url"], headers={"Range": "bytes=-10"})
    assert (part.status, await part.read()) == (206, png[-10:])

    # The worker's handler, on this backend (the session's worker group serves GridFS).
    limits = service.Limits.of(s3_settings)
    assert await service.make_thumbnail(db, bucket, limits, created["id"]) == "ready"
    got = await expect(
        await s3_client.get(f"/api/v1/attachments/{created['id']}", headers=owner.headers), 200
    )
    thumb = await s3_client.get(got["thumbnail_url"])
    assert thumb.status == 200 and (await thumb.read())[8:12] == b"WEBP"
    assert f"stack/files/{created['id']}.thumbnail" in objects(bucket)

    deleted = await s3_client.delete(f"/api/v1/attachments/{created['id']}", headers=owner.headers)
    assert deleted.status == 204
    assert objects(bucket) == []
    await expect_problem(await s3_client.get(created["download_url"]), 404)


async def test_a_large_file_goes_up_in_parts(s3_client, bucket, team):
    size = 2 * S3_PART_BYTES + 123_456
    body = streamed_multipart("big.pdf", PDF, b"\x5a" * 65_536, size)
    response = await s3_client.post(
        f"/api/v1/tasks/{team['task']['id']}/attachments",
        data=body,
        headers={**team["owner"].headers, **MULTIPART_HEADERS},
    )
    created = await expect(response, 201)
    assert created["size"] == size
    key = f"stack/files/{created['id']}"
    head = bucket.client.head_object(Bucket=bucket.bucket, Key=key)
    assert head["ContentLength"] == size
    assert head["ETag"].strip('"').endswith("-3")  # a multipart upload of three parts
    download = await s3_client.get(created["download_url"])
    digest = hashlib.sha256()
    async for chunk in download.content.iter_chunked(1 << 20):
        digest.update(chunk)
    assert digest.hexdigest() == created["sha256"]
    await s3_client.delete(f"/api/v1/attachments/{created['id']}", headers=team["owner"].headers)
    assert objects(bucket) == []


async def test_refused_uploads_leave_no_object_nor_open_multipart_upload(
    s3_client, bucket, db, team
):
    owner, task = team["owner"], team["task"]["id"]
    await expect_problem(await upload(s3_client, owner, task, ELF, "tool.png"), 415)
    # Cut after two 8 MiB parts were already sent: the multipart upload is aborted.
    body = streamed_multipart("huge.pdf", PDF, b"\x00" * 65_536, LIMIT + 5 * MIB)
    response = await s3_client.post(
        f"/api/v1/tasks/{task}/attachments",
        data=body,
        headers={**owner.headers, **MULTIPART_HEADERS},
    )
    await expect_problem(response, 413)
    assert objects(bucket) == []
    assert pending_multipart(bucket) == []
    assert await db.attachments.count_documents({"task_id": task}) == 0


async def test_storage_down_is_a_503_and_leaves_nothing_visible(s3_settings, db, team):
    """An unreachable S3 endpoint: the upload answers 503 problem+json with Retry-After,
    the task shows no attachment, and the half-made one is left for the sweep."""
    from planboard_devstack.paths import free_port

    down = s3_settings.replace(attachment_s3_endpoint=f"http://127.0.0.1:{free_port()}")
    client: TestClient[object, object] = TestClient(TestServer(create_app(down)))
    await client.start_server()
    try:
        owner, task = team["owner"], team["task"]["id"]
        answer = await upload(client, owner, task, PDF + b"\n% body\n", "notes.pdf")
        problem = await expect_problem(answer, 503)
        assert answer.headers["Retry-After"].isdigit()
        assert "file storage" in problem["detail"]
        listed = await expect(
            await client.get(f"/api/v1/tasks/{task}/attachments", headers=owner.headers), 200
        )
        assert listed["items"] == []
        left = [d async for d in db.attachments.find({"task_id": task})]
        assert all(d["state"] == "uploading" for d in left)  # the sweep's to remove
    finally:
        await client.close()
