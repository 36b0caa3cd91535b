"""Attachments: ``/api/v1/tasks/{task}/attachments``, ``/api/v1/attachments/{attachment_id}``
and the signed, bearer-less downloads ``/api/v1/files/{attachment_id}/{variant}``.

The upload is read straight from the multipart stream into the storage backend (never
whole in memory, and outside ``client_max_size``, which only bounds buffered bodies);
its own limit is ``PLANBOARD_ATTACHMENT_MAX_BYTES``.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import marshmallow as m
from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp_apigami import docs, querystring_schema, response_schema
from marshmallow import fields, validate

from planboard.api import planning_schemas as ps
from planboard.api.authn import caller_of
from planboard.api.http import BEARER, actor_of, context_of, pager_of
from planboard.api.json import json_response
from planboard.api.schemas import Strict
from planboard.api.validation import query_of
from planboard.auth.signing import VARIANTS, DownloadSigner
from planboard.domain import files
from planboard.domain.access import Role
from planboard.domain.errors import DomainError, Forbidden, NotFound
from planboard.services import attachments as service
from planboard.services import tasks as task_service
from planboard.services.attachment_storage import AttachmentStorage, MissingContent
from planboard.typedefs import db_key, metrics_key, settings_key

routes = web.RouteTableDef()

attachment_storage_key: web.AppKey[AttachmentStorage] = web.AppKey("attachment_storage")
signer_key = web.AppKey("download_signer", DownloadSigner)

READ_CHUNK = 64 * 1024
# Room for the multipart framing (boundaries, part headers) around the file itself.
MULTIPART_OVERHEAD = 16 * 1024
# What an uploaded document may never do when opened from the API's origin.
FILE_CSP = (
    "default-src 'none'; sandbox; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


def setup_attachments(app: web.Application, storage: AttachmentStorage) -> None:
    settings = app[settings_key]
    app[attachment_storage_key] = storage
    app[signer_key] = DownloadSigner(settings.secret_key, settings.previous_secret_keys)


# --------------------------------------------------------------------------- schemas


class AttachmentOut(m.Schema):
    id = fields.String(required=True)
    task_id = fields.String(required=True)
    project_id = fields.String(required=True)
    workspace_id = fields.String(required=True)
    filename = fields.String(required=True, metadata={"example": "screenshot.png"})
    content_type = fields.String(
        required=True,
        metadata={"description": "detected from the content, not the client's header"},
    )
    size = fields.Integer(required=True, metadata={"description": "bytes"})
    sha256 = fields.String(required=True)
    width = fields.Integer(allow_none=True, metadata={"description": "images only"})
    height = fields.Integer(allow_none=True, metadata={"description": "images only"})
    thumbnail = fields.String(
        required=True,
        validate=validate.OneOf(("pending", "ready", "failed", "none")),
        metadata={"description": "images get one from a worker: pending, then ready"},
    )
    uploaded_by = fields.String(allow_none=True)
    created_at = fields.DateTime()
    download_url = fields.String(
        required=True, metadata={"description": "signed; no bearer token needed until it expires"}
    )
    thumbnail_url = fields.String(allow_none=True, metadata={"description": "when ready"})
    urls_expire_at = fields.DateTime(required=True)


class AttachmentListOut(m.Schema):
    items = fields.List(fields.Nested(AttachmentOut), required=True)
    next_cursor = fields.String(allow_none=True, required=True)


class SignedParams(Strict):
    exp = fields.Integer(required=True, validate=validate.Range(min=0, max=2**40))
    sig = fields.String(required=True, validate=validate.Length(min=1, max=100))


# --------------------------------------------------------------------------- helpers


def _signed_url(request: web.Request, attachment_id: str, variant: str, expires: int) -> str:
    signature = request.app[signer_key].sign(attachment_id, variant, expires)
    base = request.app[settings_key].public_url.rstrip("/")
    return f"{base}/api/v1/files/{attachment_id}/{variant}?exp={expires}&sig={signature}"


def attachment_out(request: web.Request, doc: Mapping[str, Any]) -> dict[str, Any]:
    expires = int(time.time()) + request.app[settings_key].attachment_url_ttl_s
    attachment_id = doc["_id"]
    thumbnail = str(doc.get("thumbnail") or "none")
    return {
        "id": attachment_id,
        "task_id": doc["task_id"],
        "project_id": doc["project_id"],
        "workspace_id": doc["workspace_id"],
        "filename": doc["filename"],
        "content_type": doc["content_type"],
        "size": doc["size"],
        "sha256": doc["sha256"],
        "width": doc.get("width"),
        "height": doc.get("height"),
        "thumbnail": thumbnail,
        "uploaded_by": doc.get("uploaded_by"),
        "created_at": doc.get("created_at"),
        "download_url": _signed_url(request, attachment_id, "original", expires),
        "thumbnail_url": (
            _signed_url(request, attachment_id, "thumbnail", expires)
            if thumbnail == "ready"
            else None
        ),
        "urls_expire_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires)),
    }


def _reason(exc: Exception) -> str:
    message = exc.message if isinstance(exc, HttpProcessingError) else str(exc)
    return message.splitlines()[0][:200] if message else type(exc).__name__


async def _file_chunks(reader: Any, part: BodyPartReader) -> AsyncIterator[bytes]:
    """The file part's bytes as they arrive; a second part after it is an error."""
    try:
        while chunk := await part.read_chunk(READ_CHUNK):
            yield chunk
        extra = await reader.next()
    except (ValueError, HttpProcessingError) as exc:  # a broken multipart stream
        raise web.HTTPBadRequest(text=f"malformed multipart body: {_reason(exc)}") from None
    if extra is not None:
        raise files.RejectedFile(
            "several_parts", "send exactly one part, named file", "the upload has several parts"
        )


