"""OpenTelemetry: one trace from an API write through the outbox, the relay and Kafka to a worker.

The servers are real (MongoDB, Kafka, Redis); only the export is in memory. Tracing is
configured once for this module (process-wide, like a real process) and removed after it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pymongo import AsyncMongoClient

from planboard import tracing
from planboard.app import create_app
from planboard.config import SettingsError
from planboard.events.consumer import ConsumerGroup, ConsumerRunner
from planboard.events.envelope import Event
from planboard.events.relay import Relay
from planboard.store import migrations
from tests.utils.api import new_user, new_workspace

pytestmark = pytest.mark.integration


# -- the switch (no servers) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "x"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp,console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "false"}, True),
    ],
)
def test_tracing_is_on_only_when_the_environment_says_so(
    environ: dict[str, str], expected: bool
) -> None:
    assert tracing.requested(environ) is expected


def test_an_unknown_exporter_is_a_configuration_error() -> None:
    with pytest.raises(SettingsError, match="OTEL_TRACES_EXPORTER"):
        tracing.requested({"OTEL_TRACES_EXPORTER": "zipkin"})


def test_off_means_nothing_is_instrumented() -> None:
    """Without OTEL_*/SENTRY_DSN: no instrumentation, no listener, no middleware, no Sentry.

    (redis-py imports parts of opentelemetry itself when the package is installed; that is
    its own optional observability, off unless configured, and instruments nothing.)
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SENTRY_"))}
    code = (
        "import sys\n"
        "from pymongo import monitoring\n"
        "from planboard.app import create_app\n"
        "from planboard.config import Settings\n"
        "import planboard.runners\n"
        "from planboard import errortracking, tracing\n"
        "assert not tracing.configure('x') and not errortracking.configure(Settings(), 'api')\n"
        "app = create_app(Settings())\n"
        "names = [getattr(m, '__module__', '') for m in app.middlewares]\n"
        "assert not [n for n in names if 'opentelemetry' in n or 'errortracking' in n], names\n"
        "assert not monitoring._LISTENERS.command_listeners\n"
        "loaded = [m for m in sys.modules\n"
        "          if m.startswith(('opentelemetry.instrumentation', 'sentry_sdk'))]\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


# -- one trace across the pipeline --------------------------------------------------------


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    assert tracing.configure("planboard-test", span_processors=[SimpleSpanProcessor(exporter)])
    try:
        yield exporter
    finally:
        tracing.shutdown()


@pytest_asyncio.fixture(scope="module")
async def traced_env(settings, spans) -> AsyncIterator[tuple[Any, Any]]:
    """Own database and topics, and a MongoDB client created after tracing (instrumented)."""
    traced = settings.replace(
        mongodb_db=f"{settings.mongodb_db}_trace",
        kafka_topic_prefix=f"pbtrace-{uuid.uuid4().hex[:8]}.",
    )
    client: AsyncMongoClient[Any] = AsyncMongoClient(traced.mongodb_uri, tz_aware=True)
    db = client[traced.mongodb_db]
    await migrations.migrate(db)
    yield traced, db
    await client.drop_database(db.name)
    await client.close()


def by_id(spans: list[ReadableSpan]) -> dict[int, ReadableSpan]:
    return {s.context.span_id: s for s in spans}


def ancestors(span: ReadableSpan, index: dict[int, ReadableSpan]) -> list[str]:
    names = []
    while span.parent is not None and span.parent.span_id in index:
        span = index[span.parent.span_id]
        names.append(span.name)
    return names


async def test_one_trace_spans_api_kafka_and_worker(traced_env, spans) -> None:
    settings, db = traced_env
    handled: asyncio.Queue[Event] = asyncio.Queue()

    async def handle(event: Event) -> None:
        await db.workspaces.find_one({"name": "Traced"})  # a MongoDB call inside the handler
        await handled.put(event)

    group = ConsumerGroup(name="tracing", families=("workspace",), handle=handle)
    runner = ConsumerRunner(settings, db, group)
    relay = Relay(settings, db, idle_interval_s=0.05)
    tasks = [asyncio.create_task(relay.run()), asyncio.create_task(runner.run())]
    http: TestClient[Any, Any] = TestClient(TestServer(create_app(settings)))
    await http.start_server()
    try:
        user = await new_user(http)
        spans.clear()
        workspace_id = await new_workspace(http, user, name="Traced")

        stored = await db.outbox.find_one({"type": "workspace.created", "key": workspace_id})
        assert stored is not None
        assert set(stored["trace"]) <= {"traceparent", "tracestate"}
        _, trace_hex, parent_hex, _ = stored["trace"]["traceparent"].split("-")

        async with asyncio.timeout(90):
            while True:
                event = await handled.get()
                if event.type == "workspace.created" and event.key == workspace_id:
                    break
    finally:
        await http.close()
        relay.stop()
        runner.stop()
        await asyncio.gather(*tasks)

    finished = [s for s in spans.get_finished_spans() if s.context.trace_id == int(trace_hex, 16)]
    index = by_id(finished)
    (server,) = [
        s for s in finished if s.kind == SpanKind.SERVER and s.name.startswith("POST /api/v1/")
    ]
    assert server.attributes is not None
    # The context stored with the outbox event is the request's (the server span's).
    assert int(parent_hex, 16) == server.context.span_id

    (insert,) = [
        s
        for s in finished
        if s.kind == SpanKind.CLIENT and s.name.endswith(".insert") and s.attributes
        if dict(s.attributes).get("db.mongodb.collection", "") == "outbox"
        or dict(s.attributes).get("db.collection.name", "") == "outbox"
    ]
    assert server.name in ancestors(insert, index)

    (publish,) = [s for s in finished if s.name == "publish workspace.created"]
    assert publish.kind == SpanKind.PRODUCER
    assert publish.parent is not None and publish.parent.span_id == server.context.span_id
    assert publish.attributes is not None
    assert (
        publish.attributes["messaging.destination.name"]
        == f"{settings.kafka_topic_prefix}workspace"
    )
    assert publish.attributes["messaging.message.id"] == stored["_id"]

    (process,) = [s for s in finished if s.name == "process workspace.created"]
    assert process.kind == SpanKind.CONSUMER
    assert process.parent is not None and process.parent.span_id == publish.context.span_id
    assert process.attributes is not None
    assert process.attributes["messaging.consumer.group.name"] == "tracing"

    in_handler = [
        s.name
        for s in finished
        if s.parent is not None and s.parent.span_id == process.context.span_id
    ]
    assert f"{settings.mongodb_db}.find" in in_handler, in_handler
    # The relay's and the worker's polling make no one-span MongoDB traces.
    lonely = [
        s.name
        for s in spans.get_finished_spans()
        if s.parent is None and s.kind == SpanKind.CLIENT and s.name.startswith(settings.mongodb_db)
    ]
    assert not lonely, lonely
    # API → MongoDB → (outbox) → relay → Kafka → worker → MongoDB: one trace id throughout.
    assert {server.context.trace_id, publish.context.trace_id, process.context.trace_id} == {
        int(trace_hex, 16)
    }


async def test_health_probes_are_not_traced(traced_env, spans) -> None:
    settings, _ = traced_env
    http: TestClient[Any, Any] = TestClient(TestServer(create_app(settings)))
    await http.start_server()
    try:
        spans.clear()
        assert (await http.get("/healthz")).status == 200
        assert (await http.get("/metrics")).status == 200
    finally:
        await http.close()
    assert not [s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER]
