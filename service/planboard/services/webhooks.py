"""Webhooks: subscriptions, delivery records, signatures and auto-disable.

The API manages webhooks (admins only) and queues manual deliveries (ping,
redeliver); the ``webhooks`` worker fans events out into delivery records
(``fan_out_many``, a poll's events at once) and sends them (workers/webhooks.py),
reporting each final outcome here (``delivery_succeeded`` / ``delivery_failed``).
Nothing in this module makes an HTTP request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from pymongo.asynchronous.database import AsyncDatabase

from planboard.config import Settings
from planboard.domain.access import Role
from planboard.domain.errors import Conflict, NotFound, ValidationFailed, VersionMismatch
from planboard.events import outbox
from planboard.events.envelope import Event
from planboard.services import ssrf
from planboard.services.access import Access
from planboard.services.mail import queue_mail
from planboard.services.webhook_subscriptions import SubscriptionCache
from planboard.store import memberships, quotas, users, workspaces
from planboard.store import webhooks as store
from planboard.store.document import Document
from planboard.store.ids import new_id, utcnow
from planboard.store.pagination import Position

# Families whose events a webhook can subscribe to (``mail`` and ``user`` events are
# internal or personal, never workspace data).
FAMILIES = ("workspace", "project", "task", "comment", "attachment", "webhook", "job")
EVENT_TYPES = frozenset(
    {
        "workspace.updated",
        "workspace.deleted",
        "workspace.member_added",
        "workspace.member_updated",
        "workspace.member_removed",
        "workspace.invitation_created",
        "project.created",
        "project.updated",
        "project.deleted",
        "project.baseline_created",
        "project.forecast_changed",
        "task.created",
        "task.updated",
        "task.deleted",
        "task.rescheduled",
        "task.slack_exhausted",
        "comment.created",
        "comment.updated",
        "comment.deleted",
        "attachment.added",
        "attachment.deleted",
        "webhook.created",
        "webhook.updated",
        "webhook.deleted",
    }
)
PING = "webhook.ping"  # sent by POST .../test, whatever the filters say
MAX_FILTERS = 50
MAX_WEBHOOKS_PER_WORKSPACE = 25
MIN_SECRET_LENGTH = 16
MAX_SECRET_LENGTH = 256
SECRET_PREFIX = "pbwhsec_"  # noqa: S105 - a prefix, not a secret
STORED_BODY_CHARS = 2048  # request and response bodies kept in the delivery log


@dataclass(frozen=True, slots=True)
class WebhookOptions:
    """Delivery tuning; ``from_settings`` takes ``PLANBOARD_WEBHOOK_*`` (docs/webhooks.md)."""

    retry_delays_s: tuple[float, ...] = (30.0, 120.0, 600.0, 3600.0, 21600.0)
    jitter: float = 0.1  # each delay is scaled by a random factor in [1 - j, 1 + j]
    disable_after: int = 10  # consecutive failed deliveries before auto-disable
    connect_timeout_s: float = 5.0
    total_timeout_s: float = 10.0
    max_response_bytes: int = 64 * 1024
    concurrency: int = 32  # attempts in flight per worker process
    connections_per_host: int = 8  # open to one receiver host at most (≤ concurrency)
    poll_interval_s: float = 1.0
    lease_s: float = 60.0  # a claimed delivery is someone else's for this long
    retention_days: int = 30  # settled deliveries are kept this long
    resolve_timeout_s: float = 2.0  # create-time DNS check
    # the worker's cache of active webhooks per workspace (services/webhook_subscriptions.py)
    subscription_ttl_s: float = 10.0

    @property
    def max_attempts(self) -> int:
        return 1 + len(self.retry_delays_s)

    def retry_delay(self, attempts: int) -> float:
        """Seconds before the attempt after ``attempts`` failed ones, with jitter."""
        base = self.retry_delays_s[min(attempts, len(self.retry_delays_s)) - 1]
        factor = 1.0 + secrets.SystemRandom().uniform(-self.jitter, self.jitter)
        return max(0.0, base * factor)

    @classmethod
    def from_settings(cls, settings: Settings) -> WebhookOptions:
        """The delivery tuning of ``settings`` (``PLANBOARD_WEBHOOK_*``, config.py)."""
        return cls(
            retry_delays_s=settings.webhook_retry_delays_s,
            disable_after=settings.webhook_disable_after,
            connect_timeout_s=settings.webhook_connect_timeout_s,
            total_timeout_s=settings.webhook_total_timeout_s,
            max_response_bytes=settings.webhook_max_response_bytes,
            concurrency=settings.webhook_concurrency,
            connections_per_host=settings.webhook_connections_per_host,
            poll_interval_s=settings.webhook_poll_interval_s,
            lease_s=settings.webhook_lease_s,
            retention_days=settings.webhook_retention_days,
            subscription_ttl_s=settings.webhook_subscription_ttl_s,
        )


# --- filters, secrets, signatures, payloads ---------------------------------------------


def as_int(value: object, default: int = 0) -> int:
    """A stored integer field (documents are loosely typed)."""
    return value if isinstance(value, int) else default


def filters_of(webhook: Document) -> list[str]:
    stored = webhook.get("events")
    return [str(name) for name in stored] if isinstance(stored, list) else []


def filter_error(name: str) -> str | None:
    """Why ``name`` is not a valid event filter, or None."""
    if name == "*":
        return None
    family, _, action = name.partition(".")
    if action == "*":
        return None if family in FAMILIES else f"unknown event family {family!r}"
    if name not in EVENT_TYPES:
        return f"unknown event {name!r}"
    return None


def normalize_filters(names: Sequence[str]) -> list[str]:
    """Validate and de-duplicate filters (order kept); ValidationFailed names the entry."""
    errors = [
        (f"events.{index}", message)
        for index, name in enumerate(names)
        if (message := filter_error(name)) is not None
    ]
    if errors:
        raise ValidationFailed(errors, "unknown event names")
    if not names:
        raise ValidationFailed([("events", "list at least one event")])
    return list(dict.fromkeys(names))


def matches(filters: Iterable[str], event_type: str) -> bool:
    family = event_type.partition(".")[0]
    return any(f == "*" or f == event_type or f == f"{family}.*" for f in filters)


def generate_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, body: bytes) -> str:
    """The ``X-Planboard-Signature`` value: ``sha256=<hex HMAC-SHA256 of the body>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _rfc3339(moment: datetime) -> str:
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def payload(event: Event) -> bytes:
    """The delivery body: the event envelope (the bytes that are signed and sent)."""
    return orjson.dumps(
        {
            "id": event.id,
            "type": event.type,
            "occurred_at": _rfc3339(event.occurred_at),
            "workspace_id": event.workspace_id,
            "actor_id": event.actor_id,
            "data": event.data,
        },
        default=str,
    )