async def _file_part(request: web.Request) -> tuple[Any, BodyPartReader]:
    if request.content_type != "multipart/form-data":
        raise web.HTTPUnsupportedMediaType(
            text="send the file as multipart/form-data with one part named file "
            f"(got {request.content_type or 'nothing'})"
        )
    try:
        reader = await request.multipart()
        part = await reader.next()
    except (ValueError, AssertionError, KeyError, HttpProcessingError) as exc:
        raise web.HTTPBadRequest(text=f"malformed multipart body: {_reason(exc)}") from None
    if not isinstance(part, BodyPartReader) or part.name != "file":
        raise files.RejectedFile(
            "no_file_part", "send the file as a part named file", "the upload has no file part"
        )
    if part.filename is None:
        raise files.RejectedFile(
            "no_filename", "the file part needs a filename", "the upload has no file name"
        )
    return reader, part


# --------------------------------------------------------------------------- routes


@docs(
    tags=["attachments"],
    summary="Attach a file to a task (members and above): multipart/form-data, one part `file`",
    description=(
        "The file is streamed to storage. Its type is detected from its content (the part's "
        "Content-Type is ignored) and must be allowed; the name's extension must match it. "
        "Too large: 413; empty or a mismatched name: 422; a type not allowed: 415; an "
        "image declaring too many pixels: 422. Image thumbnails are made by a worker."
    ),
    security=BEARER,
)
@querystring_schema(ps.NoQuery)
@response_schema(AttachmentOut, 201)
@routes.post("/api/v1/tasks/{task}/attachments")
async def upload_attachment(request: web.Request) -> web.Response:
    task, project, access = await task_service.task_for(
        request.app[db_key],
        caller_of(request),
        request.match_info["task"],
        scope="attachments:write",
        role=Role.MEMBER,
    )
    settings = request.app[settings_key]
    metrics = request.app[metrics_key]
    storage = request.app[attachment_storage_key]
    try:
        length = request.content_length
        if length is not None and length > settings.attachment_max_bytes + MULTIPART_OVERHEAD:
            raise files.TooLarge(settings.attachment_max_bytes)
        reader, part = await _file_part(request)
        attachment = await service.upload(
            context_of(request),
            storage,
            service.Limits.of(settings),
            task,
            project,
            actor_of(request, access),
            filename=part.filename,
            chunks=_file_chunks(reader, part),
        )
    except (DomainError, web.HTTPException) as exc:
        reason = (
            files.rejection_reason(exc) if isinstance(exc, DomainError) else f"http_{exc.status}"
        )
        metrics.attachment_rejections.labels(reason).inc()
        raise
    metrics.attachment_uploads.labels(storage.name).inc()
    metrics.attachment_bytes.labels(storage.name).inc(int(str(attachment["size"])))
    return json_response(
        attachment_out(request, attachment),
        status=201,
        headers={"Location": f"/api/v1/attachments/{attachment['_id']}"},
    )


@docs(tags=["attachments"], summary="Attachments of a task, oldest first", security=BEARER)
@querystring_schema(ps.PageParams)
@response_schema(AttachmentListOut, 200)
@routes.get("/api/v1/tasks/{task}/attachments")
async def list_attachments(request: web.Request) -> web.Response:
    task, _, _ = await task_service.task_for(
        request.app[db_key],
        caller_of(request),
        request.match_info["task"],
        scope="attachments:read",
    )
    query = query_of(request)
    pager = pager_of(request, "attachments", task["_id"])
    found, more = await service.list_attachments(
        request.app[db_key],
        task,
        after=pager.after(query.get("cursor")),
        limit=query["limit"],
    )
    return json_response(
        {
            "items": [attachment_out(request, a) for a in found],
            "next_cursor": pager.next(found[-1] if found else None, "_id", more),
        }
    )


