"""Request and response schemas of webhooks and their delivery log.

The URL's syntax and the event names are checked here (422 naming ``url`` or
``events.<i>``); whether the URL's host is an allowed target is decided by the
service (it resolves the host, see services/ssrf.py).
"""

from __future__ import annotations

from typing import Any

import marshmallow as m
from marshmallow import fields, validate, validates_schema

from planboard.api.schemas import Strict, Trimmed
from planboard.services import ssrf
from planboard.services import webhooks as service
from planboard.services.webhooks import DELIVERY_STATES


class StrictBool(fields.Boolean):
    """Only JSON ``true`` / ``false``."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise m.ValidationError("must be true or false")
        return value


def _check_url(value: str) -> None:
    try:
        ssrf.parse_target(value)
    except ValueError as exc:
        raise m.ValidationError(str(exc)) from None


def _check_event(value: str) -> None:
    message = service.filter_error(value)
    if message:
        raise m.ValidationError(message)


def url_field(**kwargs: Any) -> fields.Field:
    return Trimmed(
        validate=[validate.Length(min=1, max=ssrf.MAX_URL_LENGTH), _check_url],
        metadata={"example": "https://hooks.example.com/planboard"},
        **kwargs,
    )


def events_field(**kwargs: Any) -> fields.Field:
    return fields.List(
        fields.String(validate=[validate.Length(min=1, max=100), _check_event]),
        validate=validate.Length(min=1, max=service.MAX_FILTERS),
        metadata={
            "description": (
                'Event names ("task.created"), family wildcards ("task.*") or "*" for every '
                "event of the workspace."
            ),
            "example": ["task.created", "task.updated", "comment.*"],
        },
        **kwargs,
    )


def secret_field() -> fields.Field:
    return fields.String(
        validate=validate.Length(min=service.MIN_SECRET_LENGTH, max=service.MAX_SECRET_LENGTH),
        metadata={"description": "HMAC key (16-256 characters); generated when omitted"},
    )


class WebhookBody(Strict):
    url = url_field(required=True)
    events = events_field(required=True)
    secret = secret_field()


class WebhookPatch(Strict):
    url = url_field()
    events = events_field()
    active = StrictBool(
        metadata={"description": "false pauses deliveries; true re-enables (clears failures)"}
    )
    secret = secret_field()
    rotate_secret = StrictBool(
        metadata={"description": "true: generate a new secret, returned only in this answer"}
    )
    version = fields.Integer(
        strict=True,
        validate=validate.Range(min=1),
        metadata={"description": "the version you read (or send If-Match): 412 when stale"},
    )

    @validates_schema
    def _something(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not set(data) - {"version"}:
            raise m.ValidationError("change at least one field", "body")
        if "secret" in data and data.get("rotate_secret"):
            raise m.ValidationError("give a secret or rotate_secret, not both", "secret")


class WebhookListQuery(Strict):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=100))
    cursor = fields.String(validate=validate.Length(max=500))


class DeliveryListQuery(Strict):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=100))
    cursor = fields.String(validate=validate.Length(max=500))
    status = fields.String(validate=validate.OneOf(DELIVERY_STATES))
    event_type = fields.String(validate=validate.Length(min=1, max=100))


class WebhookOut(m.Schema):
    id = fields.String(required=True)
    workspace_id = fields.String()
    url = fields.String(required=True)
    events = fields.List(fields.String(), required=True)
    active = fields.Boolean()
    disabled_reason = fields.String(allow_none=True)
    consecutive_failures = fields.Integer()
    last_delivery_at = fields.DateTime(allow_none=True)
    last_delivery_status = fields.String(allow_none=True)
    created_by = fields.String()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    version = fields.Integer()


class WebhookCreatedOut(WebhookOut):
    secret = fields.String(
        required=True, metadata={"description": "shown only here (and on rotation)"}
    )


class WebhookUpdatedOut(WebhookOut):
    secret = fields.String(metadata={"description": "present only when the secret was rotated"})


class WebhookListOut(m.Schema):
    items = fields.List(fields.Nested(WebhookOut))
    next_cursor = fields.String(allow_none=True)


class DeliveryOut(m.Schema):
    id = fields.String(required=True, metadata={"description": "the X-Planboard-Delivery value"})
    webhook_id = fields.String()
    event_id = fields.String()
    event_type = fields.String()
    status = fields.String(validate=validate.OneOf(DELIVERY_STATES))
    attempts = fields.Integer()
    max_attempts = fields.Integer()
    manual = fields.Boolean(metadata={"description": "a ping or a redelivery"})
    redelivery_of = fields.String(allow_none=True)
    response_code = fields.Integer(allow_none=True)
    response_body = fields.String(metadata={"description": "first 2048 characters"})
    duration_ms = fields.Float(allow_none=True)
    error = fields.String()
    created_at = fields.DateTime()
    last_attempt_at = fields.DateTime(allow_none=True)
    next_attempt_at = fields.DateTime(allow_none=True)
    delivered_at = fields.DateTime(allow_none=True)


class DeliveryDetailOut(DeliveryOut):
    request_body = fields.String(metadata={"description": "first 2048 characters"})


class DeliveryListOut(m.Schema):
    items = fields.List(fields.Nested(DeliveryOut))
    next_cursor = fields.String(allow_none=True)
