"""Uploads and downloads are streamed: a 40 MiB file passes through without the process
ever holding it.

The API runs in this process (aiohttp's test server), so ``tracemalloc`` sees every
Python allocation of the request path — multipart parsing, sniffing, hashing, the GridFS
writes — and of the client generating the body. The peak while 40 MiB go through must
stay far below the file size (a buffered body alone would be 40 MiB).
"""

from __future__ import annotations

import hashlib
import tracemalloc

import pytest
from aiohttp.test_utils import TestClient, TestServer

from planboard.app import create_app
from planboard.config import MIB
from tests.integration.attachments.conftest import MULTIPART_HEADERS, streamed_multipart
from tests.utils.api import expect
from tests.utils.files import PDF

pytestmark = pytest.mark.integration

SIZE = 40 * MIB
BOUND = 12 * MIB  # the 1 MiB sniffing head, a few chunks in flight, interpreter noise


@pytest.fixture(scope="module")
async def roomy(settings, db, pipeline):
    app = create_app(settings.replace(attachment_max_bytes=64 * MIB))
    test_client: TestClient[object, object] = TestClient(TestServer(app))
    await test_client.start_server()
    yield test_client
    await test_client.close()


def filler() -> bytes:
    return bytes(range(256)) * 1024  # 256 KiB, a pattern that does not compress away


def expected_digest() -> str:
    digest = hashlib.sha256(PDF)
    piece, sent = filler(), len(PDF)
    while sent < SIZE:
        chunk = piece[: SIZE - sent]
        digest.update(chunk)
        sent += len(chunk)
    return digest.hexdigest()


async def test_a_large_upload_and_download_are_streamed(roomy, team):
    owner, task = team["owner"], team["task"]["id"]
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        response = await roomy.post(
            f"/api/v1/tasks/{task}/attachments",
            data=streamed_multipart("big.pdf", PDF, filler(), SIZE),
            headers={**owner.headers, **MULTIPART_HEADERS},
        )
        created = await expect(response, 201)
        _, upload_peak = tracemalloc.get_traced_memory()

        tracemalloc.reset_peak()
        download = await roomy.get(created["download_url"])
        assert download.status == 200
        assert download.headers["Content-Length"] == str(SIZE)
        digest, received = hashlib.sha256(), 0
        async for chunk in download.content.iter_chunked(256 * 1024):
            digest.update(chunk)
            received += len(chunk)
        _, download_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert created["size"] == SIZE
    assert created["sha256"] == expected_digest()
    assert (received, digest.hexdigest()) == (SIZE, created["sha256"])
    assert upload_peak - base < BOUND, f"upload peaked at {(upload_peak - base) / MIB:.1f} MiB"
    assert download_peak - base < BOUND, (
        f"download peaked at {(download_peak - base) / MIB:.1f} MiB"
    )