def _event(
    kind: str, webhook: Document, actor: str | None, request_id: str | None, **data: object
) -> Event:
    workspace_id = str(webhook["workspace_id"])
    return Event(
        type=kind,
        key=workspace_id,
        workspace_id=workspace_id,
        # never the URL (it may carry a token) nor the secret
        data={"webhook_id": webhook["_id"], **data},
        actor_id=actor,
        request_id=request_id,
    )


async def _checked_url(settings: Settings, options: WebhookOptions, url: str) -> str:
    try:
        target = await ssrf.validate_target(
            url,
            allow_private=settings.allow_private_webhooks,
            resolve_timeout_s=options.resolve_timeout_s,
        )
    except (ValueError, ssrf.TargetRefused) as exc:
        raise ValidationFailed([("url", str(exc))], f"url {exc}") from None
    return target.url


def _check_secret(secret: str) -> None:
    if not MIN_SECRET_LENGTH <= len(secret) <= MAX_SECRET_LENGTH:
        raise ValidationFailed(
            [("secret", f"must be {MIN_SECRET_LENGTH} to {MAX_SECRET_LENGTH} characters")]
        )


# --- management (API) -------------------------------------------------------------------


async def get_webhook(db: AsyncDatabase[Document], access: Access, webhook_id: str) -> Document:
    webhook = await store.get(db, access.workspace_id, webhook_id)
    if webhook is None:
        raise NotFound("webhook not found")
    return webhook


