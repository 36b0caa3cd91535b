"""Hostile and malformed uploads: each is a 4xx problem+json, and nothing is stored.

"Nothing stored" is checked in both places: no ``attachments`` document for the task and
no new content in the GridFS bucket (thumbnails of earlier tests' images may still appear
meanwhile, so only original content is compared).
"""

from __future__ import annotations

import re

import pytest
from aiohttp.test_utils import TestClient, TestServer

from planboard.app import create_app
from planboard.config import MIB
from tests.integration.attachments.conftest import (
    MULTIPART_HEADERS,
    attachment_docs,
    file_part_headers,
    raw_multipart,
    stored_keys,
    streamed_multipart,
    upload,
)
from tests.utils.api import expect, expect_problem
from tests.utils.files import ELF, HTML, PDF, PE, SVG, image_bytes, png_bomb

pytestmark = pytest.mark.integration

LIMIT = int(1.5 * MIB)  # above the 1 MiB the sniffer reads first, so streams get cut midway


@pytest.fixture(scope="module")
async def small(settings, db, pipeline):
    """An API instance with a 1.5 MiB upload limit and at most 3 attachments per task."""
    app = create_app(settings.replace(attachment_max_bytes=LIMIT, attachment_max_per_task=3))
    test_client: TestClient[object, object] = TestClient(TestServer(app))
    await test_client.start_server()
    yield test_client
    await test_client.close()


async def originals(db) -> set[str]:
    return {k for k in await stored_keys(db) if not k.endswith(".thumbnail")}


@pytest.fixture
async def nothing_stored(db, team):
    """Asserts, after the test, that the task has no attachments and no content was added."""
    before = await originals(db)
    yield
    assert await attachment_docs(db, team["task"]["id"]) == []
    assert await originals(db) == before


CASES = [
    # (content, filename, status, what the problem says)
    (b"", "empty.txt", 422, "empty"),
    (image_bytes("PNG"), "report.pdf", 422, "content is png"),
    (PDF, "scan.png", 422, "content is pdf"),
    (b"plain words\n", "notes", 422, "no extension"),
    (ELF, "cat.png", 415, "ELF executable"),
    (PE, "setup.png", 415, "Windows executable"),
    (b"PK\x03\x04" + b"\x00" * 100, "book.txt", 415, "ZIP archive"),
    (SVG, "logo.svg", 415, "HTML, SVG or XML"),
    (SVG, "logo.txt", 415, "HTML, SVG or XML"),
    (HTML, "page.html", 415, "HTML, SVG or XML"),
    (b"\x00\x01\x02\x03binary", "data.txt", 415, "binary"),
    (b"caf\xe9 latin-1\n", "latin.txt", 415, "UTF-8"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "broken.png", 415, "header cannot be read"),
    (png_bomb(), "bomb.png", 422, "too many pixels"),
    (png_bomb(8_000, 8_000), "big.png", 422, "over the limit of 40000000"),
]


@pytest.mark.parametrize(
    ("content", "filename", "status", "says"), CASES, ids=[c[1] for c in CASES]
)
async def test_refused_uploads_store_nothing(
    client, team, nothing_stored, content, filename, status, says
):
    problem = await expect_problem(
        await upload(client, team["owner"], team["task"]["id"], content, filename), status
    )
    text = problem["detail"] + " ".join(e["message"] for e in problem.get("errors", []))
    assert says in text, problem


async def test_oversize_with_content_length_is_refused_before_reading(small, team, nothing_stored):
    content = PDF + b"\x00" * (LIMIT + 100_000)
    response = await upload(small, team["owner"], team["task"]["id"], content, "big.pdf")
    problem = await expect_problem(response, 413)
    assert str(LIMIT) in problem["detail"]


async def test_oversize_without_content_length_is_cut_midstream(small, team, nothing_stored):
    body = streamed_multipart("big.pdf", PDF, b"\x00" * 65_536, LIMIT * 2)
    response = await small.post(
        f"/api/v1/tasks/{team['task']['id']}/attachments",
        data=body,
        headers={**team["owner"].headers, **MULTIPART_HEADERS},
    )
    assert response.request_info.headers.get("Transfer-Encoding") == "chunked"
    await expect_problem(response, 413)


