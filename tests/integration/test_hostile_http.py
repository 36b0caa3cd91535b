"""Hostile HTTP on the real stack (issue #17): each one a 4xx problem+json, never a 500,
never a traceback in the log, and nothing changed.

Bodies nested 10,000 deep and strings holding a lone UTF-16 surrogate go to the JSON
endpoints; requests aiohttp's own parser refuses, clients that hang up mid-body and
redirects raised by handlers go through ``planboard serve``'s runner
(tests/utils/server.py).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from planboard.api.middleware import SECURITY_HEADERS
from planboard.app import create_app
from tests.utils.api import User, new_user, new_workspace, register
from tests.utils.server import ApiTestServer

pytestmark = pytest.mark.integration

DEEP = b"[" * 10_000 + b"]" * 10_000
DEEP_OBJECT = b'{"a":' * 5_000 + b"1" + b"}" * 5_000
LONE = "\\ud800"  # as the client writes it inside a JSON string: an escape, six characters


@pytest_asyncio.fixture(scope="module")
async def world(client: TestClient) -> dict[str, Any]:
    user = await new_user(client)
    workspace = await new_workspace(client, user)

    async def post(path: str, body: Any) -> dict[str, Any]:
        response = await client.post(path, json=body, headers=user.headers)
        assert response.status == 201, await response.text()
        result: dict[str, Any] = await response.json()
        return result

    project = await post(f"/api/v1/workspaces/{workspace}/projects", {"name": "H", "key": "HX"})
    task = await post(f"/api/v1/projects/{project['id']}/tasks", {"title": "first"})
    return {"user": user, "workspace": workspace, "project": project["id"], "task": task}


def json_operations(world: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]]:
    """(method, path, headers): anonymous and authenticated JSON endpoints."""
    auth = world["user"].headers
    project, task, workspace = world["project"], world["task"]["id"], world["workspace"]
    return [
        ("POST", "/api/v1/auth/login", {}),
        ("POST", "/api/v1/auth/register", {}),
        ("POST", "/api/v1/auth/forgot-password", {}),
        ("POST", "/api/v1/workspaces", auth),
        ("PATCH", f"/api/v1/workspaces/{workspace}", auth),
        ("POST", f"/api/v1/workspaces/{workspace}/projects", auth),
        ("POST", f"/api/v1/projects/{project}/tasks", auth),
        ("POST", f"/api/v1/projects/{project}/tasks/bulk", auth),
        ("PATCH", f"/api/v1/tasks/{task}", auth),
        ("POST", f"/api/v1/tasks/{task}/comments", auth),
        ("POST", f"/api/v1/projects/{project}/phases", auth),
        ("POST", "/api/v1/tokens", auth),
    ]


def assert_problem(response: Any, body: dict[str, Any], status: int) -> None:
    assert response.status == status, body
    assert response.content_type == "application/problem+json"
    assert body["status"] == status
    assert body["request_id"] == response.headers["X-Request-ID"]
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value, name


def server_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name.startswith(("planboard", "aiohttp")) and (r.levelno >= logging.ERROR)
    ]


async def test_deeply_nested_json_is_a_400_on_every_json_endpoint(
    client: TestClient, world: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    for method, path, headers in json_operations(world):
        for body in (DEEP, DEEP_OBJECT):
            response = await client.request(
                method, path, data=body, headers={**headers, "Content-Type": "application/json"}
            )
            problem = await response.json(content_type=None)
            assert_problem(response, problem, 400)
            assert problem["detail"] == "the request body nests deeper than 1024 levels", path
    assert server_errors(caplog) == []


async def test_nesting_up_to_the_bound_is_parsed_and_then_validated(
    client: TestClient, world: dict[str, Any]
) -> None:
    deep_but_allowed = b'{"title": "x", "labels": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    response = await client.post(
        f"/api/v1/projects/{world['project']}/tasks",
        data=deep_but_allowed,
        headers={**world["user"].headers, "Content-Type": "application/json"},
    )
    problem = await response.json(content_type=None)
    assert_problem(response, problem, 422)  # parsed: the schema refuses a list of lists
    assert [e["field"] for e in problem["errors"]] == ["labels.0"]


async def test_lone_surrogates_are_a_422_naming_the_field_and_change_nothing(
    client: TestClient, world: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    user: User = world["user"]
    stranger = await register(client)
    project, task = world["project"], world["task"]["id"]
    cases = [
        (
            "/api/v1/auth/login",
            {},
            f'{{"email": "{stranger.email}", "password": "x{LONE}"}}',
            "password",
        ),
        (
            "/api/v1/auth/login",
            {},
            f'{{"email": "a{LONE}@example.test", "password": "x"}}',
            "email",
        ),
        (
            "/api/v1/auth/register",
            {},
            f'{{"email": "s@example.test", "password": "horse battery {LONE}", "name": "n"}}',
            "password",
        ),
        ("/api/v1/workspaces", user.headers, f'{{"name": "W{LONE}"}}', "name"),
        (f"/api/v1/projects/{project}/tasks", user.headers, f'{{"title": "t{LONE}"}}', "title"),
        (
            f"/api/v1/projects/{project}/tasks",
            user.headers,
            '{"title": "t", "checklist": [{"text": "ok"}, {"text": "\\udc00"}]}',
            "checklist.1.text",
        ),
        (
            f"/api/v1/projects/{project}/tasks/bulk",
            user.headers,
            f'{{"tasks": [{{"title": "a"}}, {{"title": "b{LONE}"}}]}}',
            "tasks.1.title",
        ),
        (f"/api/v1/tasks/{task}/comments", user.headers, f'{{"body": "{LONE}"}}', "body"),
        (f"/api/v1/projects/{project}/phases", user.headers, f'{{"name": "P{LONE}"}}', "name"),
        (
            "/api/v1/tokens",
            user.headers,
            f'{{"name": "t{LONE}", "scopes": ["tasks:read"]}}',
            "name",
        ),
        ("/api/v1/workspaces", user.headers, f'{{"n{LONE}": "W"}}', "n\\ud800"),  # a key
    ]
    for path, headers, raw, field in cases:
        response = await client.post(
            path, data=raw.encode(), headers={**headers, "Content-Type": "application/json"}
        )
        problem = await response.json(content_type=None)
        assert_problem(response, problem, 422)
        assert [e["field"] for e in problem["errors"]] == [field], (path, problem)
        assert "surrogate" in problem["errors"][0]["message"]
    assert server_errors(caplog) == []
    # nothing was created, and the refused task creates took no task key
    tasks = await client.get(f"/api/v1/projects/{project}/tasks", headers=user.headers)
    assert [t["key"] for t in (await tasks.json())["items"]] == [world["task"]["key"]]
    created = await client.post(
        f"/api/v1/projects/{project}/tasks", json={"title": "second"}, headers=user.headers
    )
    assert (await created.json())["key"] == "HX-2"
    await client.delete(f"/api/v1/tasks/{(await created.json())['id']}", headers=user.headers)


async def test_paired_surrogates_and_non_ascii_are_fine(
    client: TestClient, world: dict[str, Any]
) -> None:
    response = await client.post(
        "/api/v1/workspaces",
        data=b'{"name": "Caf\\u00e9 \\ud83d\\ude80 \xe2\x9c\x93"}',
        headers={**world["user"].headers, "Content-Type": "application/json; charset=utf-8"},
    )
    body = await response.json()
    assert response.status == 201, body
    assert body["name"] == "Café 🚀 ✓"


async def test_a_user_agent_that_is_not_utf8_is_stored_as_text(client: TestClient, db) -> None:  # type: ignore[no-untyped-def]
    user = await register(client)
    body = orjson.dumps({"email": user.email, "password": user.password})
    request = (
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"User-Agent: probe \xff\xed\xa0\x80\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
        % len(body)
    ) + body
    status, _, answer = await exchange(client.server.port, request)
    assert status == 200, answer
    session = await db["sessions"].find_one({"user_id": user.id})
    assert session is not None
    assert session["user_agent"] == "probe \ufffd\ufffd\ufffd\ufffd"


# ----------------------------------------------------------------- the real runner


@pytest_asyncio.fixture
async def served(settings) -> AsyncIterator[TestClient]:  # type: ignore[no-untyped-def]
    """The app on ``planboard serve``'s runner, with a route that reads a body."""
    app = create_app(settings)

    async def slow_body(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="read")

    app.router.add_post("/test/slow-body", slow_body)
    async with TestClient(ApiTestServer(app)) as test_client:
        yield test_client