async def create_webhook(
    db: AsyncDatabase[Document],
    settings: Settings,
    access: Access,
    *,
    url: str,
    events: Sequence[str],
    secret: str | None,
    request_id: str | None,
    options: WebhookOptions | None = None,
) -> tuple[Document, str]:
    """Store a webhook; returns it and its secret (shown to the caller only now)."""
    filters = normalize_filters(events)
    if secret is not None:
        _check_secret(secret)
    checked = await _checked_url(settings, options or WebhookOptions(), url)
    now = utcnow()
    key = secret if secret is not None else generate_secret()
    webhook: Document = {
        "_id": new_id(),
        "workspace_id": access.workspace_id,
        "url": checked,
        "events": filters,
        "secret": key,
        "active": True,
        "disabled_reason": "",
        "consecutive_failures": 0,
        "created_by": access.user_id,
        "created_at": now,
        "updated_at": now,
        "version": 1,
    }
    # The limit holds under concurrent creates: the workspace's webhook_count is taken by a
    # conditional write before the insert (store/quotas.py).
    async with quotas.held(
        db,
        quotas.WORKSPACE_WEBHOOKS,
        access.workspace_id,
        limit=MAX_WEBHOOKS_PER_WORKSPACE,
        refusal=Conflict(f"a workspace can have at most {MAX_WEBHOOKS_PER_WORKSPACE} webhooks"),
    ):
        await store.insert(db, webhook)
    await outbox.record(
        db,
        [_event("webhook.created", webhook, access.user_id, request_id, events=filters)],
    )
    return webhook, key


async def update_webhook(
    db: AsyncDatabase[Document],
    settings: Settings,
    access: Access,
    webhook_id: str,
    changes: Mapping[str, Any],
    *,
    expected_version: int | None,
    request_id: str | None,
    options: WebhookOptions | None = None,
) -> tuple[Document, str | None]:
    """Apply ``url``/``events``/``active``/``secret``/``rotate_secret``.

    Returns the webhook and the new secret when one was generated (shown once).
    Re-activating a webhook clears its failure count and disabled reason.
    """
    current = await get_webhook(db, access, webhook_id)
    values: Document = {}
    new_secret: str | None = None
    if "url" in changes:
        values["url"] = await _checked_url(settings, options or WebhookOptions(), changes["url"])
    if "events" in changes:
        values["events"] = normalize_filters(changes["events"])
    if "secret" in changes and changes.get("rotate_secret"):
        raise ValidationFailed([("secret", "give a secret or rotate_secret, not both")])
    if "secret" in changes:
        _check_secret(changes["secret"])
        values["secret"] = changes["secret"]
    elif changes.get("rotate_secret"):
        new_secret = values["secret"] = generate_secret()
    if "active" in changes:
        values["active"] = bool(changes["active"])
        if values["active"]:
            values["consecutive_failures"] = 0
            values["disabled_reason"] = ""
    values["updated_at"] = utcnow()
    updated = await store.update(
        db, access.workspace_id, webhook_id, values, expected_version=expected_version
    )
    if updated is None:
        if expected_version is not None and expected_version != current.get("version"):
            raise VersionMismatch("the webhook changed since you read it; read it again")
        raise NotFound("webhook not found")
    changed = sorted(k for k in values if k in ("url", "events", "secret", "active"))
    await outbox.record(
        db,
        [
            _event(
                "webhook.updated",
                updated,
                access.user_id,
                request_id,
                changes=changed,
                active=bool(updated["active"]),
            )
        ],
    )
    return updated, new_secret


