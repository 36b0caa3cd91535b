"""The ``webhooks`` group: fans events out to webhooks and delivers them.

Two halves in one process:

- the **consumer handler** (``WebhookWorker.handle_batch``, the batch handler
  ``ConsumerRunner`` calls once per poll) only writes delivery records — one per
  (active matching webhook, event), unique on ``webhook id + event id``, all of a poll
  in one unordered insert. As many as the delivery loop has free slots for are
  inserted already claimed by this process (status ``delivering``, a lease) and their
  attempts start at once; the others are pending and the loop is woken to claim them.
  The workspaces' active webhooks come from a cache kept fresh by a Redis generation
  (services/webhook_subscriptions.py). It never waits on a receiver, so a slow
  receiver cannot stall the Kafka consumer.
- the **delivery loop** (``WebhookWorker.run``) claims due deliveries from MongoDB
  in bulk (one conditional ``update_many`` stamping a claim token, with a lease),
  sends them (at most ``concurrency`` at a time, over kept-alive connections), and
  records the outcome: delivered (many at once, one bulk write), a retry at
  ``next_attempt_at`` (exponential backoff with jitter), or failed. Retries live in
  MongoDB, so they survive restarts, and any replica may pick them up; the claim
  makes sure only one of them sends a given attempt.

Sending: ``POST`` of the stored body (the event envelope) with
``X-Planboard-Event``, ``X-Planboard-Delivery`` and ``X-Planboard-Signature``
(HMAC-SHA256 of those exact bytes with the webhook's secret), connect/total
timeouts, no redirects, a capped response read. The HTTP client connects only to
addresses that ``GuardedResolver`` resolved **and** checked (services/ssrf.py), so
a DNS answer cannot change between the check and the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError
from redis.asyncio import Redis

from planboard import __version__
from planboard.config import Settings
from planboard.events.consumer import ConsumerGroup
from planboard.events.envelope import Event
from planboard.services import ssrf
from planboard.services import webhooks as service
from planboard.services.webhook_subscriptions import SubscriptionCache, bump_quietly
from planboard.store import webhooks as store
from planboard.store.document import Document
from planboard.store.ids import new_id, utcnow

log = logging.getLogger(__name__)

USER_AGENT = f"Planboard-Webhooks/{__version__}"
DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
PURGE_EVERY_S = 3600.0


class WebhookMetrics:
    """Delivery metrics on a registry of their own (the worker process exports it)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.attempts = Counter(
            "planboard_webhook_attempts_total",
            "Webhook delivery attempts by outcome (success, http_error, redirect, timeout, "
            "connection_error, refused).",
            ("outcome",),
            registry=self.registry,
        )
        self.deliveries = Counter(
            "planboard_webhook_deliveries_total",
            "Webhook deliveries settled, by final status (delivered, failed, cancelled).",
            ("status",),
            registry=self.registry,
        )
        self.created = Counter(
            "planboard_webhook_deliveries_queued_total",
            "Webhook deliveries created from events.",
            registry=self.registry,
        )
        self.duration = Histogram(
            "planboard_webhook_attempt_duration_seconds",
            "Time from sending a webhook request to its response (or failure).",
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "planboard_webhook_attempts_in_flight",
            "Webhook requests being sent.",
            registry=self.registry,
        )
        self.disabled = Counter(
            "planboard_webhooks_auto_disabled_total",
            "Webhooks disabled after repeated failed deliveries.",
            registry=self.registry,
        )


