from __future__ import annotations

import os

import pytest

from planboard.config import DEV_SECRET_KEY, Settings, SettingsError, usable_cpus


def test_defaults_are_development() -> None:
    settings = Settings.from_env({})
    assert settings.env == "development"
    assert settings.port == 8080
    assert settings.secret_key == DEV_SECRET_KEY
    # Readiness gates on MongoDB only: the API serves through Kafka and Redis outages.
    assert settings.ready_checks == ("mongodb",)


def test_reads_the_environment() -> None:
    settings = Settings.from_env(
        {
            "PLANBOARD_PORT": "9001",
            "PLANBOARD_MONGODB_URI": "mongodb://db:27017/",
            "PLANBOARD_KAFKA_BOOTSTRAP": "k:9092",
            "PLANBOARD_REDIS_URL": "redis://r:6379/1",
            "PLANBOARD_CORS_ORIGINS": "https://a.example, https://b.example",
            "PLANBOARD_ACCESS_LOG": "false",
            "PLANBOARD_READY_CHECKS": "mongodb,redis",
            "PLANBOARD_LOG_LEVEL": "debug",
            "PLANBOARD_SHUTDOWN_DELAY_S": "0",
        }
    )
    assert settings.port == 9001
    assert settings.mongodb_uri == "mongodb://db:27017/"
    assert settings.kafka_bootstrap == "k:9092"
    assert settings.redis_url == "redis://r:6379/1"
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    assert settings.access_log is False
    assert settings.ready_checks == ("mongodb", "redis")
    assert settings.log_level == "DEBUG"
    assert settings.shutdown_delay_s == 0.0
    assert Settings.from_env({}).shutdown_delay_s == 3.0


def test_production_refuses_the_default_secret() -> None:
    with pytest.raises(SettingsError, match="PLANBOARD_SECRET_KEY"):
        Settings.from_env({"PLANBOARD_ENV": "production"})
    with pytest.raises(SettingsError, match="at least 32"):
        Settings.from_env({"PLANBOARD_ENV": "production", "PLANBOARD_SECRET_KEY": "short"})
    ok = Settings.from_env({"PLANBOARD_ENV": "production", "PLANBOARD_SECRET_KEY": "x" * 40})
    assert ok.is_production


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PLANBOARD_PORT", "eighty", "integer"),
        ("PLANBOARD_PORT", "70000", "between"),
        ("PLANBOARD_ENV", "staging", "PLANBOARD_ENV"),
        ("PLANBOARD_ACCESS_LOG", "maybe", "boolean"),
        ("PLANBOARD_READY_CHECKS", "mongodb,etcd", "unknown check"),
        ("PLANBOARD_LOG_LEVEL", "loud", "PLANBOARD_LOG_LEVEL"),
        ("PLANBOARD_MONGODB_DB", "bad.name", "database name"),
        ("PLANBOARD_DEPENDENCY_TIMEOUT_S", "-1", "PLANBOARD_DEPENDENCY_TIMEOUT_S"),
        ("PLANBOARD_API_PROCESSES", "0", "between"),
        ("PLANBOARD_API_PROCESSES", "many", "PLANBOARD_API_PROCESSES"),
        ("PLANBOARD_SHUTDOWN_DELAY_S", "-1", r"PLANBOARD_SHUTDOWN_DELAY_S must be in \[0, 600\]"),
        ("PLANBOARD_SHUTDOWN_DELAY_S", "soon", "PLANBOARD_SHUTDOWN_DELAY_S must be a number"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({name: value})


def test_redacted_hides_secrets_and_credentials() -> None:
    settings = Settings.from_env(
        {"PLANBOARD_MONGODB_URI": "mongodb://user:pw@db:27017/", "PLANBOARD_SECRET_KEY": "s" * 40}
    )
    shown = settings.redacted()
    assert shown["secret_key"] == "***"
    assert shown["mongodb_uri"] == "mongodb://***@db:27017/"


def test_api_processes_default_to_one_and_auto_counts_usable_cpus() -> None:
    assert Settings.from_env({}).api_processes == 1
    assert Settings.from_env({"PLANBOARD_API_PROCESSES": "3"}).api_processes == 3
    auto = Settings.from_env({"PLANBOARD_API_PROCESSES": "auto"}).api_processes
    assert auto == usable_cpus()
    assert 1 <= auto <= len(os.sched_getaffinity(0))


def test_production_turns_the_access_log_off_unless_asked() -> None:
    secret = {"PLANBOARD_SECRET_KEY": "x" * 40, "PLANBOARD_ENV": "production"}
    assert Settings.from_env({}).access_log
    assert not Settings.from_env(secret).access_log
    assert Settings.from_env({**secret, "PLANBOARD_ACCESS_LOG": "true"}).access_log


def test_attachment_settings() -> None:
    settings = Settings.from_env(
        {
            "PLANBOARD_ATTACHMENT_STORAGE": "s3",
            "PLANBOARD_ATTACHMENT_S3_BUCKET": "files",
            "PLANBOARD_ATTACHMENT_S3_PREFIX": "prod/",
            "PLANBOARD_ATTACHMENT_MAX_BYTES": "1048576",
            "PLANBOARD_ATTACHMENT_URL_TTL_S": "60",
        }
    )
    assert (settings.attachment_storage, settings.attachment_s3_bucket) == ("s3", "files")
    assert (settings.attachment_max_bytes, settings.attachment_url_ttl_s) == (1048576, 60)
    assert Settings.from_env({}).attachment_storage == "gridfs"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PLANBOARD_ATTACHMENT_STORAGE": "ftp"}, "PLANBOARD_ATTACHMENT_STORAGE"),
        ({"PLANBOARD_ATTACHMENT_STORAGE": "s3"}, "PLANBOARD_ATTACHMENT_S3_BUCKET"),
        (
            {"PLANBOARD_ATTACHMENT_S3_BUCKET": "b", "PLANBOARD_ATTACHMENT_S3_PREFIX": "../x"},
            "PLANBOARD_ATTACHMENT_S3_PREFIX",
        ),
        ({"PLANBOARD_ATTACHMENT_MAX_BYTES": "0"}, "PLANBOARD_ATTACHMENT_MAX_BYTES"),
        ({"PLANBOARD_ATTACHMENT_URL_TTL_S": "5"}, "PLANBOARD_ATTACHMENT_URL_TTL_S"),
    ],
)
def test_bad_attachment_settings_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_forwarded_for_trust_and_proxy_hops() -> None:
    assert not Settings.from_env({}).trust_forwarded_for
    legacy = Settings.from_env({"PLANBOARD_TRUST_FORWARDED_FOR": "true"})
    assert (legacy.trust_forwarded_for, legacy.trusted_proxy_hops) == (True, 1)
    two = Settings.from_env(
        {"PLANBOARD_TRUST_FORWARDED_FOR": "true", "PLANBOARD_TRUSTED_PROXY_HOPS": "2"}
    )
    assert two.trusted_proxy_hops == 2
    with pytest.raises(SettingsError, match="PLANBOARD_TRUSTED_PROXY_HOPS has no effect"):
        Settings.from_env({"PLANBOARD_TRUSTED_PROXY_HOPS": "2"})
    with pytest.raises(SettingsError, match="PLANBOARD_TRUSTED_PROXY_HOPS must be between 1"):
        Settings.from_env(
            {"PLANBOARD_TRUST_FORWARDED_FOR": "true", "PLANBOARD_TRUSTED_PROXY_HOPS": "0"}
        )


