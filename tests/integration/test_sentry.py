"""Sentry: an unhandled error in a handler reaches a (local) Sentry, without secrets.

The "Sentry" is a small aiohttp server that accepts envelopes on ``/api/<project>/envelope/``
like sentry.io does; the test reads what it received, byte for byte.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import uuid
import zlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from planboard import errortracking
from planboard.app import create_app
from planboard.config import SettingsError
from tests.utils.api import new_user

pytestmark = pytest.mark.integration

BODY_SECRET = "body-secret-do-not-send-0b5e"
COOKIE_SECRET = "cookie-secret-do-not-send-77a1"


def parse_envelope(raw: bytes) -> tuple[dict[str, Any], list[tuple[dict[str, Any], bytes]]]:
    """Envelope = header line, then items: a header line and a payload (``length`` or a line)."""
    header_line, _, rest = raw.partition(b"\n")
    items = []
    while rest.strip():
        item_line, _, rest = rest.partition(b"\n")
        item_header = json.loads(item_line)
        if "length" in item_header:
            length = int(item_header["length"])
            payload, rest = rest[:length], rest[length:]
            rest = rest.removeprefix(b"\n")
        else:
            payload, _, rest = rest.partition(b"\n")
        items.append((item_header, payload))
    return json.loads(header_line), items


class SentrySink:
    def __init__(self) -> None:
        self.envelopes: list[bytes] = []
        self.auth_headers: list[str] = []

    async def envelope(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if raw[:2] == b"\x1f\x8b":  # aiohttp may or may not have decoded Content-Encoding
            raw = gzip.decompress(raw)
        elif request.headers.get("Content-Encoding") == "deflate":
            raw = zlib.decompress(raw)
        self.envelopes.append(raw)
        self.auth_headers.append(request.headers.get("X-Sentry-Auth", ""))
        return web.json_response({"id": uuid.uuid4().hex})

    def events(self) -> list[tuple[bytes, dict[str, Any]]]:
        found = []
        for raw in self.envelopes:
            _, items = parse_envelope(raw)
            found += [(raw, json.loads(p)) for h, p in items if h.get("type") == "event"]
        return found


@pytest_asyncio.fixture
async def sentry(settings) -> AsyncIterator[SentrySink]:
    sink = SentrySink()
    app = web.Application()
    app.router.add_post("/api/{project}/envelope/", sink.envelope)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    dsn = f"http://public@127.0.0.1:{server.port}/1"
    assert errortracking.configure(settings, "api", environ={"SENTRY_DSN": dsn})
    try:
        yield sink
    finally:
        # close() waits for the transport thread, whose requests this loop serves.
        await asyncio.to_thread(errortracking.shutdown)
        await server.close()


def test_sentry_is_off_without_a_dsn(settings) -> None:
    assert not errortracking.requested({})
    assert not errortracking.configure(settings, "api", environ={"SENTRY_DSN": " "})
    assert not errortracking.is_enabled()


def test_a_malformed_dsn_is_a_configuration_error(settings) -> None:
    with pytest.raises(SettingsError, match="SENTRY_DSN"):
        errortracking.configure(settings, "api", environ={"SENTRY_DSN": "not a dsn"})
    assert not errortracking.is_enabled()


async def test_unhandled_error_is_reported_with_ids_and_without_secrets(
    settings, db, sentry: SentrySink
) -> None:
    async def boom(request: web.Request) -> web.Response:
        await request.json()  # the body has been read: it must still not be sent
        raise RuntimeError("kaboom in a handler")

    app = create_app(settings)
    app.router.add_post("/api/v1/_test/boom", boom)
    http: TestClient[Any, Any] = TestClient(TestServer(app))
    await http.start_server()
    try:
        user = await new_user(http)
        request_id = f"sentry-{uuid.uuid4().hex}"
        response = await http.post(
            "/api/v1/_test/boom",
            json={"password": BODY_SECRET, "note": BODY_SECRET},
            headers={
                **user.headers,
                "X-Request-ID": request_id,
                "Cookie": f"session={COOKIE_SECRET}",
            },
        )
        assert response.status == 500
        assert (await response.json())["request_id"] == request_id
        async with asyncio.timeout(30):
            while not sentry.events():
                await asyncio.sleep(0.1)
    finally:
        await http.close()

    ((raw, event),) = sentry.events()
    # What we want: the error, the request id, the user id, where it happened.
    (exception,) = event["exception"]["values"]
    assert exception["type"] == "RuntimeError" and exception["value"] == "kaboom in a handler"
    assert event["tags"]["request_id"] == request_id
    assert event["tags"]["component"] == "api"
    assert event["user"] == {"id": user.id}
    assert event["request"]["method"] == "POST"
    assert event["request"]["url"].endswith("/api/v1/_test/boom")
    assert event["environment"] == settings.env
    # What we never want: credentials, cookies, bodies, local variables.
    text = raw.decode(errors="replace")
    assert user.access_token not in text
    assert COOKIE_SECRET not in text
    assert BODY_SECRET not in text
    headers = {k.lower() for k in event["request"].get("headers", {})}
    assert not headers & {"authorization", "cookie"}
    assert "data" not in event["request"] and "cookies" not in event["request"]
    frames = [f for v in event["exception"]["values"] for f in v["stacktrace"]["frames"]]
    assert frames and not [f for f in frames if f.get("vars")]
    assert all("sentry_key=public" in h for h in sentry.auth_headers)