async def delete_webhook(
    db: AsyncDatabase[Document], access: Access, webhook_id: str, request_id: str | None
) -> None:
    webhook = await get_webhook(db, access, webhook_id)
    if not await store.delete(db, access.workspace_id, webhook_id):
        raise NotFound("webhook not found")
    await quotas.WORKSPACE_WEBHOOKS.give_back(db, access.workspace_id)
    await store.delete_deliveries_of(db, webhook_id)
    await outbox.record(db, [_event("webhook.deleted", webhook, access.user_id, request_id)])


def _delivery(
    webhook: Document,
    *,
    event_id: str,
    event_type: str,
    body: bytes,
    dedupe_key: str,
    max_attempts: int,
    manual: bool,
    now: datetime,
    **extra: object,
) -> Document:
    return {
        "_id": new_id(),
        "webhook_id": webhook["_id"],
        "workspace_id": webhook["workspace_id"],
        "dedupe_key": dedupe_key,
        "event_id": event_id,
        "event_type": event_type,
        "body": body.decode(),
        "status": store.PENDING,
        "attempts": 0,
        "max_attempts": max_attempts,
        "manual": manual,
        "next_attempt_at": now,
        "next_attempt_ms": store.epoch_ms(now),
        "created_at": now,
        "updated_at": now,
        "response_status": None,
        "response_body": "",
        "duration_ms": None,
        "error": "",
        **extra,
    }


async def queue_ping(
    db: AsyncDatabase[Document], access: Access, webhook_id: str, request_id: str | None
) -> Document:
    """A ``webhook.ping`` delivery (one attempt, sent even to a disabled webhook)."""
    webhook = await get_webhook(db, access, webhook_id)
    event = Event(
        type=PING,
        key=access.workspace_id,
        workspace_id=access.workspace_id,
        data={"webhook_id": webhook_id, "events": filters_of(webhook)},
        actor_id=access.user_id,
        request_id=request_id,
    )
    now = utcnow()
    delivery = _delivery(
        webhook,
        event_id=event.id,
        event_type=PING,
        body=payload(event),
        dedupe_key=f"{webhook_id}:{event.id}",
        max_attempts=1,
        manual=True,
        now=now,
    )
    await store.insert_delivery(db, delivery)
    return delivery


async def redeliver(
    db: AsyncDatabase[Document], access: Access, webhook_id: str, delivery_id: str
) -> Document:
    """Send a past delivery's body again as a new delivery (new id, one attempt)."""
    webhook = await get_webhook(db, access, webhook_id)
    original = await store.get_delivery(db, webhook_id, delivery_id)
    if original is None:
        raise NotFound("delivery not found")
    if original["status"] in (store.PENDING, store.DELIVERING):
        raise Conflict("this delivery is still in progress; redeliver it once it has settled")
    now = utcnow()
    copy_id = new_id()
    delivery = _delivery(
        webhook,
        event_id=str(original["event_id"]),
        event_type=str(original["event_type"]),
        body=str(original["body"]).encode(),
        dedupe_key=f"{webhook_id}:{original['event_id']}:redelivery:{copy_id}",
        max_attempts=1,
        manual=True,
        now=now,
        redelivery_of=delivery_id,
    )
    delivery["_id"] = copy_id
    await store.insert_delivery(db, delivery)
    return delivery


# --- worker side ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HandOff:
    """Deliveries the fan-out creates already claimed, for the caller's loop to send now.

    Up to ``limit`` of them get ``store.claim_stamp`` and ``attempts`` 1 at insert (the
    rest stay pending for any loop to claim): the same state a claim would give them, one
    update and two reads fewer, and no wait for the next claim round. Should the caller
    die before sending, their lease expires and another loop claims them.
    """

    owner: str
    token: str
    lease_s: float
    limit: int


async def fan_out(
    db: AsyncDatabase[Document],
    event: Event,
    options: WebhookOptions,
    subscriptions: SubscriptionCache | None = None,
) -> list[tuple[Document, Document]]:
    """``fan_out_many`` of one event."""
    return await fan_out_many(db, [event], options, subscriptions)


