"""Settings from the environment, in one typed place.

Every process (API, relay, workers, CLI) reads its settings here. Outside
development and test, default secrets are refused so a forgotten variable can
never ship a known signing key.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Literal

Environment = Literal["development", "test", "production"]

DEV_SECRET_KEY = "dev-insecure-secret-key-change-me-0123456789"  # noqa: S105 - the refused default
READY_CHECKS = ("mongodb", "kafka", "redis")
ATTACHMENT_STORAGES = ("gridfs", "s3")
MIB = 1024 * 1024
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class SettingsError(ValueError):
    """The environment holds an invalid or unsafe setting."""


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


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise SettingsError(f"{name} must be a boolean (true/false), got {raw!r}")


def _int(name: str, raw: str, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _csv(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


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


@dataclass(frozen=True, slots=True)
class Settings:
    """All runtime settings; build with ``Settings.from_env()``."""

    env: Environment = "development"
    host: str = "127.0.0.1"
    port: int = 8080
    api_processes: int = 1  # `planboard serve` processes sharing the port (SO_REUSEPORT)
    metrics_port: int = 0  # relay/worker processes serve /metrics here when set
    mongodb_uri: str = "mongodb://127.0.0.1:27017/"
    mongodb_db: str = "planboard"
    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_topic_prefix: str = "planboard."
    kafka_partitions: int = 6
    kafka_replication_factor: int = 1
    # The event pipeline (docs/architecture.md#events): relay batches and idle polling,
    # consumer batches, Kafka fetch wait and the partition keys handled at once.
    relay_batch_size: int = 500
    relay_poll_max_ms: int = 100
    consumer_batch_size: int = 500
    consumer_fetch_wait_ms: int = 500
    consumer_concurrency: int = 16
    redis_url: str = "redis://127.0.0.1:6379/0"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    mail_from: str = "Planboard <no-reply@planboard.local>"
    secret_key: str = DEV_SECRET_KEY
    previous_secret_keys: tuple[str, ...] = ()
    jwt_issuer: str = "planboard"
    jwt_audience: str = "planboard-api"
    access_token_ttl_s: int = 15 * 60
    refresh_token_ttl_s: int = 7 * 24 * 3600
    reset_token_ttl_s: int = 3600
    verify_token_ttl_s: int = 48 * 3600
    invitation_ttl_s: int = 7 * 24 * 3600
    password_min_length: int = 10
    rate_limit_enabled: bool = True
    rate_limit_auth: RateLimit = RateLimit(100, 15 * 60)
    rate_limit_api: RateLimit = RateLimit(1200, 60)
    trust_forwarded_for: bool = False
    # Proxies in front of the API that each append to X-Forwarded-For (api/ratelimit.py).
    trusted_proxy_hops: int = 1
    log_level: str = "INFO"
    log_json: bool = True
    access_log: bool = True
    cache_enabled: bool = True  # the Redis read-through cache of hot reads
    # The process-local tier in front of it (services/near_cache.py); 0 MiB: off.
    near_cache_mb: int = 64
    near_cache_ttl_s: int = 5
    cors_origins: tuple[str, ...] = ()
    allow_private_webhooks: bool = False
    ready_checks: tuple[str, ...] = READY_CHECKS
    dependency_timeout_s: float = 2.0
    shutdown_timeout_s: float = 25.0
    shutdown_delay_s: float = 3.0
    public_url: str = ""
    # Attachments (docs/api.md#attachments): where content goes and what is accepted.
    attachment_storage: str = "gridfs"
    attachment_max_bytes: int = 25 * MIB
    attachment_max_pixels: int = 40_000_000
    attachment_max_per_task: int = 100
    attachment_url_ttl_s: int = 900
    attachment_thumbnail_px: int = 256
    attachment_s3_bucket: str = ""
    attachment_s3_prefix: str = "attachments/"
    attachment_s3_endpoint: str = ""
    attachment_s3_region: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read ``PLANBOARD_*`` variables; raise SettingsError naming the bad one."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            return env.get(f"PLANBOARD_{name}")

        values: dict[str, object] = {}
        raw_env = get("ENV")
        if raw_env is not None:
            if raw_env not in ("development", "test", "production"):
                raise SettingsError(
                    f"PLANBOARD_ENV must be development, test or production, got {raw_env!r}"
                )
            values["env"] = raw_env
        for name in (
            "host",
            "mongodb_uri",
            "mongodb_db",
            "kafka_bootstrap",
            "kafka_topic_prefix",
            "redis_url",
            "smtp_host",
            "mail_from",
            "secret_key",
            "public_url",
            "attachment_storage",
            "attachment_s3_bucket",
            "attachment_s3_prefix",
            "attachment_s3_endpoint",
            "attachment_s3_region",
        ):
            raw = get(name.upper())
            if raw is not None:
                values[name] = raw
        for name, low, high in (
            ("port", 0, 65535),
            ("metrics_port", 0, 65535),
            ("smtp_port", 1, 65535),
            ("kafka_partitions", 1, 1000),
            ("kafka_replication_factor", 1, 7),
            ("relay_batch_size", 1, 10_000),
            ("relay_poll_max_ms", 1, 60_000),
            ("consumer_batch_size", 1, 10_000),
            ("consumer_fetch_wait_ms", 0, 10_000),
            ("consumer_concurrency", 1, 1000),
            ("access_token_ttl_s", 30, 24 * 3600),
            ("refresh_token_ttl_s", 300, 365 * 24 * 3600),
            ("reset_token_ttl_s", 60, 7 * 24 * 3600),
            ("verify_token_ttl_s", 60, 30 * 24 * 3600),
            ("invitation_ttl_s", 60, 90 * 24 * 3600),
            ("password_min_length", 8, 128),
            ("attachment_max_bytes", 1, 5 * 1024 * MIB),
            ("attachment_max_pixels", 1, 1_000_000_000),
            ("attachment_max_per_task", 1, 100_000),
            ("attachment_url_ttl_s", 10, 7 * 24 * 3600),
            ("attachment_thumbnail_px", 16, 2048),
            ("near_cache_mb", 0, 16 * 1024),
            ("near_cache_ttl_s", 1, 300),
            ("trusted_proxy_hops", 1, 16),
        ):
            raw = get(name.upper())
            if raw is not None:
                values[name] = _int(f"PLANBOARD_{name.upper()}", raw, low, high)
        for name in (
            "log_json",
            "access_log",
            "cache_enabled",
            "allow_private_webhooks",
            "rate_limit_enabled",
            "trust_forwarded_for",
        ):
            raw = get(name.upper())
            if raw is not None:
                values[name] = _bool(f"PLANBOARD_{name.upper()}", raw)
        if "trusted_proxy_hops" in values and not values.get("trust_forwarded_for"):
            raise SettingsError(
                "PLANBOARD_TRUSTED_PROXY_HOPS has no effect without "
                "PLANBOARD_TRUST_FORWARDED_FOR=true"
            )
        raw = get("API_PROCESSES")
        if raw is not None:
            values["api_processes"] = (
                usable_cpus()
                if raw.strip().lower() == "auto"
                else _int("PLANBOARD_API_PROCESSES", raw, 1, 64)
            )
        raw = get("LOG_LEVEL")
        if raw is not None:
            if raw.upper() not in LOG_LEVELS:
                raise SettingsError(f"PLANBOARD_LOG_LEVEL must be one of {LOG_LEVELS}, got {raw!r}")
            values["log_level"] = raw.upper()
        for name in ("rate_limit_auth", "rate_limit_api"):
            raw = get(name.upper())
            if raw is not None:
                values[name] = RateLimit.parse(f"PLANBOARD_{name.upper()}", raw)
        raw = get("PREVIOUS_SECRET_KEYS")
        if raw is not None:
            values["previous_secret_keys"] = _csv(raw)
        for name in ("jwt_issuer", "jwt_audience"):
            raw = get(name.upper())
            if raw is not None:
                values[name] = raw
        raw = get("CORS_ORIGINS")
        if raw is not None:
            values["cors_origins"] = _csv(raw)
        raw = get("READY_CHECKS")
        if raw is not None:
            checks = _csv(raw)
            unknown = sorted(set(checks) - set(READY_CHECKS))
            if unknown:
                raise SettingsError(
                    f"PLANBOARD_READY_CHECKS: unknown check(s) {unknown}; known: {READY_CHECKS}"
                )
            values["ready_checks"] = checks
        for name in ("dependency_timeout_s", "shutdown_timeout_s"):
            raw = get(name.upper())
            if raw is not None:
                try:
                    number = float(raw)
                except ValueError:
                    raise SettingsError(f"PLANBOARD_{name.upper()} must be a number") from None
                if not 0 < number <= 600:
                    raise SettingsError(f"PLANBOARD_{name.upper()} must be in (0, 600]")
                values[name] = number
        raw = get("SHUTDOWN_DELAY_S")
        if raw is not None:
            try:
                delay = float(raw)
            except ValueError:
                raise SettingsError("PLANBOARD_SHUTDOWN_DELAY_S must be a number") from None
            if not 0 <= delay <= 600:
                raise SettingsError("PLANBOARD_SHUTDOWN_DELAY_S must be in [0, 600]")
            values["shutdown_delay_s"] = delay
        if values.get("env") == "production" and "access_log" not in values:
            # A JSON line per request costs CPU on every request and log volume; in
            # production the metrics (by route and status) and traces carry the same facts.
            # PLANBOARD_ACCESS_LOG=true turns it back on.
            values["access_log"] = False
        settings = replace(cls(), **values)  # type: ignore[arg-type]
        settings.validate()
        return settings

    def validate(self) -> None:
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
        if self.attachment_storage not in ATTACHMENT_STORAGES:
            raise SettingsError(
                f"PLANBOARD_ATTACHMENT_STORAGE must be one of {ATTACHMENT_STORAGES}, "
                f"got {self.attachment_storage!r}"
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
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("secret_key", "previous_secret_keys"):
                value = "***"
            elif isinstance(value, str) and "://" in value and "@" in value:
                scheme, rest = value.split("://", 1)
                value = f"{scheme}://***@{rest.split('@', 1)[1]}"
            out[f.name] = value
        return out
