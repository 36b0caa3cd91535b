"""``/api/v1/workspaces/{workspace_id}/webhooks``: webhooks and their delivery log.

Webhooks are managed by workspace admins (scopes ``webhooks:read`` / ``webhooks:write``);
another workspace's webhook is a 404. The secret is returned only when created
(or rotated). Test pings and redeliveries are queued for the ``webhooks`` worker
(202) and show up in the delivery log.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp_apigami import docs, querystring_schema, request_schema, response_schema

from planboard.api import webhook_schemas as s
from planboard.api.authn import caller_of
from planboard.api.conditional import expected_version, not_modified
from planboard.api.http import pager_of
from planboard.api.json import json_response
from planboard.api.middleware import request_id_of
from planboard.api.validation import query_of, validated
from planboard.domain.access import Role
from planboard.services import webhooks as service
from planboard.services.access import Access, authorize
from planboard.services.representations import make_etag
from planboard.services.webhook_subscriptions import bump_quietly
from planboard.store.document import Document
from planboard.typedefs import db_key, redis_key, settings_key

routes = web.RouteTableDef()
BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
BASE = "/api/v1/workspaces/{workspace_id}/webhooks"
TAGS = ["webhooks"]


async def _access(request: web.Request, *, write: bool) -> Access:
    return await authorize(
        request.app[db_key],
        caller_of(request),
        request.match_info["workspace_id"],
        scope="webhooks:write" if write else "webhooks:read",
        role=Role.ADMIN,
    )


def webhook_out(webhook: Document) -> dict[str, Any]:
    return {
        "id": webhook["_id"],
        "workspace_id": webhook["workspace_id"],
        "url": webhook["url"],
        "events": webhook.get("events", []),
        "active": bool(webhook.get("active")),
        "disabled_reason": webhook.get("disabled_reason") or None,
        "consecutive_failures": webhook.get("consecutive_failures", 0),
        "last_delivery_at": webhook.get("last_delivery_at"),
        "last_delivery_status": webhook.get("last_delivery_status"),
        "created_by": webhook.get("created_by"),
        "created_at": webhook.get("created_at"),
        "updated_at": webhook.get("updated_at"),
        "version": webhook.get("version", 1),
    }


def delivery_out(delivery: Document, *, detail: bool = False) -> dict[str, Any]:
    pending = delivery.get("status") == service.PENDING
    out: dict[str, Any] = {
        "id": delivery["_id"],
        "webhook_id": delivery["webhook_id"],
        "event_id": delivery["event_id"],
        "event_type": delivery["event_type"],
        "status": delivery["status"],
        "attempts": delivery.get("attempts", 0),
        "max_attempts": delivery.get("max_attempts", 1),
        "manual": bool(delivery.get("manual")),
        "redelivery_of": delivery.get("redelivery_of"),
        "response_code": delivery.get("response_status"),
        "response_body": delivery.get("response_body") or "",
        "duration_ms": delivery.get("duration_ms"),
        "error": delivery.get("error") or "",
        "created_at": delivery.get("created_at"),
        "last_attempt_at": delivery.get("last_attempt_at"),
        "next_attempt_at": delivery.get("next_attempt_at") if pending else None,
        "delivered_at": delivery.get("delivered_at"),
    }
    if detail:
        out["request_body"] = service.truncate(str(delivery.get("body") or ""))
    return out


def _etag(webhook: Document) -> str:
    return make_etag(str(webhook["_id"]), service.as_int(webhook.get("version"), 1))


def _with_secret(webhook: Document, secret: str) -> dict[str, Any]:
    return {**webhook_out(webhook), "secret": secret}


@docs(
    tags=TAGS,
    summary="Create a webhook (admin); the secret is shown only in this answer",
    security=BEARER,
)
@request_schema(s.WebhookBody)
@response_schema(s.WebhookCreatedOut, 201)
@routes.post(BASE)
async def create_webhook(request: web.Request) -> web.Response:
    access = await _access(request, write=True)
    body = validated(request)
    webhook, secret = await service.create_webhook(
        request.app[db_key],
        request.app[settings_key],
        access,
        url=body["url"],
        events=body["events"],
        secret=body.get("secret"),
        request_id=request_id_of(request),
    )
    await bump_quietly(request.app[redis_key], [access.workspace_id])  # workers see it now
    return json_response(
        _with_secret(webhook, secret),
        status=201,
        headers={
            "Location": f"/api/v1/workspaces/{access.workspace_id}/webhooks/{webhook['_id']}",
            "ETag": _etag(webhook),
        },
    )


@docs(tags=TAGS, summary="The workspace's webhooks (admin)", security=BEARER)
@querystring_schema(s.WebhookListQuery)
@response_schema(s.WebhookListOut, 200)
@routes.get(BASE)
async def list_webhooks(request: web.Request) -> web.Response:
    access = await _access(request, write=False)
    query = query_of(request)
    pager = pager_of(request, "webhooks", access.workspace_id)
    found, more = await service.webhooks_page(
        request.app[db_key],
        access,
        after=pager.after(query.get("cursor")),
        limit=query["limit"],
    )
    cursor = pager.next(found[-1] if found else None, "_id", more)
    return json_response({"items": [webhook_out(w) for w in found], "next_cursor": cursor})


@docs(tags=TAGS, summary="A webhook (admin; never its secret)", security=BEARER)
@response_schema(s.WebhookOut, 200)
@routes.get(BASE + "/{webhook_id}")
async def get_webhook(request: web.Request) -> web.Response:
    access = await _access(request, write=False)
    webhook = await service.get_webhook(
        request.app[db_key], access, request.match_info["webhook_id"]
    )
    etag = _etag(webhook)
    return not_modified(request, etag) or json_response(
        webhook_out(webhook), headers={"ETag": etag}
    )


@docs(
    tags=TAGS,
    summary="Change a webhook's url, events, active flag or secret (admin)",
    description=(
        '`{"rotate_secret": true}` generates a new secret, returned once as `secret`. '
        '`{"active": true}` re-enables a disabled webhook and clears its failure count. '
        "`If-Match` (or `version`) makes the change conditional: 412 when stale."
    ),
    security=BEARER,
)
@request_schema(s.WebhookPatch)
@response_schema(s.WebhookUpdatedOut, 200)
@routes.patch(BASE + "/{webhook_id}")
async def update_webhook(request: web.Request) -> web.Response:
    access = await _access(request, write=True)
    webhook_id = request.match_info["webhook_id"]
    body = validated(request)
    version = expected_version(request, webhook_id, body.get("version"))
    webhook, secret = await service.update_webhook(
        request.app[db_key],
        request.app[settings_key],
        access,
        webhook_id,
        {k: v for k, v in body.items() if k != "version"},
        expected_version=version,
        request_id=request_id_of(request),
    )
    await bump_quietly(request.app[redis_key], [access.workspace_id])
    out = _with_secret(webhook, secret) if secret else webhook_out(webhook)
    return json_response(out, headers={"ETag": _etag(webhook)})


@docs(tags=TAGS, summary="Delete a webhook and its delivery log (admin)", security=BEARER)
@routes.delete(BASE + "/{webhook_id}")
async def delete_webhook(request: web.Request) -> web.Response:
    access = await _access(request, write=True)
    await service.delete_webhook(
        request.app[db_key], access, request.match_info["webhook_id"], request_id_of(request)
    )
    await bump_quietly(request.app[redis_key], [access.workspace_id])
    return web.Response(status=204)


@docs(
    tags=TAGS,
    summary="Send a webhook.ping delivery (admin); see the delivery log for the result",
    security=BEARER,
)
@response_schema(s.DeliveryOut, 202)
@routes.post(BASE + "/{webhook_id}/test")
async def test_webhook(request: web.Request) -> web.Response:
    access = await _access(request, write=True)
    delivery = await service.queue_ping(
        request.app[db_key], access, request.match_info["webhook_id"], request_id_of(request)
    )
    return json_response(delivery_out(delivery), status=202, headers=_delivery_location(delivery))


def _delivery_location(delivery: Document) -> dict[str, str]:
    return {
        "Location": (
            f"/api/v1/workspaces/{delivery['workspace_id']}/webhooks/{delivery['webhook_id']}"
            f"/deliveries/{delivery['_id']}"
        )
    }


@docs(tags=TAGS, summary="A webhook's delivery log, newest first (admin)", security=BEARER)
@querystring_schema(s.DeliveryListQuery)
@response_schema(s.DeliveryListOut, 200)
@routes.get(BASE + "/{webhook_id}/deliveries")
async def list_deliveries(request: web.Request) -> web.Response:
    access = await _access(request, write=False)
    db = request.app[db_key]
    webhook = await service.get_webhook(db, access, request.match_info["webhook_id"])
    query = query_of(request)
    pager = pager_of(request, "webhook-deliveries", str(webhook["_id"]), query)
    found, more = await service.deliveries_page(
        db,
        webhook,
        after=pager.after(query.get("cursor")),
        limit=query["limit"],
        status=query.get("status"),
        event_type=query.get("event_type"),
    )
    cursor = pager.next(found[-1] if found else None, "_id", more)
    return json_response({"items": [delivery_out(d) for d in found], "next_cursor": cursor})


@docs(tags=TAGS, summary="One delivery, with the request body sent (admin)", security=BEARER)
@response_schema(s.DeliveryDetailOut, 200)
@routes.get(BASE + "/{webhook_id}/deliveries/{delivery_id}")
async def get_delivery(request: web.Request) -> web.Response:
    access = await _access(request, write=False)
    db = request.app[db_key]
    webhook = await service.get_webhook(db, access, request.match_info["webhook_id"])
    delivery = await service.delivery_of(db, webhook, request.match_info["delivery_id"])
    return json_response(delivery_out(delivery, detail=True))


@docs(
    tags=TAGS,
    summary="Send a past delivery again, as a new delivery with one attempt (admin)",
    security=BEARER,
)
@response_schema(s.DeliveryOut, 202)
@routes.post(BASE + "/{webhook_id}/deliveries/{delivery_id}/redeliver")
async def redeliver(request: web.Request) -> web.Response:
    access = await _access(request, write=True)
    delivery = await service.redeliver(
        request.app[db_key],
        access,
        request.match_info["webhook_id"],
        request.match_info["delivery_id"],
    )
    return json_response(delivery_out(delivery), status=202, headers=_delivery_location(delivery))
