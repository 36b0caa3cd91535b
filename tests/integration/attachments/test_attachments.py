"""Attachments on GridFS (the default backend): upload, list, read, download, delete, access."""

from __future__ import annotations

import hashlib
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from planboard.services.attachment_storage import GridFSStorage
from tests.integration.attachments.conftest import (
    MULTIPART_HEADERS,
    attachment_docs,
    file_part_headers,
    form,
    raw_multipart,
    stored_keys,
    upload,
)
from tests.utils.api import expect, expect_problem, new_pat
from tests.utils.files import PDF, image_bytes

pytestmark = pytest.mark.integration


async def test_upload_list_get_download_delete(client, db, team):
    owner, task = team["owner"], team["task"]
    png = image_bytes("PNG", (320, 200))
    # The part says text/html: ignored, the type comes from the bytes.
    response = await upload(
        client, owner, task["key"], png, "diagram.png", content_type="text/html"
    )
    created = await expect(response, 201)
    assert response.headers["Location"] == f"/api/v1/attachments/{created['id']}"
    assert created["filename"] == "diagram.png"
    assert created["content_type"] == "image/png"
    assert (created["size"], created["width"], created["height"]) == (len(png), 320, 200)
    assert created["sha256"] == hashlib.sha256(png).hexdigest()
    assert created["task_id"] == task["id"]
    assert created["uploaded_by"] == owner.id
    assert created["thumbnail"] in ("pending", "ready")
    assert created["download_url"].startswith(f"/api/v1/files/{created['id']}/original?exp=")

    listed = await expect(
        await client.get(f"/api/v1/tasks/{task['id']}/attachments", headers=owner.headers), 200
    )
    assert [a["id"] for a in listed["items"]] == [created["id"]]
    assert listed["next_cursor"] is None

    got = await expect(
        await client.get(f"/api/v1/attachments/{created['id']}", headers=owner.headers), 200
    )
    assert got["sha256"] == created["sha256"]

    # The signed URL needs no bearer token.
    download = await client.get(got["download_url"])
    assert download.status == 200
    assert await download.read() == png
    assert download.headers["Content-Type"] == "image/png"
    assert download.headers["Content-Length"] == str(len(png))
    assert download.headers["Content-Disposition"] == (
        "attachment; filename=\"diagram.png\"; filename*=UTF-8''diagram.png"
    )
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in download.headers["Content-Security-Policy"]
    assert download.headers["Strict-Transport-Security"].startswith("max-age=")
    assert download.headers["X-Request-ID"]
    etag = download.headers["ETag"]
    again = await client.get(got["download_url"], headers={"If-None-Match": etag})
    assert again.status == 304
    part = await client.get(got["download_url"], headers={"Range": "bytes=8-15"})
    assert part.status == 206
    assert await part.read() == png[8:16]
    assert part.headers["Content-Range"] == f"bytes 8-15/{len(png)}"
    outside = await client.get(got["download_url"], headers={"Range": f"bytes={len(png)}-"})
    await expect_problem(outside, 416)

    added = await db.outbox.find_one({"type": "attachment.added", "data.attachment_id": got["id"]})
    assert added["data"]["task_id"] == task["id"] and added["data"]["image"] is True
    assert created["id"] in await stored_keys(db)

    deleted = await client.delete(f"/api/v1/attachments/{created['id']}", headers=owner.headers)
    assert deleted.status == 204
    assert created["id"] not in await stored_keys(db)
    assert created["id"] + ".thumbnail" not in await stored_keys(db)
    assert await attachment_docs(db, task["id"]) == []
    await expect_problem(
        await client.get(f"/api/v1/attachments/{created['id']}", headers=owner.headers), 404
    )
    await expect_problem(await client.get(got["download_url"]), 404)
    await expect_problem(
        await client.delete(f"/api/v1/attachments/{created['id']}", headers=owner.headers), 404
    )
    gone = await db.outbox.find_one({"type": "attachment.deleted", "data.attachment_id": got["id"]})
    assert gone is not None
    actions = [
        e["action"] async for e in db.activity.find({"entity_id": created["id"]}).sort("_id", 1)
    ]
    assert actions == ["attachment_added", "attachment_deleted"]


async def test_text_pdf_and_unicode_names(client, team):
    owner, task = team["owner"], team["task"]["id"]
    text = "id,name\n1,Zoë\n2,Łukasz\n".encode()
    created = await expect(await upload(client, owner, task, text, "people.csv"), 201)
    assert created["content_type"] == "text/plain; charset=utf-8"
    assert created["thumbnail"] == "none" and created["thumbnail_url"] is None
    pdf = await expect(await upload(client, owner, task, PDF, "Überblick \u2013 plan.pdf"), 201)
    assert pdf["content_type"] == "application/pdf"
    assert pdf["filename"] == "Überblick \u2013 plan.pdf"
    download = await client.get(pdf["download_url"])
    assert await download.read() == PDF
    assert download.headers["Content-Disposition"] == (
        'attachment; filename="_berblick _ plan.pdf"; '
        "filename*=UTF-8''%C3%9Cberblick%20%E2%80%93%20plan.pdf"
    )

    # Paths, control and bidi characters never reach the stored name.
    async def post_named(filename: str):
        body = raw_multipart((file_part_headers(filename.encode()), b"hello\n"))
        return await client.post(
            f"/api/v1/tasks/{task}/attachments",
            data=body,
            headers={**owner.headers, **MULTIPART_HEADERS},
        )

    odd = await expect(await post_named("../..\\etc/\u202egnp\u200b.txt"), 201)
    assert odd["filename"] == "gnp.txt"
    # A control character in a part header is a malformed request.
    await expect_problem(await post_named("bell\x07.txt"), 400)