async def fan_out_many(
    db: AsyncDatabase[Document],
    events: Sequence[Event],
    options: WebhookOptions,
    subscriptions: SubscriptionCache | None = None,
    *,
    hand_off: HandOff | None = None,
) -> list[tuple[Document, Document]]:
    """One delivery per (event, active matching webhook of its workspace), idempotent.

    All in one insert (unordered; a delivery whose ``dedupe_key`` exists — the event was
    handled before — is not created again). Webhooks come from ``subscriptions`` when
    given (fresh by generation), else from MongoDB. A ``workspace.deleted`` event deletes
    the workspace's webhooks and deliveries, and its workspace's other events of the batch
    create none. Returns the deliveries created now, each with its webhook.
    """
    scoped = [e for e in events if e.workspace_id is not None]
    deleted = {str(e.workspace_id) for e in scoped if e.type == "workspace.deleted"}
    for workspace_id in sorted(deleted):
        await store.delete_for_workspace(db, workspace_id)  # the webhooks go with it
    live = [e for e in scoped if e.workspace_id not in deleted]
    workspace_ids = list(dict.fromkeys(str(e.workspace_id) for e in live))
    if subscriptions is not None:
        # changes this worker consumes itself need no generation round trip to be seen
        subscriptions.forget(
            deleted | {str(e.workspace_id) for e in live if e.type.startswith("webhook.")}
        )
        hooks = await subscriptions.active(db, workspace_ids)
    else:
        hooks = await store.active_for_workspaces(db, workspace_ids) if workspace_ids else {}
    now = utcnow()
    pairs: list[tuple[Document, Document]] = []
    for event in live:
        matching = [
            hook
            for hook in hooks.get(str(event.workspace_id), ())
            if matches(filters_of(hook), event.type)
        ]
        if not matching:
            continue
        body = payload(event)
        pairs += [
            (
                _delivery(
                    hook,
                    event_id=event.id,
                    event_type=event.type,
                    body=body,
                    dedupe_key=f"{hook['_id']}:{event.id}",
                    max_attempts=options.max_attempts,
                    manual=False,
                    now=now,
                ),
                hook,
            )
            for hook in matching
        ]
    if hand_off is not None:
        stamp = store.claim_stamp(
            owner=hand_off.owner,
            token=hand_off.token,
            now=now,
            lease_until=now + timedelta(seconds=hand_off.lease_s),
        )
        for delivery, _ in pairs[: hand_off.limit]:
            delivery.update(stamp, attempts=1)
    created = await store.insert_deliveries(db, [delivery for delivery, _ in pairs])
    stored = {id(delivery) for delivery in created}
    return [(delivery, hook) for delivery, hook in pairs if id(delivery) in stored]