async def test_exactly_the_limit_is_accepted(small, team, db):
    content = PDF + b"\x00" * (LIMIT - len(PDF))
    response = await upload(small, team["owner"], team["task"]["id"], content, "edge.pdf")
    created = await expect(response, 201)
    assert created["size"] == LIMIT
    assert created["id"] in await stored_keys(db)


async def test_text_that_turns_binary_after_the_first_megabyte(small, team, nothing_stored):
    content = b"a line of text\n" * 80_000 + b"\xff\xfe broken"  # ~1.2 MB, UTF-8 breaks late
    problem = await expect_problem(
        await upload(small, team["owner"], team["task"]["id"], content, "log.txt"), 415
    )
    assert "UTF-8" in problem["detail"]


async def test_per_task_limit(small, team):
    owner, task = team["owner"], team["task"]["id"]
    for n in range(3):
        await expect(await upload(small, owner, task, b"x\n", f"{n}.txt"), 201)
    problem = await expect_problem(await upload(small, owner, task, b"x\n", "4.txt"), 409)
    assert "3 attachments" in problem["detail"]


async def post_raw(client, team, body: bytes, content_type: str | None = None):
    headers = {**team["owner"].headers, **MULTIPART_HEADERS}
    if content_type is not None:
        headers["Content-Type"] = content_type
    return await client.post(
        f"/api/v1/tasks/{team['task']['id']}/attachments", data=body, headers=headers
    )


async def test_malformed_multipart(client, team, nothing_stored):
    text = b"hello\n"
    # no file part (a plain field instead)
    body = raw_multipart((b'Content-Disposition: form-data; name="note"', text))
    await expect_problem(await post_raw(client, team, body), 422, "file")
    # a file part under another name
    body = raw_multipart((file_part_headers(b"a.txt", name=b"upload"), text))
    await expect_problem(await post_raw(client, team, body), 422, "file")
    # two file parts: refused after the first was read, which is then removed
    body = raw_multipart((file_part_headers(b"a.txt"), text), (file_part_headers(b"b.txt"), text))
    await expect_problem(await post_raw(client, team, body), 422, "file")
    # no filename
    body = raw_multipart((b'Content-Disposition: form-data; name="file"', text))
    await expect_problem(await post_raw(client, team, body), 422, "file")
    # an empty body, and one cut off before its closing boundary
    await expect_problem(await post_raw(client, team, b""), 400)
    cut = raw_multipart((file_part_headers(b"a.txt"), text * 100))[:-40]
    await expect_problem(await post_raw(client, team, cut), 400)
    # not multipart at all, and multipart without a boundary
    await expect_problem(await post_raw(client, team, text, "text/plain"), 415)
    await expect_problem(await post_raw(client, team, b"{}", "application/json"), 415)
    await expect_problem(await post_raw(client, team, body, "multipart/form-data"), 400)
    # unknown query parameters are refused like everywhere else
    response = await client.post(
        f"/api/v1/tasks/{team['task']['id']}/attachments?x=1",
        data=raw_multipart((file_part_headers(b"a.txt"), text)),
        headers={**team["owner"].headers, **MULTIPART_HEADERS},
    )
    await expect_problem(response, 422, "x")


async def test_rejections_are_counted_by_reason(client, team):
    owner, task = team["owner"], team["task"]["id"]
    await expect(await upload(client, owner, task, PDF, "fine.pdf"), 201)
    await expect_problem(await upload(client, owner, task, png_bomb(), "bomb.png"), 422)
    await expect_problem(await upload(client, owner, task, ELF, "a.png"), 415)
    metrics = await (await client.get("/metrics")).text()

    def count(reason: str) -> float:
        pattern = rf'^planboard_attachment_rejections_total{{reason="{reason}"}} (\S+)$'
        found = re.search(pattern, metrics, re.M)
        return float(found.group(1)) if found else 0.0

    assert count("image_too_large") >= 1
    assert count("executable") >= 1
    assert re.search(
        r'^planboard_attachment_uploads_total\{storage="gridfs"\} [1-9]', metrics, re.M
    )
    assert re.search(
        r'^planboard_attachment_upload_bytes_total\{storage="gridfs"\} [1-9]', metrics, re.M
    )