# The metrics of this process's webhook workers, for the worker runner to serve.
PROCESS_METRICS = WebhookMetrics()


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that returns only addresses the SSRF policy allows.

    The connector connects to exactly what this returns (``use_dns_cache=False``:
    a fresh, checked lookup per connection). IP-literal hosts never reach a
    resolver, so the sender checks those itself (``ssrf.check_literal``).
    """

    def __init__(self, *, allow_private: bool) -> None:
        self.allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await ssrf.resolve_checked(
            host, port, allow_private=self.allow_private, family=family
        )
        return [
            {
                "hostname": host,
                "host": str(address),
                "port": port,
                "family": int(address_family),
                "proto": 0,
                "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            }
            for address_family, address in found
        ]

    async def close(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class AttemptResult:
    outcome: str  # success | http_error | redirect | timeout | connection_error | refused
    status: int | None
    body: str
    error: str
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.outcome == "success"


async def _read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await response.content.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


class WebhookWorker:
    """The consumer handler and the delivery loop of one worker process."""

    def __init__(
        self,
        settings: Settings,
        db: AsyncDatabase[Document],
        *,
        options: service.WebhookOptions | None = None,
        metrics: WebhookMetrics | None = None,
        group_name: str = "webhooks",
        redis: Redis | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.redis = redis
        self.options = options or service.WebhookOptions()
        self.metrics = metrics or PROCESS_METRICS
        self.group_name = group_name
        self.subscriptions = SubscriptionCache(redis, ttl_s=self.options.subscription_ttl_s)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.attempts = 0  # requests sent by this worker
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._background: asyncio.Task[None] | None = None
        self._last_purge = float("-inf")
        self._stale_checked = float("-inf")
        self._saturated = False
        # outcomes of successful attempts, written together (``_settle_delivered``)
        self._delivered: list[tuple[Document, Document, Document]] = []
        self._settling: asyncio.Task[None] | None = None
        self.autostart = False  # (re)start the delivery loop from the consumer handler

    # --- the consumer half --------------------------------------------------------------

    def group(self) -> ConsumerGroup:
        return ConsumerGroup(
            name=self.group_name,
            families=service.FAMILIES,
            handle=self.handle,
            handle_batch=self.handle_batch,
            markers=False,  # one delivery per webhook and event: unique dedupe_key
        )

    async def handle(self, event: Event) -> None:
        """One event's deliveries (the runner's fallback after a failed batch)."""
        await self.handle_batch([event])

    async def handle_batch(self, events: Sequence[Event]) -> None:
        """Record the events' deliveries (idempotent); as many as the delivery loop has free
        slots for are created claimed and sent at once, the loop claims the others."""
        hand_off = None
        free = self.options.concurrency - len(self._in_flight)
        if self._session is not None and not self.stopping and free > 0:
            hand_off = service.HandOff(self.owner, new_id(), self.options.lease_s, free)
        created = await service.fan_out_many(
            self.db, events, self.options, self.subscriptions, hand_off=hand_off
        )
        if created:
            self.metrics.created.inc(len(created))
            waiting = 0
            for delivery, webhook in created:
                if hand_off is not None and delivery.get("claim") == hand_off.token:
                    self._launch(delivery, webhook)
                else:
                    waiting += 1
            self._saturated = len(self._in_flight) >= self.options.concurrency
            if waiting:
                self._wake.set()
        dead = self._background is None or self._background.done()
        if self.autostart and dead and not self.stopping:
            self._restart_background()

    # --- the delivery loop --------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def start_background(self) -> asyncio.Task[None]:
        """Run the delivery loop as a task of the current event loop (the worker process)."""
        if self._background is None or self._background.done():
            self._background = asyncio.get_running_loop().create_task(
                self.run(), name=f"{self.group_name}-delivery-loop"
            )
        return self._background

    def _restart_background(self) -> None:
        previous = self._background
        if previous is not None and not previous.cancelled() and previous.exception():
            log.error("webhook delivery loop died; restarting", exc_info=previous.exception())
        self.start_background()

    def _client(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            resolver=GuardedResolver(allow_private=self.settings.allow_private_webhooks),
            use_dns_cache=False,
            limit=self.options.concurrency,
            limit_per_host=min(self.options.concurrency, self.options.connections_per_host),
        )
        return aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(
                total=self.options.total_timeout_s, connect=self.options.connect_timeout_s
            ),
            auto_decompress=False,
            trust_env=False,  # never through an environment proxy
            cookie_jar=aiohttp.DummyCookieJar(),
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
        )

    @contextlib.asynccontextmanager
    async def http(self) -> AsyncIterator[aiohttp.ClientSession]:
        """The guarded HTTP client ``send()`` uses (``run()`` opens it)."""
        async with self._client() as session:
            self._session = session
            try:
                yield session
            finally:
                self._session = None

    async def run(self) -> None:
        """Deliver due deliveries until ``stop()``; in-flight attempts finish first."""
        backoff = 0.5
        async with self.http():
            try:
                while not self.stopping:
                    self._wake.clear()
                    free = self.options.concurrency - len(self._in_flight)
                    try:
                        claimed = await self._claim(free) if free > 0 else []
                        await self._purge_now_and_then()
                    except PyMongoError as exc:
                        log.warning("webhook delivery loop: MongoDB error (%s)", exc)
                        await self._pause(backoff)
                        backoff = min(backoff * 2, 10.0)
                        continue
                    backoff = 0.5
                    for delivery, webhook in claimed:
                        self._launch(delivery, webhook)
                    self._saturated = len(self._in_flight) >= self.options.concurrency
                    if len(claimed) < free or self._saturated:
                        await self._pause(self.options.poll_interval_s)
            finally:
                if self._in_flight:
                    await asyncio.wait(
                        set(self._in_flight), timeout=self.options.total_timeout_s + 2
                    )
                if self._settling is not None and not self._settling.done():
                    await asyncio.wait({self._settling}, timeout=self.options.total_timeout_s)

    def _launch(self, delivery: Document, webhook: Document | None) -> None:
        task = asyncio.get_running_loop().create_task(self._attempt(delivery, webhook))
        self._in_flight.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        # enough slots free again to be worth a claim: look for more due work
        refill = max(1, self.options.concurrency // 4)
        if self._saturated and self.options.concurrency - len(self._in_flight) >= refill:
            self._saturated = False
            self._wake.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("webhook attempt crashed", exc_info=task.exception())

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _claim(self, free: int) -> list[tuple[Document, Document | None]]:
        """Claim up to ``free`` due deliveries; each with its webhook (None: deleted)."""
        now = utcnow()
        loop_now = asyncio.get_running_loop().time()
        stale = loop_now - self._stale_checked >= min(self.options.lease_s / 4, 5.0)
        if stale:
            self._stale_checked = loop_now
        claimed = await store.claim_due(
            self.db,
            limit=free,
            owner=self.owner,
            token=new_id(),
            now=now,
            lease_until=now + timedelta(seconds=self.options.lease_s),
            stale_leases=stale,
        )
        if not claimed:
            return []
        hooks = await store.many(self.db, sorted({str(d["webhook_id"]) for d in claimed}))
        return [(d, hooks.get(str(d["webhook_id"]))) for d in claimed]

    async def _purge_now_and_then(self) -> None:
        now = asyncio.get_running_loop().time()
        if now - self._last_purge >= PURGE_EVERY_S:
            self._last_purge = now
            purged = await service.purge_old_deliveries(self.db, self.options)
            if purged:
                log.info("purged %d old webhook deliveries", purged)

    # --- one attempt ------------------------------------------------------------------------

    async def _attempt(self, delivery: Document, webhook: Document | None) -> None:
        token = str(delivery["claim"])
        delivery_id = str(delivery["_id"])
        sent = False
        try:
            if webhook is None or (not webhook.get("active") and not delivery.get("manual")):
                reason = "the webhook was deleted" if webhook is None else "the webhook is disabled"
                await self._settle(delivery, store.CANCELLED, error=reason)
                return
            sent = True
            result = await self.send(webhook, delivery)
            await self._record(webhook, delivery, result)
        except asyncio.CancelledError:
            if not sent:  # shutting down before the request: give the claim back
                with contextlib.suppress(Exception):
                    await asyncio.shield(store.release(self.db, delivery_id, token, utcnow()))
            raise

    async def send(self, webhook: Document, delivery: Document) -> AttemptResult:
        """One HTTP attempt; never raises for receiver-side failures."""
        session = self._session
        assert session is not None, "send() runs inside run() or http()"
        body = str(delivery["body"]).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Planboard-Event": str(delivery["event_type"]),
            "X-Planboard-Delivery": str(delivery["_id"]),
            "X-Planboard-Signature": service.signature(str(webhook["secret"]), body),
        }
        loop = asyncio.get_running_loop()
        started = loop.time()
        self.attempts += 1
        self.metrics.in_flight.inc()
        try:
            target = ssrf.parse_target(str(webhook["url"]))
            ssrf.check_literal(target, allow_private=self.settings.allow_private_webhooks)
            async with session.post(
                target.url, data=body, headers=headers, allow_redirects=False
            ) as response:
                raw = await _read_capped(response, self.options.max_response_bytes)
                status = response.status
                location = response.headers.get("Location", "")
            text = raw.decode("utf-8", errors="replace")
            if 200 <= status < 300:
                return self._result("success", started, status=status, body=text)
            if 300 <= status < 400:
                error = f"HTTP {status}: redirect not followed (Location: {location[:200]})"
                return self._result("redirect", started, status=status, body=text, error=error)
            return self._result(
                "http_error", started, status=status, body=text, error=f"HTTP {status}"
            )
        except (ValueError, ssrf.TargetRefused) as exc:
            return self._result("refused", started, error=str(exc))
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, ssrf.TargetRefused):
                return self._result("refused", started, error=str(exc.os_error))
            return self._result("connection_error", started, error=f"cannot connect: {exc}")
        except TimeoutError:
            error = f"no response within {self.options.total_timeout_s:g}s"
            return self._result("timeout", started, error=error)
        except (aiohttp.ClientError, OSError) as exc:
            return self._result("connection_error", started, error=f"{type(exc).__name__}: {exc}")
        finally:
            self.metrics.in_flight.dec()

    def _result(
        self,
        outcome: str,
        started: float,
        *,
        status: int | None = None,
        body: str = "",
        error: str = "",
    ) -> AttemptResult:
        duration = asyncio.get_running_loop().time() - started
        self.metrics.attempts.labels(outcome).inc()
        self.metrics.duration.observe(duration)
        return AttemptResult(outcome, status, service.truncate(body), error[:1000], duration)

    async def _record(self, webhook: Document, delivery: Document, result: AttemptResult) -> None:
        attempts = service.as_int(delivery["attempts"])
        details: dict[str, Any] = {
            "response_status": result.status,
            "response_body": result.body,
            "duration_ms": round(result.duration_s * 1000, 1),
            "error": result.error,
            "outcome": result.outcome,
        }
        if result.ok:
            now = utcnow()
            self._settle_delivered(
                delivery,
                webhook,
                {"status": store.DELIVERED, "updated_at": now, "delivered_at": now, **details},
            )
            return
        if attempts < service.as_int(delivery.get("max_attempts"), 1):
            delay = self.options.retry_delay(attempts)
            next_at = utcnow() + timedelta(seconds=delay)
            await self._settle(
                delivery,
                store.PENDING,
                next_attempt_at=next_at,
                next_attempt_ms=store.epoch_ms(next_at),
                **details,
            )
            log.info(
                "webhook delivery failed; retrying",
                extra={
                    "delivery_id": delivery["_id"],
                    "webhook_id": webhook["_id"],
                    "attempt": attempts,
                    "retry_in_s": round(delay, 2),
                    "error": result.error,
                },
            )
            return
        settled = await self._settle(delivery, store.FAILED, **details)
        log.warning(
            "webhook delivery failed for good",
            extra={
                "delivery_id": delivery["_id"],
                "webhook_id": webhook["_id"],
                "attempts": attempts,
                "error": result.error,
            },
        )
        if settled and not delivery.get("manual"):
            # the next success to it (from this copy too) must reset the failure count
            webhook["last_delivery_status"] = store.FAILED
        if settled and await service.delivery_failed(
            self.db, self.settings, {**delivery, **details}, self.options
        ):
            self.metrics.disabled.inc()
            log.warning("webhook auto-disabled", extra={"webhook_id": webhook["_id"]})
            if self.redis is not None:
                await bump_quietly(self.redis, [str(webhook["workspace_id"])])

    def _settle_delivered(self, delivery: Document, webhook: Document, values: Document) -> None:
        """Queue a successful attempt's outcome; a flush writes all queued ones together."""
        self._delivered.append((delivery, webhook, values))
        if self._settling is None or self._settling.done():
            self._settling = asyncio.get_running_loop().create_task(self._flush_delivered())

    async def _flush_delivered(self) -> None:
        """Write queued outcomes in bulk until none is left (group commit)."""
        backoff = 0.5
        while self._delivered:
            await asyncio.sleep(0)  # attempts finishing in this turn of the loop join in
            batch, self._delivered = self._delivered, []
            try:
                written = await store.settle_many(
                    self.db, [(str(d["_id"]), str(d["claim"]), v) for d, _, v in batch]
                )
                self.metrics.deliveries.labels(store.DELIVERED).inc(written)
                noted: set[str] = set()  # one success note per webhook and flush
                for delivery, webhook, _ in batch:
                    if delivery.get("manual") or str(delivery["webhook_id"]) in noted:
                        continue
                    noted.add(str(delivery["webhook_id"]))
                    await service.delivery_succeeded(self.db, delivery, webhook)
            except PyMongoError as exc:
                # kept until written: the claims hold for the lease, so the writes still apply
                log.warning("webhook delivery outcomes not written (%s); retrying", exc)
                self._delivered[:0] = batch
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                if self.stopping and backoff >= 5.0:
                    return  # the leases expire and the deliveries are attempted again
            else:
                backoff = 0.5

    async def _settle(self, delivery: Document, status: str, **values: Any) -> bool:
        now = utcnow()
        settled = await store.settle(
            self.db,
            str(delivery["_id"]),
            str(delivery["claim"]),
            {"status": status, "updated_at": now, **values},
        )
        if settled and status in store.SETTLED_STATES:
            self.metrics.deliveries.labels(status).inc()
        return settled


def webhooks_group(
    settings: Settings,
    db: AsyncDatabase[Document],
    *,
    options: service.WebhookOptions | None = None,
    metrics: WebhookMetrics | None = None,
    redis: Redis | None = None,
) -> ConsumerGroup:
    """The group for ``planboard worker --group webhooks``: consumer + delivery loop.

    ``metrics`` defaults to ``PROCESS_METRICS`` (its own registry); a runner that
    serves one registry per process can pass ``WebhookMetrics(its_registry)``.

    The delivery loop starts as a task of the worker's event loop (the factory is
    called inside it; failing that, at the first event) and is restarted by the
    consumer handler should it ever die.
    """
    worker = WebhookWorker(
        settings,
        db,
        options=options or service.WebhookOptions.from_settings(settings),
        metrics=metrics,
        redis=redis,
    )
    worker.autostart = True
    with contextlib.suppress(RuntimeError):  # no running loop yet
        worker.start_background()
    return worker.group()
