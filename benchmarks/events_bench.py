"""The event pipeline end to end: throughput and latency of API write → webhook receipt.

Starts its own dev servers (InfraStack, in a temp dir; servers named by PLANBOARD_*
variables are used as they are), then for each code tree — this one, and with
``--baseline REF`` also the service code of a git ref (``git archive`` into the temp
dir, run with the same interpreter and ``PYTHONPATH``), one after the other on the same
servers, each on a database and topic prefix of its own — starts the processes
``planboard dev`` starts (``serve``, ``relay`` and one ``worker`` per group), and runs
``benchmarks/webhooks_e2e.py``'s scenarios against it:

- throughput: ``--events`` (10,000) task creates through ``POST /projects/{id}/tasks/bulk``
  (500 per request, 20 projects, 4 requests in flight), each a ``task.created`` event that
  every task-consuming group (webhooks, notifications, rollups, search) handles;
- latency: single task creates (``POST /projects/{id}/tasks``, consumed by four groups)
  paced at ``--rate`` (100) events/s for ``--latency-events`` (3,000) events; then the
  same with workspace renames (``PATCH /workspaces/{id}``: one ``workspace.updated``,
  which only the webhooks group consumes; the write the earlier benchmark used);
- then the throughput run again with only the API, the relay and the webhooks worker
  (the other groups' workers stopped): the pipeline the targets name;
- last, that pipeline alone: the events are written while the relay is frozen
  (SIGSTOP), then it is let go (SIGCONT) and the backlog drains through relay → Kafka →
  webhooks worker → receiver; rates and CPU count from the release (no API writes
  compete), latencies are left out (they include the hold).

Also records the CPU seconds each process used during each scenario (/proc), the load
average, and the per-stage breakdown (event time, Kafka record timestamp, delivery
record's creation and delivery). Prints a Markdown report
and writes it into ``docs/benchmarks.md`` under "Events and webhooks" (that section only).

    make bench-events
    .venv/bin/python benchmarks/events_bench.py --baseline main      # before/after, one run
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

from procs import DOC, start, stop, write_section
from webhooks_e2e import Scenario, machine, run

from planboard_devstack.paths import free_port
from planboard_devstack.stack import Endpoints, InfraStack

ROOT = Path(__file__).resolve().parent.parent
SECTION = "Events and webhooks"
THIS = "this tree"
WEBHOOKS_ONLY = "throughput, webhooks worker only"
BACKLOG = "throughput, pipeline alone (outbox backlog)"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its reaped children, in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # fields[0] is the state (field 3); utime, stime, cutime, cstime are fields 14-17
    return sum(int(v) for v in fields[11:15]) / TICKS


@dataclass
class Tree:
    label: str
    service_dir: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)


def group_names(env: dict[str, str]) -> list[str]:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "from planboard.workers.registry import worker_names; print(' '.join(worker_names()))",
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.split()


def wait_ready(url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (loopback)
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} not ready within {timeout:.0f} s")


def archive(ref: str, into: Path) -> Path:
    """The ``service/`` tree of ``ref``, unpacked under ``into``."""
    blob = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", ref, "service"],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(blob)) as tar:
        tar.extractall(into, filter="data")
    return into / "service"


def revision(ref: str) -> str:
    out = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", ref],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


class Profiler:
    """py-spy (100 Hz, raw collapsed stacks) on the watched processes during one scenario."""

    def __init__(self, directory: Path | None, tag: str, label: str) -> None:
        self.directory = directory
        self.prefix = re.sub(r"[^a-z0-9]+", "-", f"{tag}-{label}".lower()).strip("-")
        self.spies: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(self, watched: dict[str, int]) -> None:
        if self.directory is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        spy = str(Path(sys.executable).with_name("py-spy"))
        for name, pid in watched.items():
            if name.startswith(("kafka", "redis", "mailsink", "benchmark")):
                continue  # not Python, or not the system under test
            slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
            out = self.directory / f"{self.prefix}-{slug}.collapsed.txt"
            cmd = [spy, "record", "--pid", str(pid), "--rate", "100", "--format", "raw"]
            cmd += ["--nonblocking", "--output", str(out)]
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.spies.append((proc, out))

    def stop(self) -> None:
        for proc, out in self.spies:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
            print(f"    profile: {out}", flush=True)
        self.spies = []


def bench_tree(
    tree: Tree,
    endpoints: Endpoints,
    stack: InfraStack,
    run_dir: Path,
    scenarios: list[tuple[str, Scenario]],
    extra_env: dict[str, str],
    profile_dir: Path | None = None,
) -> list[dict[str, Any]]:
    tag = re.sub(r"[^a-z0-9]+", "", tree.label.lower())[:12] or "tree"
    db_name = f"bench_{tag}"
    env = {
        **os.environ,
        **endpoints.env(),
        "PYTHONPATH": str(tree.service_dir),
        "PLANBOARD_ENV": "development",
        "PLANBOARD_MONGODB_DB": db_name,
        "PLANBOARD_KAFKA_TOPIC_PREFIX": f"bench-{tag}.",
        "PLANBOARD_ALLOW_PRIVATE_WEBHOOKS": "true",
        "PLANBOARD_ACCESS_LOG": "false",
        "PLANBOARD_RATE_LIMIT_ENABLED": "false",
        "PLANBOARD_LOG_LEVEL": "WARNING",
        "PLANBOARD_LOG_JSON": "false",
        **extra_env,
    }
    logs = run_dir / f"logs-{tag}"
    logs.mkdir(parents=True, exist_ok=True)
    planboard = [sys.executable, "-m", "planboard"]
    subprocess.run([*planboard, "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
    port = free_port()
    tree.procs["api"] = start([*planboard, "serve", "--port", str(port)], env, logs / "api.log")
    tree.procs["relay"] = start([*planboard, "relay"], env, logs / "relay.log")
    for group in group_names(env):
        tree.procs[f"worker {group}"] = start(
            [*planboard, "worker", "--group", group], env, logs / f"worker-{group}.log"
        )
    results = []
    try:
        api = f"http://127.0.0.1:{port}"
        wait_ready(f"{api}/readyz")
        time.sleep(3)  # consumer groups join
        watched = {name: proc.pid for name, proc in tree.procs.items()}
        for name, server in stack.servers.items():
            if server.process is not None and server.process.pid is not None:
                watched[f"{name} (dev server)"] = server.process.pid
        watched["benchmark client + receiver"] = os.getpid()
        mongodb = f"{endpoints.mongodb_uri}#{db_name}"
        kafka = f"{endpoints.kafka_bootstrap}#{env['PLANBOARD_KAFKA_TOPIC_PREFIX']}"
        relay = tree.procs["relay"]
        released: dict[str, float] = {}  # CPU seconds by process when a held relay was let go

        def hold(on: bool) -> None:
            """Freeze the relay (its backlog grows) or let it drain; the CPU of a backlog
            run counts from the release."""
            if not on:
                released.update({n: cpu_seconds(pid) for n, pid in watched.items()})
            os.killpg(relay.pid, signal.SIGSTOP if on else signal.SIGCONT)

        for label, scenario in scenarios:
            if label in (WEBHOOKS_ONLY, BACKLOG):  # the pipeline alone: no other group competes
                for name, proc in tree.procs.items():
                    if name.startswith("worker ") and name != "worker webhooks":
                        stop(proc)
                        watched.pop(name, None)
                time.sleep(2)
            released.clear()

            print(f"[{tree.label}] {label}: {scenario.describe()} …", flush=True)
            profiler = Profiler(profile_dir, tag, label)
            profiler.start(watched)
            cpu_before = {name: cpu_seconds(pid) for name, pid in watched.items()}
            load_before = os.getloadavg()[0]
            began = time.perf_counter()
            try:
                result = asyncio.run(run(api, scenario, 1200.0, mongodb, kafka, hold))
            finally:
                profiler.stop()
            wall = time.perf_counter() - began
            cpu_from = released or cpu_before
            cpu = {name: cpu_seconds(pid) - cpu_from[name] for name, pid in watched.items()}
            dead = [
                name
                for name in watched
                if name in tree.procs and tree.procs[name].poll() is not None
            ]
            result.update(
                tree=tree.label,
                label=label,
                wall_s=round(wall, 1),
                cpu_s={name: round(v, 1) for name, v in cpu.items()},
                load_1m=(round(load_before, 2), round(os.getloadavg()[0], 2)),
                dead_processes=dead,
            )
            print(
                f"  → {result['events_per_s']} events/s (sustained {result['sustained_per_s']}), "
                f"p50 {result['latency_ms']['p50']} ms, p95 {result['latency_ms']['p95']} ms, "
                f"received {result['received']}/{scenario.events}, "
                f"duplicates {result['duplicates']}, bad signatures {result['bad_signatures']}",
                flush=True,
            )
            for failure in result["write_failures"]:
                print(f"  write failed: {failure}", flush=True)
            results.append(result)
            time.sleep(2)
    finally:
        for proc in tree.procs.values():
            stop(proc)
    return results


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def report(results: list[dict[str, Any]], args: argparse.Namespace, command: str) -> str:
    m = machine()
    loads = [r["load_1m"] for r in results]
    out = [
        f"## {SECTION}",
        "",
        "What is measured (`benchmarks/events_bench.py`, `make bench-events`): API write → "
        "outbox → relay → Kafka → `webhooks` worker (fan-out into delivery records, then the "
        "delivery loop) → an HTTP receiver on 127.0.0.1 in the benchmark process that checks "
        "every signature and counts every event id. The stack is what `planboard dev` runs: "
        "one API process, the relay, and one worker process per group (all of them consume "
        "`task.created`: webhooks, notifications, rollups, search; plus attachments, jobs, "
        "scheduler), on the dev servers (nx-27017, Kafka, Redis), all on this machine; the "
        "last two rows of each code stop every worker but the webhooks one first, and the "
        "very last writes its events while the relay is frozen, then lets the backlog drain: "
        "its rates and CPU count from the release, without the API's writes (no latency: it "
        "would include the hold). "
        "Writes are real API calls producing real domain events through the outbox: "
        "`POST /projects/{id}/tasks/bulk` (500 tasks, one `task.created` each, 20 projects "
        "round-robin) for throughput; paced single `POST /projects/{id}/tasks` (consumed by four "
        "groups) and `PATCH /workspaces/{id}` (a rename: only the webhooks group consumes it) "
        "for latency. "
        "Latency is from sending the write to the receiver getting the webhook, on one clock. "
        "events/s = events received / time from the first write to the last receipt; "
        "sustained = the rate between the 10th and the 90th percentile of receipts.",
        "",
        f'Machine: `nproc` {m["nproc"]}, CPU "{m["cpu"]}", {m["memory_gb"]} GiB RAM, '
        f"Python {m['python']}; date {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. The machine is "
        "shared with other engineers' work: 1-minute load average "
        + ", ".join(f"{a:.1f}→{b:.1f}" for a, b in loads)
        + " (before→after each run, in table order).",
        "",
        "Command:",
        "",
        "```",
        command,
        "```",
        "",
        "| code | scenario | written/s | delivered events/s | sustained | p50 | p95 | p99 | max "
        "| received | duplicates | bad signatures |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lat = r["latency_ms"]
        out.append(
            f"| {r['tree']} | {r['label']} | {fmt(r['write_rate_per_s'])} "
            f"| **{fmt(r['events_per_s'])}** | {fmt(r['sustained_per_s'])} "
            f"| {fmt(lat['p50'])} ms | **{fmt(lat['p95'])} ms** | {fmt(lat['p99'])} ms "
            f"| {fmt(lat['max'])} ms | {r['received']:,}/{r['events']:,} | {r['duplicates']} "
            f"| {r['bad_signatures']} |"
        )
    out += [
        "",
        "Where the time goes (p50 / p95; relay: the event's time → the Kafka record's "
        "timestamp; consume: → delivery record created; deliver: record → 2xx):",
        "",
        "| code | scenario | relay | consume | deliver |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        s = r["stages"]
        cells = [
            f"{fmt(s[k]['p50_ms'])} / {fmt(s[k]['p95_ms'])} ms" if k in s else "-"
            for k in ("relay", "consume", "deliver")
        ]
        out.append(f"| {r['tree']} | {r['label']} | " + " | ".join(cells) + " |")
    names = sorted({n for r in results for n in r["cpu_s"]})
    out += [
        "",
        "CPU seconds per 1,000 events, by process, during each run (2 cores = 2 CPU-seconds "
        "per second of wall time):",
        "",
        "| process | " + " | ".join(f"{r['tree']} {r['label']}" for r in results) + " |",
        "|---|" + "---|" * len(results),
    ]
    for name in names:
        cells = [fmt(r["cpu_s"].get(name, 0.0) * 1000 / max(1, r["received"])) for r in results]
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    totals = [fmt(sum(r["cpu_s"].values()) * 1000 / max(1, r["received"])) for r in results]
    out.append("| **total** | " + " | ".join(totals) + " |")
    out.append("")
    throughput = [
        r for r in results if r["label"].startswith("throughput") and r["tree"] == args.label
    ]
    latency = [r for r in results if r["label"].startswith("latency") and r["tree"] == args.label]
    out += ["Targets (this code):", ""]
    for r in throughput:
        met = (r["sustained_per_s"] or 0) >= 1000 and r["received"] == r["events"]
        out.append(
            f"- ≥ 1,000 events/s sustained ({r['label']}): {fmt(r['sustained_per_s'])} sustained, "
            f"{fmt(r['events_per_s'])} overall → **{'met' if met else 'not met'}**"
        )
    for r in latency:
        met = r["latency_ms"]["p95"] < 250
        out.append(
            f"- write→webhook p95 < 250 ms ({r['label']}): "
            f"{fmt(r['latency_ms']['p95'])} ms → **{'met' if met else 'not met'}**"
        )
    clean = all(
        r["received"] == r["events"] and not r["duplicates"] and not r["bad_signatures"]
        for r in results
    )
    out.append(
        "- every event received exactly once with a valid signature: "
        f"**{'yes' if clean else 'no'}**"
    )
    failed = [f"{r['tree']} {r['label']}: {f}" for r in results for f in r["write_failures"]]
    if failed:
        out.append(f"- writes that failed: {'; '.join(failed)}")
    dead = sorted({f"{r['tree']}: {n}" for r in results for n in r["dead_processes"]})
    if dead:
        out.append(f"- processes that died during the run: {', '.join(dead)}")
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000, help="throughput run (10,000)")
    parser.add_argument("--rate", type=float, default=100.0, help="latency run pace (100/s)")
    parser.add_argument("--latency-events", type=int, default=3000, help="latency run (3,000)")
    parser.add_argument(
        "--baseline", default="", help="also measure the service code of this git ref, first"
    )
    parser.add_argument("--label", default=THIS, help="the name of this tree's rows")
    parser.add_argument(
        "--only", default="", help="run only the scenarios whose name starts with this"
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an extra environment variable for the Planboard processes (repeatable)",
    )
    parser.add_argument("--no-doc", action="store_true", help="print only")
    parser.add_argument(
        "--profile-dir",
        type=Path,
        help="record the Planboard processes and the MongoDB dev server with py-spy during "
        "each scenario (collapsed stacks, for flamegraph tools); implies --no-doc",
    )
    args = parser.parse_args()
    if args.profile_dir:
        args.no_doc = True  # sampling slows the processes: not the figure of record
    extra_env = dict(item.split("=", 1) for item in args.env)
    flags = " ".join(sys.argv[1:])
    command = f".venv/bin/python benchmarks/events_bench.py {flags}".rstrip()
    command += (
        f"   # = make bench-events BENCH_ARGS='{flags}'" if flags else "   # = make bench-events"
    )
    scenarios = [
        ("throughput", Scenario(write="bulk", events=args.events, concurrency=4)),
        (
            f"latency {args.rate:g}/s, task creates",
            Scenario(write="task", events=args.latency_events, rate=args.rate, concurrency=8),
        ),
        (
            f"latency {args.rate:g}/s, renames",
            Scenario(write="rename", events=args.latency_events, rate=args.rate, concurrency=8),
        ),
        # last: the other groups' workers are stopped for these
        (WEBHOOKS_ONLY, Scenario(write="bulk", events=args.events, concurrency=4)),
        (BACKLOG, Scenario(write="bulk", events=args.events, concurrency=4, backlog=True)),
    ]
    if args.only:
        scenarios = [s for s in scenarios if s[0].startswith(args.only)]
        args.no_doc = True
    with tempfile.TemporaryDirectory(prefix="pb-events-bench-") as tmp:
        run_dir = Path(tmp)
        trees = []
        if args.baseline:
            label = f"before ({revision(args.baseline)})"
            trees.append(Tree(label, archive(args.baseline, run_dir / "baseline")))
            if args.label == THIS:
                args.label = f"after ({revision('HEAD')})"
        trees.append(Tree(args.label, ROOT / "service"))
        stack = InfraStack(run_dir / "servers")
        print("starting dev servers …", flush=True)
        endpoints = stack.start()
        results: list[dict[str, Any]] = []
        try:
            for tree in trees:
                results += bench_tree(
                    tree, endpoints, stack, run_dir, scenarios, extra_env, args.profile_dir
                )
        finally:
            stack.stop()
    text = report(results, args, command)
    print()
    print(text)
    if not args.no_doc:
        write_section(text, SECTION)
        print(f"written to {DOC.relative_to(ROOT)} (section “{SECTION}”)")


if __name__ == "__main__":
    main()