def truncate(text: str, limit: int = STORED_BODY_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


LAST_DELIVERY_GRANULARITY = timedelta(seconds=10)


async def delivery_succeeded(
    db: AsyncDatabase[Document], delivery: Document, webhook: Document
) -> None:
    """Reset the failure count; ``last_delivery_at`` is refreshed at most every 10 s.

    ``webhook`` (the document the delivery loop read) is updated in place to match, so
    further successes to it from the same read spare the write.
    """
    if delivery.get("manual"):
        return
    now = utcnow()
    last = webhook.get("last_delivery_at")
    if (
        as_int(webhook.get("consecutive_failures")) == 0
        and webhook.get("last_delivery_status") == store.DELIVERED
        and isinstance(last, datetime)
        and now - last < LAST_DELIVERY_GRANULARITY
    ):
        return  # nothing to reset: spare the write on a busy webhook
    await store.note_success(db, str(delivery["webhook_id"]), now)
    webhook.update(
        consecutive_failures=0, last_delivery_at=now, last_delivery_status=store.DELIVERED
    )


async def delivery_failed(
    db: AsyncDatabase[Document], settings: Settings, delivery: Document, options: WebhookOptions
) -> bool:
    """Count a finally failed delivery; disable the webhook after too many in a row.

    Returns True when this call disabled the webhook (and mailed the owners).
    """
    if delivery.get("manual"):
        return False
    now = utcnow()
    webhook = await store.note_failure(db, str(delivery["webhook_id"]), now)
    if webhook is None or as_int(webhook.get("consecutive_failures")) < options.disable_after:
        return False
    reason = (
        f"disabled after {webhook['consecutive_failures']} consecutive failed deliveries; "
        f"last error: {truncate(str(delivery.get('error') or ''), 300)}"
    )
    disabled = await store.disable(db, str(webhook["_id"]), reason, now)
    if disabled is None:
        return False  # already inactive: another worker got there first
    await outbox.record(
        db,
        [
            _event(
                "webhook.updated",
                disabled,
                None,
                None,
                changes=["active"],
                active=False,
                disabled_reason=reason,
            )
        ],
    )
    await _mail_owners(db, settings, disabled, reason)
    return True


async def _mail_owners(
    db: AsyncDatabase[Document], settings: Settings, webhook: Document, reason: str
) -> None:
    workspace_id = str(webhook["workspace_id"])
    workspace = await workspaces.get(db, workspace_id)
    name = str(workspace["name"]) if workspace else workspace_id
    owners = [
        str(m["user_id"])
        for m in await memberships.of_workspace(db, workspace_id)
        if m.get("role") == Role.OWNER.value
    ]
    try:
        target = ssrf.parse_target(str(webhook["url"]))
        where = f"{target.scheme}://{target.host}"  # never the path: it may hold a token
    except ValueError:
        where = "its configured URL"
    link = (
        f"{settings.public_url.rstrip('/')}/api/v1/workspaces/{workspace_id}/webhooks/"
        f"{webhook['_id']}"
        if settings.public_url
        else f"/api/v1/workspaces/{workspace_id}/webhooks/{webhook['_id']}"
    )
    for person in (await users.many(db, owners)).values():
        await queue_mail(
            db,
            to=str(person["email"]),
            subject=f"Planboard webhook disabled in {name}",
            text=(
                f"Hello {person.get('name', '')},\n\n"
                f"The webhook {webhook['_id']} of the workspace {name} (target {where}) "
                f"was {reason}.\n\n"
                f"No further events are sent to it. Fix the receiver, then re-enable it with "
                f'PATCH {link} {{"active": true}}; the delivery log '
                f"({link}/deliveries) shows each attempt.\n"
            ),
            kind="webhook_disabled",
            key=workspace_id,
            workspace_id=workspace_id,
        )


async def purge_old_deliveries(db: AsyncDatabase[Document], options: WebhookOptions) -> int:
    return await store.purge_settled(db, utcnow() - timedelta(days=options.retention_days))


# --- reads for the API (the delivery log) ------------------------------------------------

PENDING = store.PENDING
DELIVERY_STATES = store.DELIVERY_STATES


async def webhooks_page(
    db: AsyncDatabase[Document], access: Access, *, after: Position | None, limit: int
) -> tuple[list[Document], bool]:
    """The workspace's webhooks, oldest first, and whether more follow."""
    return await store.page(db, access.workspace_id, after=after, limit=limit)


async def deliveries_page(
    db: AsyncDatabase[Document],
    webhook: Document,
    *,
    after: Position | None,
    limit: int,
    status: str | None,
    event_type: str | None,
) -> tuple[list[Document], bool]:
    """The webhook's deliveries, newest first, and whether more follow."""
    return await store.deliveries_page(
        db, str(webhook["_id"]), after=after, limit=limit, status=status, event_type=event_type
    )


async def delivery_of(db: AsyncDatabase[Document], webhook: Document, delivery_id: str) -> Document:
    delivery = await store.get_delivery(db, str(webhook["_id"]), delivery_id)
    if delivery is None:
        raise NotFound("delivery not found")
    return delivery
