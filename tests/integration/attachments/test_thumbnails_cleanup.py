"""Thumbnails made by the ``attachments`` worker group, and no content left behind when an
attachment's task, project or workspace goes away (the scheduler's sweep)."""

from __future__ import annotations

import asyncio
import io
from datetime import timedelta

import pytest
from PIL import Image

from planboard.config import Settings
from planboard.services import attachments as service
from planboard.services.attachment_storage import GridFSStorage
from planboard.store.ids import new_id, utcnow
from planboard.workers.scheduler import default_jobs
from tests.integration.attachments.conftest import stored_keys, upload
from tests.utils.api import expect, expect_problem, new_project, new_task
from tests.utils.files import image_bytes

pytestmark = pytest.mark.integration


async def wait_for_thumbnail(client, user, attachment_id: str, timeout: float = 60.0) -> dict:
    """Poll the API until the worker has made the thumbnail (or says it failed)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        got = await expect(
            await client.get(f"/api/v1/attachments/{attachment_id}", headers=user.headers), 200
        )
        if got["thumbnail"] != "pending":
            return got
        assert asyncio.get_running_loop().time() < deadline, f"no thumbnail in {timeout}s"
        await asyncio.sleep(0.2)


@pytest.mark.parametrize(
    ("fmt", "size", "mode", "name"),
    [
        ("JPEG", (1600, 1200), "RGB", "photo.jpg"),
        ("PNG", (300, 900), "RGBA", "tall.png"),
        ("GIF", (500, 120), "P", "wide.gif"),
        ("WEBP", (64, 48), "RGB", "small.webp"),
    ],
)
async def test_images_get_a_bounded_thumbnail(client, db, team, settings, fmt, size, mode, name):
    owner = team["owner"]
    content = image_bytes(fmt, size, mode)
    created = await expect(await upload(client, owner, team["task"]["id"], content, name), 201)
    assert (created["width"], created["height"]) == size
    ready = await wait_for_thumbnail(client, owner, created["id"])
    assert ready["thumbnail"] == "ready"
    response = await client.get(ready["thumbnail_url"])
    assert response.status == 200
    assert response.headers["Content-Type"] == "image/webp"
    assert response.headers["Content-Disposition"].startswith("inline;")
    with Image.open(io.BytesIO(await response.read())) as thumb:
        assert thumb.format == "WEBP"
        bound = settings.attachment_thumbnail_px
        assert max(thumb.size) == min(bound, max(size))  # scaled to fit, never enlarged
        assert abs(thumb.width / thumb.height - size[0] / size[1]) < 0.05
    keys = await stored_keys(db)
    assert keys.count(created["id"] + ".thumbnail") == 1


async def test_a_redelivered_event_makes_no_second_thumbnail(client, db, team, settings):
    owner = team["owner"]
    content = image_bytes("PNG", (800, 600))
    created = await expect(await upload(client, owner, team["task"]["id"], content, "a.png"), 201)
    await wait_for_thumbnail(client, owner, created["id"])
    storage, limits = GridFSStorage(db), service.Limits.of(settings)
    # The same event again (at-least-once delivery): nothing to do.
    assert await service.make_thumbnail(db, storage, limits, created["id"]) == "skipped"
    # A crash between writing the thumbnail and marking it: the retry overwrites the key.
    await db.attachments.update_one({"_id": created["id"]}, {"$set": {"thumbnail": "pending"}})
    assert await service.make_thumbnail(db, storage, limits, created["id"]) == "ready"
    assert (await stored_keys(db)).count(created["id"] + ".thumbnail") == 1


async def test_an_image_that_cannot_be_decoded_gets_no_thumbnail(client, db, team):
    owner = team["owner"]
    broken = image_bytes("PNG", (400, 400))
    broken = broken[:60] + b"\x00" * (len(broken) - 60)  # the header survives, the data not
    created = await expect(
        await upload(client, owner, team["task"]["id"], broken, "broken.png"), 201
    )
    done = await wait_for_thumbnail(client, owner, created["id"])
    assert done["thumbnail"] == "failed" and done["thumbnail_url"] is None
    assert created["id"] + ".thumbnail" not in await stored_keys(db)


async def test_deleted_tasks_projects_and_workspaces_leave_no_files(
    client, db, team, settings: Settings
):
    owner, project = team["owner"], team["project"]
    storage = GridFSStorage(db)
    sweep = next(j for j in default_jobs(db, storage) if j.name == "attachment-sweep")

    async def attach(task_id: str, name: str) -> dict:
        return await expect(await upload(client, owner, task_id, image_bytes("PNG"), name), 201)

    doomed_task = await new_task(client, owner, project["id"], title="Doomed")
    on_task = await attach(doomed_task["id"], "task.png")
    await wait_for_thumbnail(client, owner, on_task["id"])
    other_project = await new_project(client, owner, team["workspace_id"], key="GONE")
    on_project = await attach((await new_task(client, owner, other_project["id"]))["id"], "p.png")
    on_workspace = await attach(team["task"]["id"], "w.png")
    ids = [on_task["id"], on_project["id"], on_workspace["id"]]

    response = await client.delete(f"/api/v1/tasks/{doomed_task['id']}", headers=owner.headers)
    assert response.status == 204
    # Gone for readers at once, even before its content is swept.
    await expect_problem(await client.get(on_task["download_url"]), 404)
    assert on_task["id"] in await stored_keys(db)
    response = await client.delete(f"/api/v1/projects/{other_project['id']}", headers=owner.headers)
    assert response.status == 204
    response = await client.delete(
        f"/api/v1/workspaces/{team['workspace_id']}", headers=owner.headers
    )
    assert response.status == 204
    await sweep.run()
    keys = await stored_keys(db)
    assert not [k for k in keys if k.split(".")[0] in ids]
    assert await db.attachments.count_documents({"_id": {"$in": ids}}) == 0


async def test_uploads_that_died_midway_are_swept(db, team):
    """A process killed mid-upload leaves an ``uploading`` document and partial content."""
    storage = GridFSStorage(db)
    task, project = team["task"], team["project"]
    stale, fresh = new_id(), new_id()
    for attachment_id, age in ((stale, timedelta(hours=2)), (fresh, timedelta(minutes=1))):
        await db.attachments.insert_one(
            {
                "_id": attachment_id,
                "workspace_id": team["workspace_id"],
                "project_id": project["id"],
                "task_id": task["id"],
                "filename": "half.pdf",
                "state": "uploading",
                "created_at": utcnow() - age,
            }
        )
        writer = await storage.open_writer(attachment_id, "application/pdf")
        await writer.write(b"%PDF-1.4\n" + b"\x00" * 300_000)
        await writer.close()
    assert await service.sweep(db, storage) >= 1
    keys = await stored_keys(db)
    assert stale not in keys and fresh in keys  # a running upload is left alone
    assert await db.attachments.find_one({"_id": stale}) is None
    await service.sweep(db, storage, now=utcnow() + timedelta(hours=2))
    assert fresh not in await stored_keys(db)
