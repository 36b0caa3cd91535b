"""The real processes: ``planboard relay`` and ``planboard worker --group attachments`` make
the thumbnail of an image uploaded through the API (a database and topics of their own)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pymongo import AsyncMongoClient

from planboard.app import create_app
from planboard.store import migrations
from tests.integration.attachments.conftest import upload
from tests.integration.attachments.test_thumbnails_cleanup import wait_for_thumbnail
from tests.integration.test_devstack import stack_env
from tests.utils.api import expect, new_project, new_task, new_user, new_workspace
from tests.utils.files import image_bytes

pytestmark = pytest.mark.integration


async def test_the_worker_process_makes_thumbnails(settings, tmp_path: Path) -> None:
    own = settings.replace(
        mongodb_db=f"{settings.mongodb_db}_att",
        kafka_topic_prefix=f"{settings.kafka_topic_prefix}att.",
    )
    mongo: AsyncMongoClient = AsyncMongoClient(own.mongodb_uri, tz_aware=True)
    await migrations.migrate(mongo[own.mongodb_db])
    env = {
        **stack_env(own),
        "PLANBOARD_MONGODB_DB": own.mongodb_db,
        "PLANBOARD_KAFKA_TOPIC_PREFIX": own.kafka_topic_prefix,
    }
    logs = {name: (tmp_path / f"{name}.log").open("wb") for name in ("relay", "worker")}
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "planboard", *argv],
            env=env,
            stdout=logs[name],
            stderr=subprocess.STDOUT,
        )
        for name, argv in {
            "relay": ["relay"],
            "worker": ["worker", "--group", "attachments"],
        }.items()
    }
    client: TestClient[object, object] = TestClient(TestServer(create_app(own)))
    await client.start_server()
    try:
        owner = await new_user(client)
        workspace = await new_workspace(client, owner)
        project = await new_project(client, owner, workspace, key="PROC")
        task = await new_task(client, owner, project["id"])
        content = image_bytes("JPEG", (1200, 800))
        created = await expect(await upload(client, owner, task["key"], content, "p.jpg"), 201)
        done = await wait_for_thumbnail(client, owner, created["id"], timeout=120)
        assert done["thumbnail"] == "ready"
        thumb = await client.get(done["thumbnail_url"])
        assert thumb.status == 200 and thumb.headers["Content-Type"] == "image/webp"
    finally:
        await client.close()
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        codes = {name: proc.wait(timeout=30) for name, proc in procs.items()}
        for log in logs.values():
            log.close()
        await mongo.drop_database(own.mongodb_db)
        await mongo.close()
    output = {name: (tmp_path / f"{name}.log").read_text()[-2000:] for name in procs}
    assert codes == {"relay": 0, "worker": 0}, output