@docs(
    tags=["attachments"],
    summary="An attachment, with fresh signed download (and thumbnail) URLs",
    security=BEARER,
)
@querystring_schema(ps.NoQuery)
@response_schema(AttachmentOut, 200)
@routes.get("/api/v1/attachments/{attachment_id}")
async def get_attachment(request: web.Request) -> web.Response:
    attachment, _, _, _ = await service.attachment_for(
        request.app[db_key],
        caller_of(request),
        request.match_info["attachment_id"],
        scope="attachments:read",
    )
    return json_response(attachment_out(request, attachment))


@docs(
    tags=["attachments"],
    summary="Delete an attachment (members and above); its content and thumbnail go too",
    security=BEARER,
)
@querystring_schema(ps.NoQuery)
@routes.delete("/api/v1/attachments/{attachment_id}")
async def delete_attachment(request: web.Request) -> web.Response:
    attachment, task, project, access = await service.attachment_for(
        request.app[db_key],
        caller_of(request),
        request.match_info["attachment_id"],
        scope="attachments:write",
        role=Role.MEMBER,
    )
    await service.delete_attachment(
        context_of(request),
        request.app[attachment_storage_key],
        attachment,
        task,
        project,
        actor_of(request, access),
    )
    return web.Response(status=204)


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, length)`` of a single ``bytes=`` range; None for the whole file."""
    if not header:
        return None
    match = RANGE_RE.match(header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        return None  # not a form we serve (e.g. several ranges): the whole file, 200
    first, last = match.group(1), match.group(2)
    if first == "":
        start = max(size - int(last), 0)
        end = size - 1
    else:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise web.HTTPRequestRangeNotSatisfiable(
            text=f"the range {header!r} is outside the file ({size} bytes)",
            headers={"Content-Range": f"bytes */{size}"},
        )
    return start, end - start + 1


@docs(
    tags=["attachments"],
    summary="Download an attachment (or its thumbnail) by signed URL; no bearer token",
    description=(
        "The URL comes from an attachment's download_url / thumbnail_url. An expired or "
        "altered URL is a 403. Served as a download with the detected Content-Type, "
        "nosniff and a sandboxing CSP; a single byte Range is honoured (206)."
    ),
)
@querystring_schema(SignedParams)
@routes.get("/api/v1/files/{attachment_id}/{variant}")
async def download_file(request: web.Request) -> web.StreamResponse:
    attachment_id = request.match_info["attachment_id"][:100]
    variant = request.match_info["variant"][:20]
    query = query_of(request)
    if not request.app[signer_key].verify(
        attachment_id, variant, int(query["exp"]), str(query["sig"]), time.time()
    ):
        raise Forbidden("the link is invalid or has expired; get a fresh one from the API")
    # The signed link is the authorization: no bearer token, no membership check.
    attachment = await service.downloadable(request.app[db_key], attachment_id, variant)
    filename, sha256 = str(attachment["filename"]), str(attachment["sha256"])
    if variant == "thumbnail":
        size = int(str(attachment["thumbnail_size"]))
        content_type = files.THUMBNAIL_TYPE
        stem = filename.rpartition(".")[0] or filename
        disposition = files.content_disposition(f"{stem}.thumbnail.webp").replace(
            "attachment;", "inline;", 1
        )
        etag = f'"{sha256[:32]}-t"'
    else:
        size = int(str(attachment["size"]))
        content_type = str(attachment["content_type"])
        disposition = files.content_disposition(filename)
        etag = f'"{sha256[:32]}"'
    # The request id and the other security headers are added when the response is
    # prepared (api/middleware.py); these override the API's own for a file.
    headers = {
        "Content-Type": content_type,
        "Content-Disposition": disposition,
        "Content-Security-Policy": FILE_CSP,
        "X-Content-Type-Options": "nosniff",
        # a capability URL: front ends on other origins may show or fetch it
        "Cross-Origin-Resource-Policy": "cross-origin",
        "Cache-Control": "private, max-age=300",
        "ETag": etag,
        "Accept-Ranges": "bytes",
    }
    if etag in {t.strip() for t in request.headers.get("If-None-Match", "").split(",")}:
        return web.Response(status=304, headers={"ETag": etag, "Cache-Control": "private"})
    wanted = _byte_range(request.headers.get("Range"), size)
    start, length = wanted if wanted is not None else (0, size)
    content = service.open_content(
        request.app[attachment_storage_key], attachment, variant, start, length
    )
    try:
        try:
            first = await anext(content, b"")
        except MissingContent:
            raise NotFound("file not found") from None
        status = 200
        if wanted is not None:
            status = 206
            headers["Content-Range"] = f"bytes {start}-{start + length - 1}/{size}"
        headers["Content-Length"] = str(length)
        response = web.StreamResponse(status=status, headers=headers)
        await response.prepare(request)
        if request.method != "HEAD":
            await response.write(first)
            async for chunk in content:
                await response.write(chunk)
        await response.write_eof()
        return response
    finally:
        await content.aclose()


__all__ = ["VARIANTS", "routes", "setup_attachments"]