async def test_listing_pages_with_a_cursor(client, team):
    owner, task = team["owner"], team["task"]["id"]
    ids = [
        (await expect(await upload(client, owner, task, f"n{i}\n".encode(), f"{i}.txt"), 201))["id"]
        for i in range(5)
    ]
    seen, cursor = [], None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await expect(
            await client.get(
                f"/api/v1/tasks/{task}/attachments", params=params, headers=owner.headers
            ),
            200,
        )
        seen += [a["id"] for a in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ids
    await expect_problem(
        await client.get(
            f"/api/v1/tasks/{task}/attachments",
            params={"cursor": "forged.cursor"},
            headers=owner.headers,
        ),
        422,
        "cursor",
    )


async def test_who_may_do_what(client, db, team):
    owner, member, viewer, outsider = (team[k] for k in ("owner", "member", "viewer", "outsider"))
    task = team["task"]["id"]
    created = await expect(await upload(client, member, task, b"notes\n", "notes.txt"), 201)
    before = await stored_keys(db)
    # A viewer reads and downloads, but cannot upload or delete.
    assert (await client.get(f"/api/v1/tasks/{task}/attachments", headers=viewer.headers)).ok
    seen = await expect(
        await client.get(f"/api/v1/attachments/{created['id']}", headers=viewer.headers), 200
    )
    assert await (await client.get(seen["download_url"])).read() == b"notes\n"
    await expect_problem(await upload(client, viewer, task, b"x\n", "x.txt"), 403)
    await expect_problem(
        await client.delete(f"/api/v1/attachments/{created['id']}", headers=viewer.headers), 403
    )
    # Another workspace's task and attachment are not there at all.
    await expect_problem(await upload(client, outsider, task, b"x\n", "x.txt"), 404)
    for method in (client.get, client.delete):
        await expect_problem(
            await method(f"/api/v1/attachments/{created['id']}", headers=outsider.headers), 404
        )
    await expect_problem(
        await client.get(f"/api/v1/tasks/{task}/attachments", headers=outsider.headers), 404
    )
    # Personal access tokens: attachments:read lists, only attachments:write uploads.
    reader = await new_pat(client, owner, ["attachments:read"])
    assert (await client.get(f"/api/v1/tasks/{task}/attachments", headers=reader)).status == 200
    response = await client.post(
        f"/api/v1/tasks/{task}/attachments", data=form(b"x\n", "x.txt"), headers=reader
    )
    await expect_problem(response, 403)
    writer = await new_pat(client, owner, ["attachments:write"])
    response = await client.post(
        f"/api/v1/tasks/{task}/attachments", data=form(b"pat\n", "pat.txt"), headers=writer
    )
    await expect(response, 201)
    assert [k for k in await stored_keys(db) if k not in before] != []
    # No bearer token at all: 401 (only the signed file URLs are public).
    await expect_problem(await client.get(f"/api/v1/tasks/{task}/attachments"), 401)


async def test_signed_urls_refuse_tampering_and_expiry(client, team, settings_with):
    owner, task = team["owner"], team["task"]["id"]
    first = await expect(await upload(client, owner, task, b"one\n", "one.txt"), 201)
    second = await expect(await upload(client, owner, task, b"two\n", "two.txt"), 201)
    url = urlsplit(first["download_url"])
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    base = url.path

    async def status(path: str, **params: str) -> int:
        response = await client.get(path, params=params)
        if response.status != 200:
            await expect_problem(response, response.status)
        return response.status

    assert await status(base, **query) == 200
    # another id, another variant, a longer life, an altered signature: all 403
    other = f"/api/v1/files/{second['id']}/original"
    assert await status(other, **query) == 403
    assert await status(base.replace("original", "thumbnail"), **query) == 403
    assert await status(base, exp=str(int(query["exp"]) + 3600), sig=query["sig"]) == 403
    flipped = ("A" if query["sig"][0] != "A" else "B") + query["sig"][1:]
    assert await status(base, exp=query["exp"], sig=flipped) == 403
    assert await status(base, exp=query["exp"], sig="ü" * 10) == 403
    for odd in ("%ED%A0%80", "%00", "x" * 200):  # a lone surrogate, NUL, an overlong id
        assert await status(f"/api/v1/files/{odd}/original", **query) == 403
    # An expired link is refused even with its genuine signature.
    from planboard.auth.signing import DownloadSigner

    signer = DownloadSigner(settings_with().secret_key)
    past = int(time.time()) - 1
    assert await status(base, exp=str(past), sig=signer.sign(first["id"], "original", past)) == 403
    # A genuine, unexpired signature made with the service key works (the test knows it).
    later = int(time.time()) + 60
    assert (
        await status(base, exp=str(later), sig=signer.sign(first["id"], "original", later)) == 200
    )
    # missing parameters are a validation problem
    response = await client.get(base)
    await expect_problem(response, 422, "exp")


async def test_storage_of_the_default_backend(db, team, client):
    """The content is in the GridFS bucket ``attachments``, byte for byte."""
    owner, task = team["owner"], team["task"]["id"]
    created = await expect(await upload(client, owner, task, PDF, "doc.pdf"), 201)
    storage = GridFSStorage(db)
    stored = b"".join([chunk async for chunk in storage.read(created["id"])])
    assert stored == PDF
    doc = await db.attachments.find_one({"_id": created["id"]})
    assert (doc["state"], doc["storage"]) == ("stored", "gridfs")
