"""The dev stack itself: mail sink, the CLI and ``planboard dev`` end to end."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

import aiohttp
import aiosmtplib
import pytest

from planboard_devstack.paths import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def planboard(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "planboard", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def stack_env(settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "PLANBOARD_MONGODB_URI": settings.mongodb_uri,
            "PLANBOARD_MONGODB_DB": f"{settings.mongodb_db}_cli",
            "PLANBOARD_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "PLANBOARD_KAFKA_TOPIC_PREFIX": settings.kafka_topic_prefix,
            "PLANBOARD_REDIS_URL": settings.redis_url,
            "PLANBOARD_SMTP_HOST": settings.smtp_host,
            "PLANBOARD_SMTP_PORT": str(settings.smtp_port),
            "PLANBOARD_ENV": "test",
        }
    )
    return env


async def test_mail_sink_stores_and_serves_messages(infra, endpoints) -> None:
    assert endpoints.mail_http_url, "the session started its own mail sink"
    recipient = f"someone-{time.time_ns()}@example.test"
    message = EmailMessage()
    message["From"] = "planboard@example.test"
    message["To"] = recipient
    message["Subject"] = "Réinitialiser — reset ✓"
    message.set_content("Your code is 424242.\n")
    await aiosmtplib.send(message, hostname=endpoints.smtp_host, port=endpoints.smtp_port)
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{endpoints.mail_http_url}/messages", params={"to": recipient}) as resp,
    ):
        body = await resp.json()
    assert [m["subject"] for m in body["items"]] == ["Réinitialiser — reset ✓"]
    assert "424242" in body["items"][0]["text"]
    assert body["items"][0]["to"] == [recipient]


def test_every_subcommand_has_help_with_examples() -> None:
    top = planboard("--help")
    assert top.returncode == 0
    for command in ("serve", "relay", "worker", "replay", "migrate", "seed", "dev"):
        assert command in top.stdout
        result = planboard(command, "--help")
        assert result.returncode == 0, result.stderr
        assert "examples:" in result.stdout


def test_bad_configuration_is_one_clear_line(settings) -> None:
    env = dict(os.environ, PLANBOARD_ENV="production")
    env.pop("PLANBOARD_SECRET_KEY", None)
    result = planboard("migrate", env=env)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "PLANBOARD_SECRET_KEY" in result.stderr


def test_migrate_and_seed_commands(settings) -> None:
    env = stack_env(settings)
    first = planboard("migrate", env=env)
    assert first.returncode == 0, first.stderr
    assert "applied 1" in first.stdout
    status = planboard("migrate", "--status", env=env)
    assert "applied" in status.stdout and "pending" not in status.stdout
    seeded = planboard("seed", env=env)
    assert seeded.returncode == 0, seeded.stderr
    assert "created" in seeded.stdout
    again = planboard("seed", env=env)
    assert "already present" in again.stdout


def test_worker_refuses_an_unknown_group() -> None:
    result = planboard("worker", "--group", "nope")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


async def test_planboard_dev_serves_and_stops_cleanly(settings, tmp_path) -> None:
    """``planboard dev`` against the session's servers: API ready, Ctrl-C stops every child."""
    port = free_port()
    env = stack_env(settings)
    env["PLANBOARD_MONGODB_DB"] = f"{settings.mongodb_db}_dev"
    proc = subprocess.Popen(
        [sys.executable, "-m", "planboard", "dev", "--port", str(port), "--run-dir", str(tmp_path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        ready = False
        async with aiohttp.ClientSession() as http:
            for _ in range(600):  # every process imports the package: slow under load
                try:
                    async with http.get(f"http://127.0.0.1:{port}/readyz") as resp:
                        if resp.status == 200:
                            ready = True
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.25)
        assert ready, "planboard dev did not become ready"
        children = subprocess.run(
            ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True
        ).stdout.split()
        assert len(children) >= 3  # api, relay, at least one worker group
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    assert "Planboard dev stack is up" in output
    assert f"http://127.0.0.1:{port}" in output
    assert "Stopped." in output
    # PLANBOARD_ENV=test: no demo login (development only; tests/integration/test_seed.py)
    assert re.search(r"Demo login\s+none \(seeded only when PLANBOARD_ENV=development\)", output)
    assert "TOKEN=" not in output and not (tmp_path / "demo-password").exists()
    for pid in children:
        assert (
            not Path(f"/proc/{pid}").exists()
            or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
        )


async def test_relay_and_worker_processes_serve_metrics(settings) -> None:
    """`planboard relay` / `planboard worker` with PLANBOARD_METRICS_PORT expose Prometheus text."""
    env = stack_env(settings)
    env["PLANBOARD_MONGODB_DB"] = f"{settings.mongodb_db}_metrics"
    procs = {}
    for name, argv in {"relay": ["relay"], "worker": ["worker", "--group", "rollups"]}.items():
        port = free_port()
        procs[name] = (
            port,
            subprocess.Popen(
                [sys.executable, "-m", "planboard", *argv],
                env={**env, "PLANBOARD_METRICS_PORT": str(port)},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ),
        )
    try:
        bodies = {}
        async with aiohttp.ClientSession() as http:
            for name, (port, _) in procs.items():
                for _ in range(120):
                    try:
                        async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                            text = await resp.text()
                            if "planboard_" in text:
                                bodies[name] = text
                                break
                    except aiohttp.ClientError:
                        pass
                    await asyncio.sleep(0.25)
        assert "planboard_outbox_backlog" in bodies["relay"]
        assert "planboard_relay_published_total" in bodies["relay"]
        assert (
            "planboard_events_processed_total" in bodies["worker"]
            or "planboard_consumer_lag" in bodies["worker"]
        )
    finally:
        for _, proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        for _, proc in procs.values():
            assert proc.wait(timeout=30) == 0  # graceful stop on SIGTERM