def test_webhook_delivery_settings() -> None:
    from planboard.services.webhooks import WebhookOptions

    assert WebhookOptions.from_settings(Settings.from_env({})) == WebhookOptions()
    options = WebhookOptions.from_settings(
        Settings.from_env(
            {
                "PLANBOARD_WEBHOOK_RETRY_DELAYS_S": "1, 2.5,60",
                "PLANBOARD_WEBHOOK_CONCURRENCY": "4",
                "PLANBOARD_WEBHOOK_LEASE_S": "0.5",
            }
        )
    )
    assert options.retry_delays_s == (1.0, 2.5, 60.0)
    assert (options.concurrency, options.lease_s, options.max_attempts) == (4, 0.5, 4)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PLANBOARD_WEBHOOK_RETRY_DELAYS_S", "soon", "must list seconds"),
        ("PLANBOARD_WEBHOOK_RETRY_DELAYS_S", ",".join(["1"] * 21), "at most 20 delays"),
        ("PLANBOARD_WEBHOOK_RETRY_DELAYS_S", "-1", "at most 20 delays of 0..7d"),
        ("PLANBOARD_WEBHOOK_CONCURRENCY", "0", "PLANBOARD_WEBHOOK_CONCURRENCY must be positive"),
        ("PLANBOARD_WEBHOOK_LEASE_S", "x", "PLANBOARD_WEBHOOK_LEASE_S must be a number"),
        ("PLANBOARD_MONGODB_TRANSACTIONS", "maybe", "PLANBOARD_MONGODB_TRANSACTIONS"),
        ("PLANBOARD_RATE_LIMIT_API", "many", "must look like 100/15m"),
        ("PLANBOARD_RATE_LIMIT_AUTH", "0/1m", "1..1000000 requests"),
    ],
)
def test_bad_grouped_values_name_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({name: value})


def test_transactions_mode_and_rate_limits() -> None:
    assert Settings.from_env({}).mongodb_transactions == "auto"
    assert (
        Settings.from_env({"PLANBOARD_MONGODB_TRANSACTIONS": "OFF"}).mongodb_transactions == "off"
    )
    limits = Settings.from_env({"PLANBOARD_RATE_LIMIT_AUTH": "5/2h"})
    assert (limits.rate_limit_auth.limit, limits.rate_limit_auth.window_s) == (5, 7200)


def test_settings_built_from_values_ignore_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLANBOARD_PORT", "9999")
    assert Settings().port == 8080
    assert Settings.from_env().port == 9999
    assert Settings(port=1).replace(port=2).port == 2
