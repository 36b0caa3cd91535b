"""Settings from the environment, in one typed place.

Every process (API, relay, workers, CLI) reads its settings here: ``Settings.from_env()``
reads the ``PLANBOARD_*`` variables (pydantic-settings), ``Settings(...)`` builds them from
values (tests). The settings are declared in groups, one class per concern (HTTP, MongoDB,
Kafka, Redis, auth, rate limits, cache, mail, webhooks, attachments, ...), and composed
into the one ``Settings`` every process receives, whose attributes keep the variables'
names (``PLANBOARD_MONGODB_URI`` is ``settings.mongodb_uri``). docs/configuration.md is
generated from these classes (``planboard config --markdown``; a test fails on drift).

Outside development and test, default secrets are refused so a forgotten variable can
never ship a known signing key. A bad value raises ``SettingsError`` naming the variable.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    field_validator,
)
from pydantic.config import JsonDict
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

Environment = Literal["development", "test", "production"]

DEV_SECRET_KEY = "dev-insecure-secret-key-change-me-0123456789"  # noqa: S105 - the refused default
#: Every dependency /readyz checks and reports (and planboard_dependency_up labels).
DEPENDENCIES = ("mongodb", "kafka", "redis")
#: Those that gate readiness by default: only what the API cannot serve without. Writes go
#: to the MongoDB outbox (Kafka is not on the request path) and every Redis use fails open,
#: so a Kafka or Redis outage must not take every API pod out of its Service.
READY_CHECKS = ("mongodb",)
ATTACHMENT_STORAGES = ("gridfs", "s3")
TRANSACTION_MODES = ("auto", "on", "off")
MIB = 1024 * 1024
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
PREFIX = "PLANBOARD_"


class SettingsError(ValueError):
    """The environment holds an invalid or unsafe setting."""


def var(name: str) -> str:
    """The environment variable of the setting ``name``."""
    return PREFIX + name.upper()


# --------------------------------------------------------------------------- value types


@dataclass(frozen=True, slots=True)
class RateLimit:
    """``limit`` requests per sliding ``window_s`` seconds; written ``100/15m``."""

    limit: int
    window_s: int

    @classmethod
    def parse(cls, name: str, raw: str) -> RateLimit:
        units = {"s": 1, "m": 60, "h": 3600}
        try:
            count, window = raw.strip().split("/")
            unit = window[-1] if window[-1] in units else "s"
            number = window[:-1] if window[-1] in units else window
            limit, seconds = int(count), int(number or "1") * units[unit]
        except (ValueError, IndexError):
            raise SettingsError(
                f"{name} must look like 100/15m (requests/window), got {raw!r}"
            ) from None
        if not (1 <= limit <= 1_000_000 and 1 <= seconds <= 86_400):
            raise SettingsError(f"{name}: 1..1000000 requests per 1s..24h, got {raw!r}")
        return cls(limit, seconds)

    def __str__(self) -> str:
        return f"{self.limit}/{self.window_s}s"


def usable_cpus() -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup v2 CPU quota
    (a container's CPU limit), at least 1."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


class _Refused(ValueError):
    """A value a validator refused, with the whole message (variable name included)."""


def _bool(raw: object) -> object:
    if not isinstance(raw, str):
        return raw
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise _Refused("must be a boolean (true/false), got " + repr(raw))


def _choice(raw: object, choices: tuple[str, ...], normalise: Callable[[str], str]) -> object:
    """A string setting that must be one of ``choices`` once ``normalise``d (its case)."""
    if isinstance(raw, str):
        if normalise(raw) not in choices:
            raise _Refused(f"must be one of {choices}, got {raw!r}")
        return normalise(raw)
    return raw


def _csv(raw: object) -> object:
    if isinstance(raw, str):
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    return raw


def _rate_limit(raw: object, info: Any) -> RateLimit:
    if isinstance(raw, RateLimit):
        return raw
    if not isinstance(raw, str):
        raise _Refused(f"must look like 100/15m (requests/window), got {raw!r}")
    return RateLimit.parse(var(info.field_name), raw)


Bool = Annotated[bool, BeforeValidator(_bool)]
Csv = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_csv)]
Limit = Annotated[RateLimit, NoDecode, PlainValidator(_rate_limit)]


def _field(default: Any, text: str, *, shown: str | None = None, **constraints: Any) -> Any:
    """A setting: its default, its line in docs/configuration.md (``shown``: the default
    as written there, when not the value itself) and its bounds."""
    extra: JsonDict | None = {"shown": shown} if shown is not None else None
    return Field(default, description=text, json_schema_extra=extra, **constraints)


# --------------------------------------------------------------------------- groups


class _Group(BaseModel):
    model_config = ConfigDict(frozen=True)


class ProcessSettings(_Group):
    """What every process is, how it logs, how long it waits on dependencies and stops."""

    model_config = ConfigDict(frozen=True, title="Process")

    env: Environment = _field(
        "development",
        "`development`, `test` or `production`; outside development/test the default "
        "secret is refused",
    )
    log_level: str = _field("INFO", "`DEBUG` … `CRITICAL` (`DEBUG` also shows CLI tracebacks)")
    log_json: Bool = _field(
        True, "JSON lines (one object per line, with `request_id`); `false` for text"
    )
    metrics_port: int = _field(
        0,
        "port of the relay's and workers' own `/metrics` and `/healthz` (the API serves "
        "`/metrics` on its HTTP port); the chart's ServiceMonitor scrapes it when set in "
        "`stack.config.extra`",
        shown="`0` (off)",
        ge=0,
        le=65535,
    )
    dependency_timeout_s: float = _field(
        2.0, "per-check and connect timeout, seconds", gt=0, le=600
    )
    shutdown_delay_s: float = _field(
        3.0,
        "after SIGTERM, how long `/readyz` answers 503 while the API still serves, before "
        "the listener closes (0-600; `planboard dev` sets `0`). The operator sets the pods' "
        "`terminationGracePeriodSeconds` to delay + timeout + 2 s, at least 30, from "
        "`spec.config.extra`; anywhere else keep delay + timeout below the grace period",
        ge=0,
        le=600,
    )
    shutdown_timeout_s: float = _field(
        25.0,
        "how long in-flight requests may finish after the listener closed",
        gt=0,
        le=600,
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level(cls, raw: object) -> object:
        return _choice(raw, LOG_LEVELS, str.upper)


class HttpSettings(_Group):
    """Where and how the API listens, and what it trusts of the requests it gets."""

    model_config = ConfigDict(frozen=True, title="HTTP")

    host: str = _field("127.0.0.1", "address the API listens on")
    port: int = _field(8080, "port the API listens on", ge=0, le=65535)
    api_processes: int = _field(
        1,
        "`planboard serve` processes sharing the port (`SO_REUSEPORT`), 1-64 or `auto` (one "
        "per usable core: affinity mask capped by the cgroup CPU quota); see operations.md, "
        '"Scaling past one machine"',
        ge=1,
        le=64,
    )
    public_url: str = _field(
        "",
        "the externally visible base URL (links in mail, prefix of signed attachment URLs)",
        shown="empty",
    )
    access_log: Bool = _field(
        True,
        "one access-log line per request (off in production by default: the request "
        "metrics and traces carry the same facts)",
        shown="`true`; `false` when `PLANBOARD_ENV=production`",
    )
    cors_origins: Csv = _field((), "comma-separated allowed origins", shown="empty")
    trust_forwarded_for: Bool = _field(
        False,
        "take the client IP (per-IP rate limits, a session's recorded address) from "
        "`X-Forwarded-For`, as written by `PLANBOARD_TRUSTED_PROXY_HOPS` trusted proxies; "
        'only behind proxies that every request passes (docs/security.md, "Client IP and '
        '`X-Forwarded-For`")',
    )
    trusted_proxy_hops: int = _field(
        1,
        "how many proxies in front of the API append to `X-Forwarded-For` (1-16): the "
        "client IP is that many entries from the right, so entries a client wrote itself "
        "are never read; set without `PLANBOARD_TRUST_FORWARDED_FOR=true` it is refused",
        ge=1,
        le=16,
    )
    ready_checks: Csv = _field(
        READY_CHECKS,
        "dependencies that must be up for `/readyz` to answer 200 (all three are always "
        "checked and reported; the others that are down are listed in `degraded`). Kafka "
        "and Redis are left out by default because the API serves through their outages "
        '(docs/operations.md, "Probes")',
        shown="`mongodb`",
    )

    @field_validator("api_processes", mode="before")
    @classmethod
    def _processes(cls, raw: object) -> object:
        if isinstance(raw, str) and raw.strip().lower() == "auto":
            return usable_cpus()
        return raw

    @field_validator("ready_checks")
    @classmethod
    def _known_checks(cls, checks: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(checks) - set(DEPENDENCIES))
        if unknown:
            raise _Refused(f": unknown check(s) {unknown}; known: {DEPENDENCIES}")
        return checks


class MongoSettings(_Group):
    """The MongoDB deployment: state, outbox, leases and GridFS attachments."""

    model_config = ConfigDict(frozen=True, title="MongoDB")

    mongodb_uri: str = _field("mongodb://127.0.0.1:27017/", "MongoDB connection string")
    mongodb_db: str = _field("planboard", "database name")
    mongodb_transactions: Literal["auto", "on", "off"] = _field(
        "auto",
        "`auto` (use transactions on a replica set / mongos), `on`, `off` "
        "(store/tx.py: a write unit is a transaction where the server supports one)",
    )

    @field_validator("mongodb_transactions", mode="before")
    @classmethod
    def _mode(cls, raw: object) -> object:
        return _choice(raw, TRANSACTION_MODES, str.lower)


class KafkaSettings(_Group):
    """The Kafka cluster the relay publishes to and the workers consume from."""

    model_config = ConfigDict(frozen=True, title="Kafka")

    kafka_bootstrap: str = _field("127.0.0.1:9092", "Kafka bootstrap servers")
    kafka_topic_prefix: str = _field("planboard.", "prefix of the per-family topics")
    kafka_partitions: int = _field(6, "partitions of topics the relay creates", ge=1, le=1000)
    kafka_replication_factor: int = _field(
        1,
        "replication factor of topics the relay creates (use 3 in production)",
        ge=1,
        le=7,
    )


class EventSettings(_Group):
    """The event pipeline (docs/architecture.md, "Events"): relay batches and idle polling,
    consumer batches, Kafka fetch wait and the partition keys handled at once."""

    model_config = ConfigDict(frozen=True, title="Event pipeline")

    relay_batch_size: int = _field(
        500,
        "outbox events the relay reads, publishes and deletes per batch (1-10,000)",
        ge=1,
        le=10_000,
    )
    outbox_keep_published: bool = _field(
        False,
        "keep published events in the outbox, marked, until the scheduler's cleanup removes "
        "them three days later (a record of what was published, in MongoDB; each event is "
        "then rewritten once more); false deletes them once Kafka has acknowledged them "
        "(Kafka keeps the history)",
    )
    relay_poll_max_ms: int = _field(
        100,
        "the longest wait between two polls of an empty outbox (the relay polls again at "
        "once after a full batch, 10 ms after a partial one, and doubles the wait while the "
        "outbox stays empty); bounds the relay's share of an idle system's write-to-event "
        "latency",
        ge=1,
        le=60_000,
    )
    consumer_batch_size: int = _field(
        500,
        "records a worker group takes per Kafka poll and handles as one batch "
        '(docs/architecture.md, "The consumer runner")',
        ge=1,
        le=10_000,
    )
    consumer_concurrency: int = _field(
        16,
        "partition keys (projects, workspaces) a group's per-event handler runs at once; one "
        "key's events always run one at a time, in order (the jobs group runs 1, "
        "attachments 2)",
        ge=1,
        le=1000,
    )
    consumer_fetch_wait_ms: int = _field(
        500,
        "Kafka `fetch_max_wait_ms` of the groups' main consumers. The broker answers a "
        "waiting fetch as soon as a record arrives, so this sets only how often an idle "
        "consumer asks (measured: the same 10-20 ms delivery latency at 20, 100 and 500 ms; "
        "5-8 % client CPU at 20 ms against 1-1.5 % at 500)",
        ge=0,
        le=10_000,
    )


class RedisSettings(_Group):
    """Redis: the read-through cache, rate limits, near-cache invalidations."""

    model_config = ConfigDict(frozen=True, title="Redis")

    redis_url: str = _field("redis://127.0.0.1:6379/0", "Redis URL")


class CacheSettings(_Group):
    """The read-through cache of hot reads and its process-local tier."""

    model_config = ConfigDict(frozen=True, title="Cache")

    cache_enabled: Bool = _field(
        True,
        "the Redis read-through cache of hot reads (a task by id, a project, its progress, "
        "pages of its task list) and the cache of search answers; `false` reads MongoDB every "
        "time (for comparison and debugging; Redis is still used for rate limits)",
    )
    near_cache_mb: int = _field(
        64,
        "memory for the near cache: the process-local tier in front of Redis for cached "
        "reads, live sessions and memberships, kept correct by invalidations over Redis "
        'pub/sub (docs/architecture.md, "The near cache"); `0` turns it off (so does '
        "`PLANBOARD_CACHE_ENABLED=false`): then every authenticated request reads its session "
        "and user from MongoDB",
        ge=0,
        le=16 * 1024,
    )
    near_cache_ttl_s: int = _field(
        5,
        "the longest a near-cache entry is served (1-300): the bound on staleness for a "
        "process partitioned from Redis before its pings tell it so",
        ge=1,
        le=300,
    )


class AuthSettings(_Group):
    """Signing keys, token lifetimes and the password rule (docs/security.md)."""

    model_config = ConfigDict(frozen=True, title="Auth")

    secret_key: str = _field(
        DEV_SECRET_KEY,
        "signing key (tokens, cursors, signed URLs); at least 32 characters, required in "
        "production",
        shown="a development default",
    )
    previous_secret_keys: Csv = _field(
        (),
        "comma-separated earlier signing keys: tokens they signed still verify until they "
        "expire (key rotation, docs/security.md)",
        shown="empty",
    )
    jwt_issuer: str = _field("planboard", "`iss` of the access tokens (checked on verification)")
    jwt_audience: str = _field(
        "planboard-api", "`aud` of the access tokens (checked on verification)"
    )
    access_token_ttl_s: int = _field(
        15 * 60, "life of an access token, seconds (30 s … 24 h)", ge=30, le=24 * 3600
    )
    refresh_token_ttl_s: int = _field(
        7 * 24 * 3600,
        "life of a refresh token (and of its session), seconds (300 s … 365 days)",
        ge=300,
        le=365 * 24 * 3600,
    )
    reset_token_ttl_s: int = _field(
        3600, "life of a password-reset link, seconds (60 s … 7 days)", ge=60, le=7 * 24 * 3600
    )
    verify_token_ttl_s: int = _field(
        48 * 3600,
        "life of an e-mail verification link, seconds (60 s … 30 days)",
        ge=60,
        le=30 * 24 * 3600,
    )
    invitation_ttl_s: int = _field(
        7 * 24 * 3600,
        "life of a workspace invitation, seconds (60 s … 90 days)",
        ge=60,
        le=90 * 24 * 3600,
    )
    password_min_length: int = _field(
        10, "shortest password accepted (8-128; docs/security.md)", ge=8, le=128
    )


class RateLimitSettings(_Group):
    """Sliding-window request limits (docs/security.md, "Rate limits")."""

    model_config = ConfigDict(frozen=True, title="Rate limits")

    rate_limit_enabled: Bool = _field(
        True, "`false` switches every limit off (no Redis round trip per request)"
    )
    rate_limit_auth: Limit = _field(
        RateLimit(100, 15 * 60),
        "requests per client IP to `/api/v1/auth/…`, written `count/window` (`s`, `m`, `h`)",
        shown="`100/15m`",
    )
    rate_limit_api: Limit = _field(
        RateLimit(1200, 60),
        "requests per user, token or anonymous IP to every other `/api/v1/…` path",
        shown="`1200/1m`",
    )


class MailSettings(_Group):
    """Outgoing mail (invitations, resets, notifications)."""

    model_config = ConfigDict(frozen=True, title="Mail")

    smtp_host: str = _field("127.0.0.1", "SMTP server host")
    smtp_port: int = _field(1025, "SMTP server port", ge=1, le=65535)
    mail_from: str = _field("Planboard <no-reply@planboard.local>", "sender address")


class WebhookSettings(_Group):
    """Outgoing webhooks: targets allowed and delivery tuning (docs/webhooks.md)."""

    model_config = ConfigDict(frozen=True, title="Webhooks")

    allow_private_webhooks: Bool = _field(
        False, "allow loopback/private webhook targets (`planboard dev` sets `true`)"
    )
    webhook_retry_delays_s: Annotated[tuple[float, ...], NoDecode] = _field(
        (30.0, 120.0, 600.0, 3600.0, 21600.0),
        "delays before each retry (seconds, comma-separated; at most 20 of 0…7 days)",
        shown="`30,120,600,3600,21600`",
    )
    webhook_disable_after: int = _field(
        10, "consecutive failed deliveries before auto-disable", gt=0
    )
    webhook_connect_timeout_s: float = _field(5.0, "connect timeout per attempt, seconds", gt=0)
    webhook_total_timeout_s: float = _field(10.0, "total timeout per attempt, seconds", gt=0)
    webhook_max_response_bytes: int = _field(65536, "answer bytes read", gt=0)
    webhook_concurrency: int = _field(32, "attempts in flight per worker", gt=0)
    webhook_connections_per_host: int = _field(
        8,
        "connections a worker opens to one receiver host at most (its attempts to that host "
        "beyond them wait for one); at most `PLANBOARD_WEBHOOK_CONCURRENCY`",
        gt=0,
    )
    webhook_poll_interval_s: float = _field(
        1.0, "how often due retries are looked for (new events wake the loop at once)", gt=0
    )
    webhook_lease_s: float = _field(60.0, "how long a claimed delivery is held", gt=0)
    webhook_retention_days: int = _field(30, "how long settled deliveries are kept", gt=0)
    webhook_subscription_ttl_s: float = _field(
        10.0,
        "the longest a worker serves a workspace's webhooks from its cache without reading "
        "them again (changes are seen at once through the Redis generation; this bounds "
        "staleness when a bump failed)",
        gt=0,
        le=3600,
    )

    @field_validator("webhook_retry_delays_s", mode="before")
    @classmethod
    def _delays(cls, raw: object) -> object:
        if not isinstance(raw, str):
            return raw
        try:
            delays = tuple(float(part) for part in raw.split(",") if part.strip())
        except ValueError:
            raise _Refused("must list seconds, e.g. 30,120,600") from None
        if len(delays) > 20 or any(not 0 <= d <= 7 * 86400 for d in delays):
            raise _Refused(": at most 20 delays of 0..7d")
        return delays


class AttachmentSettings(_Group):
    """Where attachment content goes and what is accepted (docs/api.md#attachments)."""

    model_config = ConfigDict(frozen=True, title="Attachments")

    attachment_storage: Literal["gridfs", "s3"] = _field(
        "gridfs", "`gridfs` (bucket `attachments` in the service's database) or `s3`"
    )
    attachment_max_bytes: int = _field(
        25 * MIB,
        "largest upload, 1 B … 5 GiB (413 above it)",
        shown="`26214400` (25 MiB)",
        ge=1,
        le=5 * 1024 * MIB,
    )
    attachment_max_pixels: int = _field(
        40_000_000,
        "largest image (width x height) accepted and thumbnailed (422 above it)",
        ge=1,
        le=1_000_000_000,
    )
    attachment_max_per_task: int = _field(
        100, "attachments one task may hold (409 beyond)", ge=1, le=100_000
    )
    attachment_url_ttl_s: int = _field(
        900, "life of a signed download URL, 10 s … 7 days", ge=10, le=7 * 24 * 3600
    )
    attachment_thumbnail_px: int = _field(
        256, "thumbnails fit in this many pixels square (16 … 2048)", ge=16, le=2048
    )
    attachment_s3_bucket: str = _field("", "the bucket; required with `s3`", shown="empty")
    attachment_s3_prefix: str = _field(
        "attachments/", "key prefix inside the bucket (relative, no `..`)"
    )
    attachment_s3_endpoint: str = _field(
        "",
        "endpoint of an S3-compatible service (MinIO, Ceph…); path-style buckets when set",
        shown="empty (`AWS_ENDPOINT_URL`, else AWS)",
    )
    attachment_s3_region: str = _field("", "region of the bucket", shown="empty (`AWS_REGION`)")

    @field_validator("attachment_storage", mode="before")
    @classmethod
    def _storage(cls, raw: object) -> object:
        if isinstance(raw, str) and raw not in ATTACHMENT_STORAGES:
            raise _Refused(f"must be one of {ATTACHMENT_STORAGES}, got {raw!r}")
        return raw


#: The groups in the order docs/configuration.md shows them.
GROUPS: tuple[type[_Group], ...] = (
    ProcessSettings,
    HttpSettings,
    MongoSettings,
    KafkaSettings,
    EventSettings,
    RedisSettings,
    CacheSettings,
    AuthSettings,
    RateLimitSettings,
    MailSettings,
    WebhookSettings,
    AttachmentSettings,
)


# --------------------------------------------------------------------------- reading


_environ: ContextVar[Mapping[str, str] | None] = ContextVar("planboard_environ", default=None)


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping (``from_env``'s)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._given = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {k.lower(): v for k, v in self._given.items() if k.startswith(PREFIX)}


class Settings(
    ProcessSettings,
    HttpSettings,
    MongoSettings,
    KafkaSettings,
    EventSettings,
    RedisSettings,
    CacheSettings,
    AuthSettings,
    RateLimitSettings,
    MailSettings,
    WebhookSettings,
    AttachmentSettings,
    BaseSettings,
):
    """All runtime settings: the groups above in one object. ``Settings.from_env()``
    reads the environment; ``Settings(...)`` takes values only (defaults for the rest)."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX, case_sensitive=False, frozen=True, extra="ignore"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        environ = _environ.get()
        if environ is None:
            return (init_settings,)
        return (init_settings, _MappingEnvSource(settings_cls, environ))

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read ``PLANBOARD_*`` variables; raise SettingsError naming the bad one."""
        env = dict(os.environ if environ is None else environ)
        token = _environ.set(env)
        try:
            settings = cls()
        except ValidationError as exc:
            raise _settings_error(exc, env) from None
        except SettingsError:
            raise
        finally:
            _environ.reset(token)
        if var("trusted_proxy_hops") in env and not settings.trust_forwarded_for:
            raise SettingsError(
                "PLANBOARD_TRUSTED_PROXY_HOPS has no effect without "
                "PLANBOARD_TRUST_FORWARDED_FOR=true"
            )
        if settings.env == "production" and var("access_log") not in env:
            # A JSON line per request costs CPU on every request and log volume; in
            # production the metrics (by route and status) and traces carry the same facts.
            # PLANBOARD_ACCESS_LOG=true turns it back on.
            settings = settings.model_copy(update={"access_log": False})
        settings.check()
        return settings

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` (as ``dataclasses.replace``; not validated)."""
        return self.model_copy(update=changes)

    def check(self) -> None:
        """Refuse unsafe combinations (default or weak secrets outside development)."""
        if self.env != "development" and self.env != "test":
            if self.secret_key == DEV_SECRET_KEY:
                raise SettingsError(
                    "PLANBOARD_SECRET_KEY is the development default; set a random secret "
                    "(at least 32 characters) in production"
                )
            if len(self.secret_key) < 32:
                raise SettingsError("PLANBOARD_SECRET_KEY must be at least 32 characters")
        if not self.mongodb_db or any(c in self.mongodb_db for c in '/\\. "$'):
            raise SettingsError(
                f"PLANBOARD_MONGODB_DB is not a valid database name: {self.mongodb_db!r}"
            )
        if self.attachment_storage == "s3" and not self.attachment_s3_bucket:
            raise SettingsError(
                "PLANBOARD_ATTACHMENT_STORAGE=s3 needs PLANBOARD_ATTACHMENT_S3_BUCKET"
            )
        if self.attachment_s3_prefix.startswith("/") or ".." in self.attachment_s3_prefix:
            raise SettingsError(
                "PLANBOARD_ATTACHMENT_S3_PREFIX must be a relative key prefix such as "
                f"attachments/, got {self.attachment_s3_prefix!r}"
            )

    def redacted(self) -> dict[str, object]:
        """Settings safe to log: secrets and credentials in URLs hidden."""
        out: dict[str, object] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name in ("secret_key", "previous_secret_keys"):
                value = "***"
            elif isinstance(value, str) and "://" in value and "@" in value:
                scheme, rest = value.split("://", 1)
                value = f"{scheme}://***@{rest.split('@', 1)[1]}"
            out[name] = value
        return out


def _settings_error(exc: ValidationError, env: Mapping[str, str]) -> SettingsError:
    """The first error of a validation as one line naming the variable."""
    error = exc.errors()[0]
    name = str(error["loc"][0]) if error["loc"] else ""
    variable = var(name)
    raw = env.get(variable)
    kind = error["type"]
    ctx = error.get("ctx") or {}
    cause = ctx.get("error")
    if isinstance(cause, SettingsError):
        return cause
    if isinstance(cause, _Refused):
        text = str(cause)
        return SettingsError(f"{variable}{'' if text.startswith(':') else ' '}{text}")
    field = Settings.model_fields.get(name)
    if kind == "int_parsing":
        return SettingsError(f"{variable} must be an integer, got {raw!r}")
    if kind in ("float_parsing", "float_type"):
        return SettingsError(f"{variable} must be a number")
    if kind == "literal_error":
        return SettingsError(f"{variable} must be one of {ctx.get('expected')}, got {raw!r}")
    if field is not None and kind in (
        "greater_than",
        "greater_than_equal",
        "less_than",
        "less_than_equal",
    ):
        return SettingsError(_range_message(variable, field, error["input"]))
    return SettingsError(f"{variable}: {error['msg']}, got {raw!r}")


def _bounds(field: FieldInfo) -> Iterator[tuple[str, Any]]:
    for item in field.metadata:
        for attr in ("gt", "ge", "lt", "le"):
            value = getattr(item, attr, None)
            if value is not None:
                yield attr, value


def _range_message(variable: str, field: FieldInfo, value: Any) -> str:
    bounds = dict(_bounds(field))
    if field.annotation is int:
        if "ge" in bounds and "le" in bounds:
            return f"{variable} must be between {bounds['ge']} and {bounds['le']}, got {value}"
        return f"{variable} must be positive"
    low = f"({bounds['gt']}" if "gt" in bounds else f"[{bounds.get('ge', '-inf')}"
    high = f"{bounds['le']}]" if "le" in bounds else "inf)"
    if "le" not in bounds:
        return f"{variable} must be positive"
    return f"{variable} must be in {low}, {high}"


# --------------------------------------------------------------------------- docs


def _shown(field: FieldInfo) -> str:
    extra = field.json_schema_extra
    if isinstance(extra, dict) and isinstance(extra.get("shown"), str):
        return str(extra["shown"])
    value = field.default
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, tuple):
        text = ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    elif isinstance(value, float):
        text = f"{value:g}"
    else:
        text = str(value)
    return f"`{text}`" if text else "empty"


def markdown() -> str:
    """The settings as docs/configuration.md shows them: a table per group."""
    lines: list[str] = []
    for group in GROUPS:
        title = group.model_config.get("title") or group.__name__
        lines += [f"### {title}", "", (group.__doc__ or "").strip(), ""]
        lines += ["| variable | default | meaning |", "|---|---|---|"]
        for name, field in group.model_fields.items():
            meaning = (field.description or "").replace("|", "\\|")
            lines.append(f"| `{var(name)}` | {_shown(field)} | {meaning} |")
        lines.append("")
    return "\n".join(lines)
