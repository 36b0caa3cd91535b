"""HTTP throughput and latency of the main API paths, against a hello-world ceiling.

Starts its own dev servers (InfraStack, in a temp dir; servers named by PLANBOARD_*
variables are used as they are), runs ``planboard migrate``, starts ``planboard serve``
(access log off, rate limits off, log level WARNING) and ``benchmarks/hello.py`` (bare
aiohttp + uvloop) on free ports, seeds through the HTTP API (a user, a workspace, a
2,000-task project with a few dependencies, a second project for the write paths),
then drives each path with ``wrk --latency`` (a separate process; Lua scripts in
``benchmarks/wrk/``) at each connection count, and times the import of a 500-task
Markdown plan (sequential requests). Prints a Markdown report and writes it into
``docs/benchmarks.md`` under "HTTP paths" (that section only).

    make bench
    .venv/bin/python benchmarks/http_bench.py --duration 5 --connections 1,32,128
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from procs import DOC, start, stop, write_section

from planboard_devstack.paths import free_port
from planboard_devstack.stack import InfraStack

ROOT = Path(__file__).resolve().parent.parent
LUA = ROOT / "benchmarks" / "wrk"
SECTION = "HTTP paths"
FLOOR = "GET /healthz (the API's middlewares, no handler work)"
PLANBOARD = str(Path(sys.executable).with_name("planboard"))


# --- HTTP client (stdlib: the benchmark's own requests are not what is measured) -----


def call(
    base: str,
    method: str,
    path: str,
    body: Any = None,
    token: str | None = None,
    *,
    raw: bytes | None = None,
    content_type: str = "application/json",
) -> tuple[int, Any]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(base + path, data=data, method=method)  # noqa: S310 (http only)
    if data is not None:
        request.add_header("Content-Type", content_type)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
            text = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        text, status = exc.read(), exc.code
    try:
        return status, json.loads(text) if text else None
    except ValueError:
        return status, text


def ok(status: int, answer: Any, what: str) -> Any:
    if not 200 <= status < 300:
        raise SystemExit(f"{what}: HTTP {status}: {answer!r}"[:2000])
    return answer


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310
                if response.status < 500:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {timeout:.0f} s")


def settle(bases: list[str], timeout: float = 120.0) -> None:
    """Wait until every API answers /readyz (a MongoDB, Redis and Kafka round trip) in
    under 50 ms: the requests a previous run left queued have drained, so they do not
    load the servers during the next run."""
    deadline = time.monotonic() + timeout
    for base in bases:
        while time.monotonic() < deadline:
            began = time.perf_counter()
            call(base, "GET", "/readyz")
            if time.perf_counter() - began < 0.05:
                break
            time.sleep(0.5)


# --- seeding ---------------------------------------------------------------------------


@dataclass
class Seed:
    email: str
    password: str
    workspace_id: str
    project_id: str
    read_task_id: str
    write_project_id: str
    patch_task_ids: list[str]


def login(base: str, email: str, password: str) -> str:
    answer = ok(
        *call(base, "POST", "/api/v1/auth/login", {"email": email, "password": password}), "login"
    )
    return str(answer["access_token"])


def bulk_tasks(
    base: str, token: str, project_id: str, count: int, prefix: str
) -> list[dict[str, Any]]:
    statuses = ["todo", "todo", "in_progress", "done", "blocked"]
    created: list[dict[str, Any]] = []
    for first in range(0, count, 500):
        batch = [
            {
                "title": f"{prefix} task {i + 1}",
                "description": f"Benchmark task number {i + 1}.",
                "status": statuses[i % len(statuses)],
                "complexity": ["low", "medium", "high"][i % 3],
                "estimate_hours": 1 + i % 8,
                "labels": ["bench", f"group{i % 10}"],
            }
            for i in range(first, min(first + 500, count))
        ]
        path = f"/api/v1/projects/{project_id}/tasks/bulk"
        answer = ok(*call(base, "POST", path, {"tasks": batch}, token), "bulk create")
        created.extend(answer["items"])
    return created


def seed(base: str) -> Seed:
    email, password = f"bench-{os.getpid()}-{int(time.time())}@example.com", "bench-Pa55word!-x9"
    body = {"email": email, "password": password, "name": "Bench User"}
    ok(*call(base, "POST", "/api/v1/auth/register", body), "register")
    token = login(base, email, password)
    workspace = ok(*call(base, "POST", "/api/v1/workspaces", {"name": "Bench"}, token), "workspace")
    ws = workspace["id"]
    project = ok(
        *call(
            base,
            "POST",
            f"/api/v1/workspaces/{ws}/projects",
            {"name": "Bench Big", "key": "BIG"},
            token,
        ),
        "project",
    )
    tasks = bulk_tasks(base, token, project["id"], 2000, "Big")
    # a few dependencies: a short chain and a fan-in, so progress has a critical path
    for blocked, blocker in [
        (10, 5),
        (20, 10),
        (30, 20),
        (40, 30),
        (41, 30),
        (42, 30),
        (100, 42),
        (1999, 100),
    ]:
        path = f"/api/v1/tasks/{tasks[blocked]['id']}/dependencies"
        ok(*call(base, "POST", path, {"blocked_by": tasks[blocker]["id"]}, token), "dependency")
    write = ok(
        *call(
            base,
            "POST",
            f"/api/v1/workspaces/{ws}/projects",
            {"name": "Bench Writes", "key": "WR"},
            token,
        ),
        "write project",
    )
    patch_tasks = bulk_tasks(base, token, write["id"], 200, "Patch")
    for task in patch_tasks:  # the PATCH script alternates in_progress / todo from todo
        if task["status"] != "todo":
            ok(
                *call(base, "PATCH", f"/api/v1/tasks/{task['id']}", {"status": "todo"}, token),
                "reset",
            )
    return Seed(
        email,
        password,
        ws,
        project["id"],
        tasks[7]["id"],
        write["id"],
        [t["id"] for t in patch_tasks],
    )


def plan_markdown(tasks: int = 500, phases: int = 10) -> str:
    per_phase = tasks // phases
    lines = [
        "# Bench Import - Backend API Project Plan",
        "",
        "*Generated: 2026-10-02*",
        "*Last Updated: 2026-10-20*",
        "",
        "## Overview",
        "",
        "**Project Name**: Bench Import",
        "",
        "**Description**: A generated plan for the import benchmark.",
        "",
        "**Target Users**: Benchmarks",
        "",
        "**Project Type**: Backend API",
        "",
        "**Status**: In Progress",
        "",
        "---",
        "",
        "## Tasks & Implementation Plan",
        "",
    ]
    for p in range(1, phases + 1):
        lines += [f"### Phase {p}: Phase number {p} (Est: {per_phase * 2} hours)", ""]
        for t in range(1, per_phase + 1):
            deps = "None" if t == 1 else f"T{p}.{t - 1}"
            done = t % 4 == 0
            lines += [
                f"#### T{p}.{t}: Generated task {p}.{t}",
                f"- [{'x' if done else ' '}] **Status**: {'DONE' if done else 'TODO'}",
                f"- **Complexity**: {['Low', 'Medium', 'High'][t % 3]}",
                "- **Estimated**: 2 hours",
                f"- **Dependencies**: {deps}",
                "- **Description**:",
                f"  - Do part {t} of phase {p}",
                "  - Check it works",
                "",
            ]
        lines += ["---", ""]
    return "\n".join(lines)


# --- wrk --------------------------------------------------------------------------------


@dataclass
class Point:
    path: str
    connections: int
    threads: int
    rps: float
    p50: float  # milliseconds
    p90: float
    p95: float
    p99: float
    non2xx: int
    socket_errors: int
    requests: int
    codes: str = ""  # non-2xx by status, from the write scripts: "409=24 500=1"


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing wrk from Debian (apt-get install -y wrk)", flush=True)
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=True, stdout=subprocess.DEVNULL)
        found = shutil.which("wrk")
        if found:
            return found
    raise SystemExit("wrk is missing: apt-get install -y wrk")


def parse_wrk(out: str) -> dict[str, float]:
    """The PB_RESULT line our Lua done() prints; the text report is the fallback."""
    match = re.search(r"^PB_RESULT (.*)$", out, re.M)
    if match:
        values = dict(item.split("=") for item in match.group(1).split())
        result = {k: float(v) for k, v in values.items()}
        result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
        return result
    units = {"us": 1, "ms": 1e3, "s": 1e6}
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}  # type: ignore[union-attr]
    for pct, key in (("50", "p50"), ("90", "p90"), ("99", "p99")):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)", out, re.M)
        result[key] = float(m.group(1)) * units[m.group(2)] if m else float("nan")
    result["p95"] = float("nan")
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["status"] = float(non2xx.group(1)) if non2xx else 0.0
    sock = re.search(r"connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    for i, key in enumerate(("connect", "read", "write", "timeout")):
        result[key] = float(sock.group(i + 1)) if sock else 0.0
    result["requests"] = float(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return result


def run_wrk(
    wrk: str, name: str, url: str, script: str, connections: int, duration: int, env: dict[str, str]
) -> Point:
    threads = min(2, connections)  # wrk needs connections >= threads
    cmd = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
        "--timeout",
        "10s",
    ]
    cmd += ["-s", str(LUA / script), url]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, **env}, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"wrk failed for {name}: {proc.stderr or proc.stdout}")
    r = parse_wrk(proc.stdout)
    codes = re.search(r"^PB_CODES ?(.*)$", proc.stdout, re.M)
    point = Point(
        name,
        connections,
        threads,
        r["rps"],
        r["p50"] / 1e3,
        r["p90"] / 1e3,
        r["p95"] / 1e3,
        r["p99"] / 1e3,
        int(r["status"]),
        int(r["connect"] + r["read"] + r["write"] + r["timeout"]),
        int(r["requests"]),
        codes.group(1).strip() if codes else "",
    )
    print(
        f"  {name:<28} c={connections:<4} {point.rps:9.1f} req/s  p50 {point.p50:7.2f} ms  "
        f"p95 {point.p95:7.2f} ms  p99 {point.p99:7.2f} ms  non-2xx {point.non2xx}  "
        f"socket errors {point.socket_errors}",
        flush=True,
    )
    return point


# --- report -----------------------------------------------------------------------------


def machine() -> str:
    cpu = "unknown"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as info:
        mem_gib = int(info.readline().split()[1]) / 1024 / 1024
    import aiohttp

    wrk_version = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    wrk_line = (wrk_version.stdout or wrk_version.stderr).splitlines()[0] if wrk_version else "wrk"
    return (
        f'`nproc` {os.cpu_count()}, CPU "{cpu}", {mem_gib:.1f} GiB RAM, '
        f"Python {platform.python_version()}, aiohttp {aiohttp.__version__}, "
        f"{wrk_line.split(' Copyright')[0].strip()}; "
        f"date {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; 1-minute load average "
        f"{os.getloadavg()[0]:.1f} at the end of the run"
    )


def fmt(value: float) -> str:
    return "n/a" if value != value else (f"{value:.1f}" if value >= 10 else f"{value:.2f}")


def spec_checks(points: list[Point], imports_ok: bool) -> list[str]:
    by = {(p.path, p.connections): p for p in points}
    lines = []
    at32 = [
        p for p in points if p.connections == 32 and p.path != HELLO and not p.path.endswith(OFF)
    ]
    if at32:
        slow = [f"{p.path} {fmt(p.p95)} ms" for p in at32 if not p.p95 < 200 or not p.requests]
        lines.append(
            "- p95 < 200 ms at 32 connections for every main path: "
            + ("**met**" if not slow else "**not met** (" + "; ".join(slow) + ")")
        )
    ratios = []
    for (path, c), p in sorted(by.items(), key=lambda kv: kv[0][1]):
        if path == READ and (HELLO, c) in by:
            ratios.append((c, p.rps / by[(HELLO, c)].rps))
    if ratios:
        bad = [f"{c} conn: {r:.0%}" for c, r in ratios if r < 0.35]
        shown = ", ".join(f"{r:.0%} at {c}" for c, r in ratios)
        lines.append(
            f"- cached task read ≥ 35 % of the hello-world ceiling: {shown} → "
            + ("**met**" if not bad else "**not met** (" + "; ".join(bad) + ")")
        )
    worst = []
    for path in (LIST, PROGRESS):
        for c in sorted({p.connections for p in points}):
            if (path, c) in by and (READ, c) in by:
                factor = by[(READ, c)].rps / by[(path, c)].rps
                worst.append((path, c, factor))
    if worst:
        bad = [f"{'list' if p == LIST else 'progress'} at {c}" for p, c, f in worst if f > 3]
        shown = ", ".join(
            f"{'list' if p == LIST else 'progress'} {f:.1f}x at {c}" for p, c, f in worst
        )
        lines.append(
            "- list and progress within 3x of a cached read (by req/s): "
            + shown
            + " → "
            + ("**met**" if not bad else "**not met** (" + "; ".join(bad) + ")")
        )
    gains = [
        f"{'task' if path == READ else 'list' if path == LIST else 'progress'} "
        f"{by[(path, c)].rps / by[(off(path), c)].rps:.1f}x at {c}"
        for path in (READ, LIST, PROGRESS)
        for c in sorted({p.connections for p in points})
        if (path, c) in by and (off(path), c) in by and by[(off(path), c)].rps
    ]
    if gains:
        lines.append(
            "- (not a target) the read-through cache's gain, req/s cached ÷ cache off on the "
            "same data in the same run: " + ", ".join(gains)
        )
    errors = [
        f"{p.path} at {p.connections}: no request completed within the run"
        for p in points
        if p.requests == 0 and not p.path.endswith(OFF)
    ] + [
        f"{p.path} at {p.connections}: {p.non2xx} non-2xx"
        + (f" ({p.codes})" if p.codes else "")
        + f", {p.socket_errors} socket"
        for p in points
        if (p.non2xx or p.socket_errors) and not p.path.endswith(OFF)
    ]
    overloaded = [
        f"{p.path} at {p.connections}: {p.non2xx} non-2xx, {p.socket_errors} socket"
        for p in points
        if (p.non2xx or p.socket_errors) and p.path.endswith(OFF)
    ]
    if overloaded:
        lines.append(
            "- (not a target) errors on the cache-off comparison rows, an API overloaded on "
            "purpose: " + "; ".join(overloaded)
        )
    lines.append(
        "- no errors: "
        + (
            "**met**"
            if not errors and imports_ok
            else "**not met** (" + "; ".join(errors or ["imports failed"]) + ")"
        )
    )
    return lines


def report(
    points: list[Point],
    imports: list[float],
    import_ok: bool,
    args: argparse.Namespace,
    command: str,
) -> str:
    hello = {p.connections: p.rps for p in points if p.path == HELLO}
    what = (
        "one `planboard serve` process"
        if args.processes == 1
        else f"`planboard serve` with `PLANBOARD_API_PROCESSES={args.processes}` "
        f"({args.processes} processes on one port, SO_REUSEPORT)"
    )
    ceiling = "a bare aiohttp hello-world" + (
        "" if args.processes == 1 else f" with the same {args.processes} processes"
    )
    out = [
        f"## {section_of(args)}",
        "",
        f"What is measured: {what} (access log off, rate limits off, log "
        "level WARNING) on dev servers the benchmark starts itself (MongoDB-compatible server, "
        "Kafka, Redis; no relay or workers run), driven by `wrk` with Lua scripts in "
        "`benchmarks/wrk/` (bearer token in `Authorization`). The ceiling is "
        f"{ceiling} (`benchmarks/hello.py`: same Python, uvloop, access log off) measured in "
        "the same run. wrk, the API, the dev servers and the hello-world server share the same "
        "cores. `GET /healthz` with the same bearer token is the API's fixed cost per "
        "request: authentication, every middleware and the response, no handler work. "
        "Rows marked “(cache off)” come from a second API process of the same "
        "build with `PLANBOARD_CACHE_ENABLED=false`, on the same data, in the same run. "
        "Data: a 2,000-task project (8 dependencies) for the reads; creates and status "
        "changes go to a second project (the PATCH script alternates `in_progress`/`todo` over "
        "200 tasks, no `If-Match`). Search runs after `planboard reindex` (no search worker): "
        "`q=task` repeated (every entry matches: the worst case, served from the search "
        "answer cache after the first) and `q=task+<n>` with a new number on almost every "
        "request (each wrk thread cycles through 2,000; the “(cache off)” row of it is the "
        "search path itself).",
        "",
        f"Machine: {machine()}.",
        "",
        "Command (from `/work/main`):",
        "",
        "```",
        command,
        "```",
        "",
        f"{args.duration} s per point, {args.threads_note}. Latency percentiles are wrk's "
        "(`--latency` prints 50/75/90/99 %; p50, p90 and p99 are shown, and p95 — which the "
        "SPEC targets — is taken from the same histogram by the scripts' `done()`). errors = "
        "non-2xx responses + socket errors. ceiling = req/s ÷ hello-world req/s at the same "
        "connections.",
        "",
        "| path | conn | req/s | p50 ms | p90 ms | p95 ms | p99 ms | errors | ceiling |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for p in points:
        ratio = f"{p.rps / hello[p.connections]:.0%}" if hello.get(p.connections) else "n/a"
        err = str(p.non2xx + p.socket_errors)
        if p.non2xx + p.socket_errors:
            by_code = f": {p.codes.replace(' ', ', ')}" if p.codes else ""
            err += f" ({p.non2xx} non-2xx{by_code}, {p.socket_errors} socket)"
        if p.requests == 0:
            out.append(
                f"| {p.path} | {p.connections} | 0 | none completed within {args.duration} s "
                "(wrk timeout 10 s) | | | | 0 | 0% |"
            )
            continue
        out.append(
            f"| {p.path} | {p.connections} | {p.rps:,.0f} | {fmt(p.p50)} | {fmt(p.p90)} | "
            f"{fmt(p.p95)} | {fmt(p.p99)} | {err} | {ratio} |"
        )
    if imports:
        out += [
            "",
            f"Import of a 500-task Markdown plan (`POST /workspaces/{{id}}/projects/import`, "
            f"10 phases of 50, 490 dependencies, {len(imports)} sequential requests, "
            "each a new project): "
            + ", ".join(f"{t * 1000:.0f}" for t in imports)
            + f" ms; median {statistics.median(imports) * 1000:.0f} ms"
            + ("" if import_ok else " — **some imports failed**")
            + ".",
        ]
    out += ["", "SPEC targets, from these figures:", ""]
    out += spec_checks(points, import_ok)
    return "\n".join(out) + "\n"


def section_of(args: argparse.Namespace) -> str:
    return SECTION if args.processes == 1 else f"{SECTION}, {args.processes} API processes"


# --- main -------------------------------------------------------------------------------

HELLO = "hello-world (ceiling)"
READ = "GET /tasks/{id} (cached)"
LIST = "GET /projects/{id}/tasks?status=todo&limit=50"
PROGRESS = "GET /projects/{id}/progress"
OFF = " (cache off)"


def off(name: str) -> str:
    """The row of ``name`` on the API with PLANBOARD_CACHE_ENABLED=false."""
    return name.replace(" (cached)", "") + OFF


@contextlib.contextmanager
def profiled(
    directory: Path | None, pid: int, name: str, connections: int, duration: int
) -> Iterator[None]:
    """Sample ``pid`` with py-spy (250 Hz, collapsed stacks) while the block runs."""
    if directory is None or name == HELLO:
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    out = directory / f"{slug}-c{connections}.collapsed.txt"
    spy = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("py-spy")),
            "record",
            "--subprocesses",
            "--pid",
            str(pid),
            "--rate",
            "250",
            "--format",
            "raw",
            "--duration",
            str(duration),
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        spy.wait(duration + 30)
        print(f"    profile: {out}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    parser.add_argument(
        "--connections", default="1,32,128", help="comma-separated (default 1,32,128)"
    )
    parser.add_argument(
        "--imports", type=int, default=5, help="sequential 500-task imports (default 5)"
    )
    parser.add_argument(
        "--no-doc", action="store_true", help="print only; leave docs/benchmarks.md"
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="API processes (PLANBOARD_API_PROCESSES) and hello-world processes (default 1)",
    )
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated substrings: run only the paths whose name contains one "
        "(the hello-world ceiling always runs); implies --no-doc",
    )
    parser.add_argument(
        "--profile-dir",
        type=Path,
        help="record the API process with py-spy during each path's wrk runs "
        "(collapsed stacks per path and connection count, for flamegraph tools); implies --no-doc",
    )
    args = parser.parse_args()
    connections = [int(c) for c in args.connections.split(",")]
    only = [o.strip() for o in args.only.split(",") if o.strip()]
    if only or args.profile_dir:
        args.no_doc = True  # a partial or profiled run is not the figure of record
    args.threads_note = "2 wrk threads (1 at 1 connection: wrk needs connections ≥ threads)"
    flags = " ".join(sys.argv[1:])
    command = f".venv/bin/python benchmarks/http_bench.py {flags}".rstrip()
    command += f"   # = make bench BENCH_ARGS='{flags}'" if flags else "   # = make bench"
    wrk = ensure_wrk()

    with tempfile.TemporaryDirectory(prefix="pb-http-bench-") as tmp:
        run_dir = Path(tmp)
        stack = InfraStack(run_dir / "servers")
        print("starting dev servers …", flush=True)
        endpoints = stack.start()
        procs: list[subprocess.Popen[bytes]] = []
        try:
            api_port, hello_port = free_port(), free_port()
            env = {
                **os.environ,
                **endpoints.env(),
                "PLANBOARD_ACCESS_LOG": "false",
                "PLANBOARD_RATE_LIMIT_ENABLED": "false",
                "PLANBOARD_LOG_LEVEL": "WARNING",
                "PLANBOARD_API_PROCESSES": str(args.processes),
            }
            subprocess.run([PLANBOARD, "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
            procs.append(
                start([PLANBOARD, "serve", "--port", str(api_port)], env, run_dir / "api.log")
            )
            # the same API with the read-through cache off: the cache's gain, side by side
            off_port = free_port()
            off_env = {**env, "PLANBOARD_CACHE_ENABLED": "false"}
            procs.append(
                start([PLANBOARD, "serve", "--port", str(off_port)], off_env, run_dir / "off.log")
            )
            hello_cmd = [
                sys.executable,
                str(ROOT / "benchmarks" / "hello.py"),
                "--port",
                str(hello_port),
                "--processes",
                str(args.processes),
            ]
            procs.append(start(hello_cmd, env, run_dir / "hello.log"))
            base, hello_base = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{hello_port}"
            off_base = f"http://127.0.0.1:{off_port}"
            wait_http(base + "/readyz")
            wait_http(off_base + "/readyz")
            wait_http(hello_base + "/hello")

            print("seeding through the API …", flush=True)
            s = seed(base)
            subprocess.run(
                [PLANBOARD, "reindex", "--workspace", s.workspace_id],
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            token = login(base, s.email, s.password)
            plan = plan_markdown().encode()

            paths = [
                (HELLO, f"{hello_base}/hello", "get.lua", {}),
                (FLOOR, f"{base}/healthz", "get.lua", {}),
                (READ, f"{base}/api/v1/tasks/{s.read_task_id}", "get.lua", {}),
                (
                    LIST,
                    f"{base}/api/v1/projects/{s.project_id}/tasks?status=todo&limit=50",
                    "get.lua",
                    {},
                ),
                (PROGRESS, f"{base}/api/v1/projects/{s.project_id}/progress", "get.lua", {}),
                ("GET /search?q=task (repeated)", f"{base}/api/v1/search?q=task", "get.lua", {}),
                ("GET /search?q=task+<n> (varied)", f"{base}/", "search_varied.lua", {}),
                (
                    "POST /projects/{id}/tasks",
                    f"{base}/api/v1/projects/{s.write_project_id}/tasks",
                    "post_task.lua",
                    {},
                ),
                (
                    "PATCH /tasks/{id} status",
                    f"{base}/",
                    "patch_status.lua",
                    {"PB_TASK_IDS": ",".join(s.patch_task_ids)},
                ),
                # last: the uncached runs leave requests queued in that API after wrk ends
                (off(READ), f"{off_base}/api/v1/tasks/{s.read_task_id}", "get.lua", {}),
                (
                    off(LIST),
                    f"{off_base}/api/v1/projects/{s.project_id}/tasks?status=todo&limit=50",
                    "get.lua",
                    {},
                ),
                (
                    off(PROGRESS),
                    f"{off_base}/api/v1/projects/{s.project_id}/progress",
                    "get.lua",
                    {},
                ),
                (off("GET /search?q=task+<n> (varied)"), f"{off_base}/", "search_varied.lua", {}),
            ]
            # sanity: every path answers 2xx before it is loaded
            for name, url, script, _ in paths[1:]:
                if script != "get.lua":
                    continue
                ok(*call(url, "GET", "", token=token), name)
            print("driving load with wrk …", flush=True)
            points = []
            api_pid, off_pid = procs[0].pid, procs[1].pid
            for name, url, script, extra in paths:
                if only and name != HELLO and not any(o in name for o in only):
                    continue
                token = login(base, s.email, s.password)  # a fresh 15-minute access token per path
                for c in connections:
                    wrk_env = {"PB_TOKEN": token, **extra}
                    settle([base, off_base])
                    pid = off_pid if name.endswith(OFF) else api_pid
                    with profiled(args.profile_dir, pid, name, c, args.duration):
                        points.append(run_wrk(wrk, name, url, script, c, args.duration, wrk_env))

            imports, import_ok = [], True
            token = login(base, s.email, s.password)
            for _ in range(args.imports):
                began = time.perf_counter()
                status, answer = call(
                    base,
                    "POST",
                    f"/api/v1/workspaces/{s.workspace_id}/projects/import",
                    token=token,
                    raw=plan,
                    content_type="text/markdown",
                )
                imports.append(time.perf_counter() - began)
                if status != 201:
                    import_ok = False
                    print(f"  import: HTTP {status}: {str(answer)[:300]}", flush=True)
            if imports:
                print(
                    f"  import 500 tasks: {', '.join(f'{t * 1000:.0f} ms' for t in imports)}",
                    flush=True,
                )
        finally:
            for proc in reversed(procs):
                stop(proc, grace_s=10)
            stack.stop()

    text = report(points, imports, import_ok, args, command)
    print()
    print(text)
    if not args.no_doc:
        write_section(text, section_of(args))
        print(f"written to {DOC.relative_to(ROOT)} (section “{section_of(args)}”)")


if __name__ == "__main__":
    main()
