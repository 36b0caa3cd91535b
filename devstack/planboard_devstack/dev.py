"""``planboard dev``: the whole stack on loopback, supervised, stopped by Ctrl-C."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from planboard_devstack.paths import port_open
from planboard_devstack.process import ManagedProcess, ServerError
from planboard_devstack.stack import Endpoints, InfraStack

RESTART_BACKOFF_MAX_S = 30.0


@dataclass
class Child:
    """An app process the supervisor restarts when it dies."""

    process: ManagedProcess
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = field(default_factory=time.monotonic)


def _planboard(*args: str) -> list[str]:
    return [sys.executable, "-m", "planboard", *args]


@dataclass(frozen=True)
class Seeded:
    """What ``planboard seed`` made: the demo project, and the demo login in development."""

    project_id: str
    project_key: str
    demo_email: str | None = None
    demo_password: str | None = None


def _prepare_database(env: dict[str, str], run_dir: Path, log_dir: Path) -> Seeded:
    """Migrate and seed; in development the seed adds the demo login, whose password is
    kept in ``run_dir/demo-password`` (generated once per state dir)."""
    password_file = run_dir / "demo-password"
    development = env.get("PLANBOARD_ENV") == "development"
    demo = ["--demo-user", str(password_file)] if development else []
    output = b""
    for step in (["migrate"], ["seed", "--json", *demo]):
        result = subprocess.run(
            _planboard(*step), env=env, capture_output=True, check=False, stdin=subprocess.DEVNULL
        )
        with open(log_dir / "setup.log", "ab") as log:
            log.write(result.stdout + result.stderr)
        if result.returncode != 0:
            raise ServerError(f"planboard {step[0]} failed; see {log_dir / 'setup.log'}")
        output = result.stdout
    summary = json.loads(output.decode().strip().splitlines()[-1])
    user = summary.get("demo_user")
    return Seeded(
        project_id=str(summary["project_id"]),
        project_key=str(summary["project_key"]),
        demo_email=str(user["email"]) if user else None,
        demo_password=password_file.read_text().strip() if user else None,
    )


def _json_field(field: str) -> str:
    """A shell filter printing one field of a JSON answer: jq when installed, else Python."""
    if shutil.which("jq"):
        return f"jq -r .{field}"
    return f"python3 -c 'import json,sys; print(json.load(sys.stdin)[\"{field}\"])'"


def try_lines(api_url: str, seeded: Seeded) -> list[str]:
    """Ready-to-paste shell lines: log in as the demo user, then list the demo tasks."""
    if not seeded.demo_email or not seeded.demo_password:
        return []
    body = json.dumps({"email": seeded.demo_email, "password": seeded.demo_password})
    login = (
        f"TOKEN=$(curl -s {api_url}/api/v1/auth/login -H 'Content-Type: application/json' "
        f"-d '{body}' | {_json_field('access_token')})"
    )
    tasks = (
        f'curl -s "{api_url}/api/v1/projects/{seeded.project_id}/tasks" '
        '-H "Authorization: Bearer $TOKEN"'
    )
    if shutil.which("jq"):
        tasks += " | jq -c '.items[] | {key, plan_ref, title, status}'"
    return [login, tasks]


def _banner(
    endpoints: Endpoints, api_url: str, run_dir: Path, groups: list[str], seeded: Seeded
) -> str:
    if seeded.demo_email and seeded.demo_password:
        demo = (
            f"{seeded.demo_email}  password: {seeded.demo_password}  "
            f"(development only; owns workspace Demo, project {seeded.project_key})"
        )
    else:
        demo = "none (seeded only when PLANBOARD_ENV=development)"
    rows = [
        ("API", api_url),
        ("  Swagger UI", f"{api_url}/api/docs"),
        ("  OpenAPI", f"{api_url}/api/openapi.json"),
        ("  health", f"{api_url}/readyz"),
        ("  metrics", f"{api_url}/metrics"),
        ("Demo login", demo),
        ("MongoDB", endpoints.mongodb_uri),
        ("Kafka", endpoints.kafka_bootstrap),
        ("Redis", endpoints.redis_url),
        ("Mail (SMTP)", f"smtp://{endpoints.smtp_host}:{endpoints.smtp_port}"),
    ]
    if endpoints.mail_http_url:
        rows.append(("Mail (read)", f"{endpoints.mail_http_url}/messages"))
    rows += [("Relay", "running"), ("Workers", ", ".join(groups)), ("Logs", str(run_dir / "logs"))]
    width = max(len(name) for name, _ in rows)
    lines = ["", "Planboard dev stack is up:"]
    lines += [f"  {name.ljust(width)}  {value}" for name, value in rows]
    commands = try_lines(api_url, seeded)
    if commands:
        lines += ["", "Log in as the demo user and list the sample plan's tasks:"]
        lines += [f"  {command}" for command in commands]
    lines += [
        "",
        "A walk through the API: docs/quickstart.md. Press Ctrl-C to stop everything.",
        "",
    ]
    return "\n".join(lines)


def run_dev(run_dir: Path, port: int, groups: list[str]) -> int:
    stop_requested = False

    def request_stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    run_dir.mkdir(parents=True, exist_ok=True)
    log_dir = run_dir / "logs"
    log_dir.mkdir(exist_ok=True)
    print(
        f"Starting dev servers in {run_dir} "
        "(the first run downloads and builds; later runs reuse the cache)...",
        flush=True,
    )
    stack = InfraStack(run_dir / "servers", preferred_ports=True)
    children: dict[str, Child] = {}
    try:
        endpoints = stack.start()
        env = dict(os.environ)
        env.update(endpoints.env())
        env.setdefault("PLANBOARD_ENV", "development")
        env.setdefault("PLANBOARD_ALLOW_PRIVATE_WEBHOOKS", "true")
        env.setdefault("PLANBOARD_LOG_JSON", "false")
        env.setdefault("PLANBOARD_SHUTDOWN_DELAY_S", "0")  # no load balancer to drain
        env["PLANBOARD_PORT"] = str(port)
        seeded = _prepare_database(env, run_dir, log_dir)
        specs = {"api": _planboard("serve"), "relay": _planboard("relay")}
        specs.update({f"worker-{g}": _planboard("worker", "--group", g) for g in groups})
        for name, argv in specs.items():
            process = ManagedProcess(
                name=name, argv=argv, log_path=log_dir / f"{name}.log", env=env
            )
            process.start()
            children[name] = Child(process)
        api_url = f"http://127.0.0.1:{port}"
        children["api"].process.wait_until(lambda: port_open("127.0.0.1", port), 60, "listening")
        print(_banner(endpoints, api_url, run_dir, groups, seeded), flush=True)
        while not stop_requested:
            _supervise(children, stack)
            time.sleep(0.5)
        print("\nStopping...", flush=True)
        return 0
    except ServerError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        for name in ("api", *[n for n in children if n != "api"]):
            if name in children:
                children[name].process.stop()
        stack.stop()
        print("Stopped.", flush=True)


def _supervise(children: dict[str, Child], stack: InfraStack) -> None:
    """Restart any app process that died, with exponential backoff."""
    now = time.monotonic()
    for name, child in children.items():
        code = child.process.poll()
        if code is None:
            if now - child.started_at > 60:
                child.restarts = 0
            continue
        if child.next_start == 0.0:
            delay = min(2.0**child.restarts, RESTART_BACKOFF_MAX_S)
            child.next_start = now + delay
            print(
                f"{name} exited with code {code}; restarting in {delay:.0f}s "
                f"(log: {child.process.log_path})",
                file=sys.stderr,
                flush=True,
            )
        elif now >= child.next_start:
            child.process.start()
            child.restarts += 1
            child.next_start = 0.0
            child.started_at = now
    for name, server in stack.servers.items():
        if server.process is not None and server.process.poll() is not None:
            print(
                f"dev server {name} died; restarting (log: {server.process.log_path})",
                file=sys.stderr,
                flush=True,
            )
            try:
                server.start()
            except ServerError as exc:
                print(f"restart of {name} failed: {exc}", file=sys.stderr, flush=True)