def _exchange(port: int, request: bytes, *, hang_up: bool = False) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        if hang_up:
            time.sleep(0.2)  # let the server start reading the body, then vanish
            return b""
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data


async def exchange(
    port: int, request: bytes, *, hang_up: bool = False
) -> tuple[int, dict[str, str], Any]:
    """One raw request on its own connection: (status, headers, JSON body or bytes)."""
    raw = await asyncio.to_thread(_exchange, port, request, hang_up=hang_up)
    if hang_up:
        return 0, {}, b""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    try:
        parsed: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = body
    return int(lines[0].split()[1]), headers, parsed


PARSER_REFUSALS = [
    (
        "a URL over the line limit",
        b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: t\r\n\r\n",
        b"aaaa",
    ),
    (
        "a header over the limit",
        b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n",
        b"bbbb",
    ),
    ("a bad method", b"G<script>ET / HTTP/1.1\r\nHost: t\r\n\r\n", b"<script>"),
    ("bad bytes in the path", b"GET /\x01<script> HTTP/1.1\r\nHost: t\r\n\r\n", b"<script>"),
    ("a bad header name", b"GET / HTTP/1.1\r\nHost: t\r\nBad\x01<b>: y\r\n\r\n", b"<b>"),
    (
        "a bad chunk size",
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b'Transfer-Encoding: chunked\r\n\r\n5\r\n{"em\r\n<zz>\r\n',
        b"<zz>",
    ),
    ("not HTTP at all", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03<tls>\r\n\r\n", b"<tls>"),
]


@pytest.mark.parametrize(
    ("case", "request_bytes", "echo"), PARSER_REFUSALS, ids=[c[0] for c in PARSER_REFUSALS]
)
async def test_requests_the_parser_refuses_are_problem_json(
    served: TestClient,
    caplog: pytest.LogCaptureFixture,
    case: str,
    request_bytes: bytes,
    echo: bytes,
) -> None:
    caplog.set_level(logging.INFO)
    status, headers, body = await exchange(served.server.port, request_bytes)
    assert status == 400, (case, body)
    assert headers["content-type"] == "application/problem+json"
    assert isinstance(body, dict), body
    assert body["status"] == 400 and body["title"] == "Bad Request"
    assert body["request_id"] == headers["x-request-id"]
    assert body["instance"] == ""  # the request line was not understood
    assert echo.decode() not in orjson.dumps(body).decode()  # the input is not echoed
    for name, value in SECURITY_HEADERS.items():
        assert headers[name.lower()] == value, name
    assert server_errors(caplog) == []
    refused = [r for r in caplog.records if "not valid HTTP" in r.getMessage()]
    assert refused and refused[0].levelno == logging.INFO and refused[0].exc_info is None
    metrics = await (await served.get("/metrics")).text()
    assert 'route="unparsed",status="400"' in metrics


async def test_client_hanging_up_mid_body_is_logged_quietly(
    served: TestClient, world: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    token = world["user"].headers["Authorization"].encode()
    for path, auth in (
        (b"/api/v1/workspaces", b"Authorization: " + token + b"\r\n"),
        (b"/test/slow-body", b""),
    ):
        request = (
            b"POST "
            + path
            + b" HTTP/1.1\r\nHost: t\r\n"
            + auth
            + b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"name": '
        )
        await exchange(served.server.port, request, hang_up=True)
    metrics = ""
    async with asyncio.timeout(10):
        while metrics.count('status="499"') < 2:
            await asyncio.sleep(0.05)
            metrics = await (await served.get("/metrics")).text()
    assert 'route="/api/v1/workspaces",status="499"' in metrics
    assert 'route="/test/slow-body",status="499"' in metrics
    assert server_errors(caplog) == []
    gone = [r for r in caplog.records if r.getMessage().startswith("client disconnected")]
    assert len(gone) == 2
    assert all(r.levelno == logging.INFO and r.exc_info is None for r in gone)


async def test_a_disconnect_under_handler_cancellation_counts_as_499(
    settings, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    """aiohttp's test server (handler_cancellation) cancels the handler instead."""
    app = create_app(settings)

    async def slow_body(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="read")

    app.router.add_post("/test/slow-body", slow_body)
    async with TestClient(TestServer(app)) as test_client:
        request = b"POST /test/slow-body HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\nab"
        await exchange(test_client.server.port, request, hang_up=True)
        async with asyncio.timeout(10):
            while 'status="499"' not in (
                metrics := await (await test_client.get("/metrics")).text()
            ):
                await asyncio.sleep(0.05)
    assert 'route="/test/slow-body",status="499"' in metrics
    assert server_errors(caplog) == []


async def test_a_redirect_raised_by_a_handler_is_counted_and_carries_the_context(
    settings_with, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    app = create_app(settings_with(access_log=True))

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("/healthz")

    async def not_modified(request: web.Request) -> web.Response:
        raise web.HTTPNotModified(headers={"ETag": '"abc"'})

    app.router.add_get("/test/moved", moved)
    app.router.add_get("/test/not-modified", not_modified)
    caplog.set_level(logging.INFO, logger="planboard.access")
    async with TestClient(ApiTestServer(app)) as test_client:
        responses = [
            await test_client.get(path, allow_redirects=False, headers={"X-Request-ID": rid})
            for path, rid in (("/test/moved", "redirect-1"), ("/test/not-modified", "nm-1"))
        ]
        metrics = await (await test_client.get("/metrics")).text()
    assert [r.status for r in responses] == [302, 304]
    assert responses[0].headers["Location"] == "/healthz"
    for response, rid in zip(responses, ("redirect-1", "nm-1"), strict=True):
        assert response.headers["X-Request-ID"] == rid
        for name, value in SECURITY_HEADERS.items():
            assert response.headers[name] == value, name
    assert 'route="/test/moved",status="302"' in metrics
    assert 'route="/test/not-modified",status="304"' in metrics
    assert 'status="500"' not in metrics
    statuses = {r.path: r.status for r in caplog.records if r.name == "planboard.access"}  # type: ignore[attr-defined]
    assert statuses["/test/moved"] == 302 and statuses["/test/not-modified"] == 304
    assert server_errors(caplog) == []
