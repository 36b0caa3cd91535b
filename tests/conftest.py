"""Session fixtures: the real dev servers, started once per test session.

Set ``PLANBOARD_MONGODB_URI``, ``PLANBOARD_KAFKA_BOOTSTRAP`` or ``PLANBOARD_REDIS_URL``
to run against existing servers instead; each session still gets its own database
and topic prefix, so runs never see each other's data.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from redis.asyncio import Redis

from planboard.app import create_app
from planboard.config import RateLimit, Settings
from planboard.events.consumer import ConsumerRunner
from planboard.events.relay import Relay
from planboard.store import migrations
from planboard.store.document import Document
from planboard.workers.registry import GROUPS, WorkerDeps
from planboard_devstack.stack import Endpoints, InfraStack
from tests.utils import api as api_helpers

SESSION_TAG = uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfraStack]:
    run_dir = Path(os.environ.get("PLANBOARD_TEST_RUN_DIR") or tmp_path_factory.mktemp("servers"))
    stack = InfraStack(run_dir)
    stack.start()
    yield stack
    stack.stop()


@pytest.fixture(scope="session")
def endpoints(infra: InfraStack) -> Endpoints:
    return infra.endpoints()


@pytest.fixture(scope="session")
def mongo_uri(endpoints: Endpoints) -> str:
    return endpoints.mongodb_uri


@pytest.fixture(scope="session")
def settings(endpoints: Endpoints) -> Settings:
    api_helpers.REDIS_URL = endpoints.redis_url
    return Settings(
        env="test",
        mongodb_uri=endpoints.mongodb_uri,
        mongodb_db=f"planboard_test_{SESSION_TAG}",
        kafka_bootstrap=endpoints.kafka_bootstrap,
        kafka_topic_prefix=f"pbtest-{SESSION_TAG}.",
        kafka_partitions=3,
        redis_url=endpoints.redis_url,
        smtp_host=endpoints.smtp_host,
        smtp_port=endpoints.smtp_port,
        access_log=False,
        log_json=True,
        dependency_timeout_s=2.0,
        # The suite makes thousands of calls from one address; limits get their own tests.
        rate_limit_auth=RateLimit(1_000_000, 60),
        rate_limit_api=RateLimit(1_000_000, 60),
    )


@pytest_asyncio.fixture(scope="session")
async def mongo_client(settings: Settings) -> AsyncIterator[AsyncMongoClient[Document]]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(settings.mongodb_uri, tz_aware=True)
    yield client
    await client.drop_database(settings.mongodb_db)
    await client.close()


@pytest_asyncio.fixture(scope="session")
async def db(
    mongo_client: AsyncMongoClient[Document], settings: Settings
) -> AsyncDatabase[Document]:
    database = mongo_client[settings.mongodb_db]
    await migrations.migrate(database)
    return database


@pytest_asyncio.fixture(scope="session")
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client: Redis = Redis.from_url(settings.redis_url)
    yield client
    await client.aclose()


@pytest_asyncio.fixture(scope="session")
async def pipeline(
    settings: Settings, db: AsyncDatabase[Document], redis: Redis
) -> AsyncIterator[None]:
    """The relay and the notifications, jobs, search and attachments workers, for the
    whole session. The relay keeps what it published (PLANBOARD_OUTBOX_KEEP_PUBLISHED), so
    tests can read the events a write produced from the outbox at any time."""
    relay = Relay(settings.replace(outbox_keep_published=True), db, idle_interval_s=0.05)
    deps = WorkerDeps(settings, db, redis)
    runners = [
        ConsumerRunner(settings, db, GROUPS[name](deps))
        for name in ("notifications", "jobs", "search", "attachments")
    ]
    tasks = [asyncio.create_task(relay.run()), *(asyncio.create_task(r.run()) for r in runners)]
    yield
    relay.stop()
    for runner in runners:
        runner.stop()
    await asyncio.gather(*tasks)


@pytest.fixture(scope="session")
def mail_url(endpoints: Endpoints) -> str:
    assert endpoints.mail_http_url, "tests read mail from the dev mail sink"
    return endpoints.mail_http_url


@pytest_asyncio.fixture(scope="session")
async def client(
    settings: Settings, db: AsyncDatabase[Document], pipeline: None
) -> AsyncIterator[TestClient[object, object]]:
    """An HTTP client for one API instance that lives for the whole session."""
    server = TestServer(create_app(settings))
    test_client: TestClient[object, object] = TestClient(server)
    await test_client.start_server()
    yield test_client
    await test_client.close()


@pytest.fixture
def settings_with(settings: Settings):  # type: ignore[no-untyped-def]
    """Build a variant of the session settings (e.g. a dependency pointed at a dead port)."""

    def build(**changes: object) -> Settings:
        return settings.replace(**changes)

    return build


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's standalone server: a real HTTP S3 endpoint on loopback."""
    port = _free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    moto = Path(sys.executable).with_name("moto_server")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(moto), "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url + "/moto-api/", timeout=1).close()  # noqa: S310
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail(f"moto_server did not start: {log.read_text()[-2000:]}")
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(10)
