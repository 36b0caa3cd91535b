"""Webhook test fixtures: receivers on 127.0.0.1, a private-targets API, the worker.

- ``Receiver``: a real aiohttp server that records every request, checks its
  signature, and answers as told (status, delay, redirect).
- ``private_settings``: loopback targets allowed, and a database and Kafka topic
  prefix of the package's own, served by its own relay and notifications worker
  (``wh_pipeline``): other tests' runners, and other tests' data in the session
  outbox, cannot interfere with the end-to-end tests.
- ``private_client``: an API instance on those settings (the session ``client`` keeps
  the default settings and proves refusal).
- ``webhook_worker``: the ``webhooks`` group under a unique consumer-group name plus
  its delivery loop, with short retries, for the whole package.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from planboard.app import create_app
from planboard.config import Settings
from planboard.events.consumer import ConsumerRunner
from planboard.events.relay import Relay
from planboard.services.webhooks import WebhookOptions
from planboard.store import memberships, migrations
from planboard.store.ids import new_id, utcnow
from planboard.workers.notifications import notifications_group
from planboard.workers.webhooks import WebhookMetrics, WebhookWorker

OPTIONS = WebhookOptions(
    retry_delays_s=(0.3, 0.6),
    jitter=0.1,
    disable_after=3,
    connect_timeout_s=1.0,
    total_timeout_s=1.5,
    poll_interval_s=0.1,
    lease_s=10.0,
)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    signature_ok: bool

    def json(self) -> Any:
        import orjson

        return orjson.loads(self.body)


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1 that records what it gets."""

    secret: str = ""
    status: int = 200
    delay_s: float = 0.0
    redirect_to: str = ""
    requests: list[Received] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    port: int = 0
    in_flight: int = 0  # requests being answered now
    most_in_flight: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            return await self._answer(request)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        expected = "sha256=" + hmac.new(self.secret.encode(), raw, hashlib.sha256).hexdigest()
        given = request.headers.get("X-Planboard-Signature", "")
        self.requests.append(
            Received(
                path=request.path,
                headers=dict(request.headers),
                body=raw,
                at=asyncio.get_running_loop().time(),
                signature_ok=bool(self.secret) and hmac.compare_digest(expected, given),
            )
        )
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.redirect_to:
            return web.Response(status=302, headers={"Location": self.redirect_to})
        return web.Response(status=self.status, text="ok" if self.status < 300 else "nope")

    async def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        async with asyncio.timeout(timeout):
            while len(self.requests) < count:
                await asyncio.sleep(0.05)
        return self.requests


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    target = await Receiver().start()
    yield target
    await target.stop()


@pytest_asyncio.fixture(scope="package")
async def private_settings(settings: Settings) -> Settings:
    return settings.replace(
        allow_private_webhooks=True,
        mongodb_db=f"{settings.mongodb_db}_wh",
        kafka_topic_prefix=f"{settings.kafka_topic_prefix}wh.",
    )


@pytest_asyncio.fixture(scope="package")
async def wh_db(mongo_client: Any, private_settings: Settings) -> AsyncIterator[Any]:
    database = mongo_client[private_settings.mongodb_db]
    await migrations.migrate(database)
    yield database
    await mongo_client.drop_database(database.name)


@pytest_asyncio.fixture(scope="package")
async def wh_pipeline(private_settings: Settings, wh_db: Any) -> AsyncIterator[None]:
    """The package's relay and notifications worker (mail reaches the sink)."""
    relay = Relay(private_settings, wh_db, idle_interval_s=0.05)
    mail = ConsumerRunner(private_settings, wh_db, notifications_group(private_settings, wh_db))
    tasks = [asyncio.create_task(relay.run()), asyncio.create_task(mail.run())]
    yield
    relay.stop()
    mail.stop()
    await asyncio.gather(*tasks)


@pytest_asyncio.fixture(scope="package")
async def private_client(
    private_settings: Settings, wh_db: Any, wh_pipeline: None
) -> AsyncIterator[TestClient[object, object]]:
    """An API instance that allows loopback targets (like ``planboard dev``)."""
    server = TestServer(create_app(private_settings))
    test_client: TestClient[object, object] = TestClient(server)
    await test_client.start_server()
    yield test_client
    await test_client.close()


class WorkerUnderTest(NamedTuple):
    worker: WebhookWorker
    runner: ConsumerRunner
    handled: set[str]  # ids of the events the consumer has handled (its effect applied)

    async def handled_event(self, event_id: str, timeout: float = 30.0) -> None:
        """Until the consumer has handled ``event_id``."""
        async with asyncio.timeout(timeout):
            while event_id not in self.handled:
                await asyncio.sleep(0.05)


@pytest_asyncio.fixture(scope="package")
async def webhook_worker(
    private_settings: Settings, wh_db: Any, wh_pipeline: None, redis: Any
) -> AsyncIterator[WorkerUnderTest]:
    """The webhooks group (unique consumer group) and its delivery loop."""
    handled: set[str] = set()
    worker = WebhookWorker(
        private_settings,
        wh_db,
        options=OPTIONS,
        metrics=WebhookMetrics(),
        group_name=f"webhooks-test-{uuid.uuid4().hex[:8]}",
        redis=redis,
    )
    runner = ConsumerRunner(private_settings, wh_db, worker.group(), on_handled=handled.update)
    tasks = [asyncio.create_task(runner.run()), worker.start_background()]
    yield WorkerUnderTest(worker, runner, handled)
    runner.stop()
    worker.stop()
    await asyncio.gather(*tasks)


async def add_member(db: Any, workspace_id: str, user_id: str, role: str) -> None:
    await memberships.insert(
        db,
        {
            "_id": new_id(),
            "workspace_id": workspace_id,
            "user_id": user_id,
            "role": role,
            "created_at": utcnow(),
        },
    )
