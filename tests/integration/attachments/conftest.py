"""Shared people, a workspace per test, and upload helpers for the attachment tests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from planboard.services.attachment_storage import GridFSStorage
from tests.utils.api import add_member, new_project, new_task, new_user, new_workspace


@pytest.fixture(scope="module")
async def people(client):
    """Accounts are slow to make (password hashing): one set for the module."""
    return {
        "owner": await new_user(client, name="Olivia Owner"),
        "member": await new_user(client, name="Mel Member"),
        "viewer": await new_user(client, name="Vic Viewer"),
        "outsider": await new_user(client, name="Eve Outsider"),
    }


@pytest.fixture
async def team(client, db, people) -> dict[str, Any]:
    """A fresh workspace per test with an owner, a member, a viewer, a project and a task."""
    workspace_id = await new_workspace(client, people["owner"])
    await add_member(db, workspace_id, people["member"], "member")
    await add_member(db, workspace_id, people["viewer"], "viewer")
    key = "A" + uuid.uuid4().hex[:6].upper()
    project = await new_project(client, people["owner"], workspace_id, name="Files", key=key)
    task = await new_task(client, people["owner"], project["id"], title="Has files")
    return {**people, "workspace_id": workspace_id, "project": project, "task": task}


def form(content: bytes, filename: str | None, content_type: str = "application/octet-stream"):
    data = aiohttp.FormData(quote_fields=False)  # UTF-8 names sent raw, as browsers do
    data.add_field("file", content, filename=filename, content_type=content_type)
    return data


async def upload(client, user, task: str, content: bytes, filename: str | None, **kwargs: Any):
    """POST one file part; ``kwargs`` go to ``form`` (e.g. a lying content_type)."""
    return await client.post(
        f"/api/v1/tasks/{task}/attachments",
        data=form(content, filename, **kwargs),
        headers=user.headers,
    )


BOUNDARY = "pbtestboundary7d1a"


async def streamed_multipart(
    filename: str, first: bytes, filler: bytes, total: int
) -> AsyncIterator[bytes]:
    """A multipart body sent chunked (no Content-Length): ``first``, then ``filler`` repeated
    up to ``total`` bytes of file, generated as it is sent (never whole in memory)."""
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    yield first
    sent = len(first)
    while sent < total:
        piece = filler[: total - sent]
        sent += len(piece)
        yield piece
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


MULTIPART_HEADERS = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


async def stored_keys(db) -> list[str]:
    return sorted(await GridFSStorage(db).keys())


async def attachment_docs(db, task_id: str) -> list[dict[str, Any]]:
    return [doc async for doc in db.attachments.find({"task_id": task_id})]


def raw_multipart(*parts: tuple[bytes, bytes]) -> bytes:
    """A multipart body from ``(part headers, content)`` pairs, written byte for byte (to
    send what a polite client library refuses to)."""
    body = b""
    for headers, content in parts:
        body += f"--{BOUNDARY}\r\n".encode() + headers + b"\r\n\r\n" + content + b"\r\n"
    return body + f"--{BOUNDARY}--\r\n".encode()


def file_part_headers(filename: bytes, name: bytes = b"file") -> bytes:
    return b'Content-Disposition: form-data; name="' + name + b'"; filename="' + filename + b'"'
